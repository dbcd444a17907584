# shim-of: nixos/modules/installer/sd-card/sd-image-aarch64.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# shim-of: nixos/modules/installer/sd-card/sd-image.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# shim-of: nixos/modules/profiles/base.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# shim-of: nixos/modules/profiles/all-hardware.nix @ NixOS/nixpkgs PR 364479 (its description; the file itself was not read)
# The SD card variant on aarch64: extlinux instead of GRUB, every hardware driver on (plainly, twice), zfs among
# the supported file systems by default, and a root file system of its own.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.sdImage;
  bool = default:
    lib.mkOption {
      type = lib.types.bool;
      inherit default;
    };
in {
  imports = [./file-options.nix];
  options.sdImage = {
    compressImage = bool true;
    expandOnBoot = bool true;
    firmwarePartitionName = lib.mkOption {
      type = lib.types.str;
      default = "FIRMWARE";
    };
    rootVolumeLabel = lib.mkOption {
      type = lib.types.str;
      default = "NIXOS_SD";
    };
    populateFirmwareCommands = lib.mkOption {};
    populateRootCommands = lib.mkOption {};
  };
  config = lib.mkMerge [
    # sd-image.nix
    {
      fileSystems."/" = {
        device = "/dev/disk/by-label/${cfg.rootVolumeLabel}";
        fsType = "ext4";
      };
      fileSystems."/boot/firmware" = {
        device = "/dev/disk/by-label/${cfg.firmwarePartitionName}";
        fsType = "vfat";
        options = ["nofail" "noauto"];
      };
      hardware.enableAllHardware = true;
      image.extension =
        if cfg.compressImage
        then "img.zst"
        else "img";
      image.filePath = "sd-image/${config.image.fileName}";
      system.nixos.tags = ["sd-card"];
      system.build.sdImage = pkgs.runCommand config.image.fileName {
        inherit (cfg) populateFirmwareCommands populateRootCommands expandOnBoot compressImage;
        toplevel = config.system.build.toplevel;
      } "";
      system.build.image = config.system.build.sdImage;
    }
    # profiles/all-hardware.nix
    {hardware.enableAllHardware = true;}
    # sd-image-aarch64.nix
    {
      boot.consoleLogLevel = lib.mkDefault 7;
      boot.kernelParams = ["console=ttyS0,115200n8" "console=ttyAMA0,115200n8" "console=tty0"];
      boot.loader.generic-extlinux-compatible.enable = true;
      boot.loader.grub.enable = false;
      sdImage.populateFirmwareCommands = "cp -r ${pkgs.raspberrypifw}/share/raspberrypi/boot firmware; cp ${pkgs.ubootRaspberryPi4_64bit}/u-boot.bin firmware/u-boot-rpi4.bin; cp ${pkgs.raspberrypi-armstubs}/armstub8-gic.bin firmware/";
      sdImage.populateRootCommands = "mkdir -p ./files/boot; ${config.boot.loader.generic-extlinux-compatible.populateCmd} -c ${config.system.build.toplevel} -d ./files/boot";
    }
    # profiles/base.nix
    {
      boot.supportedFilesystems = lib.mkMerge [
        ["ext2" "ext3" "ext4" "btrfs" "cifs" "f2fs" "ntfs" "vfat" "xfs"]
        (lib.mkIf (lib.meta.availableOn pkgs.stdenv.hostPlatform config.boot.zfs.package) {zfs = lib.mkDefault true;})
      ];
    }
  ];
}
