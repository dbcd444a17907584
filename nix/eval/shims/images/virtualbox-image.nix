# shim-of: nixos/modules/virtualisation/virtualbox-image.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# shim-of: nixos/modules/virtualisation/virtualbox-guest.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# The OVA variant: GRUB on /dev/sda, a plain 2 GiB swap file, a 50 GiB disk just below the option default.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.virtualbox;
in {
  imports = [
    ./disk-size-option.nix
    ./file-options.nix
  ];
  options.virtualbox = {
    memorySize = lib.mkOption {
      type = lib.types.int;
      default = 1536;
    };
    vmName = lib.mkOption {
      type = lib.types.str;
      default = "NixOS ${config.system.nixos.label} (${pkgs.stdenv.hostPlatform.system})";
    };
  };
  options.virtualisation.virtualbox.guest.enable = lib.mkOption {
    type = lib.types.bool;
    default = false;
  };
  config = {
    assertions = [
      {
        assertion = pkgs.stdenv.hostPlatform.isx86 || pkgs.stdenv.hostPlatform.isAarch64;
        message = "Virtualbox not currently supported on ${pkgs.stdenv.hostPlatform.system}";
      }
    ];
    boot.growPartition = true;
    boot.loader.grub.device = "/dev/sda";
    fileSystems."/" = {
      autoResize = true;
      device = "/dev/disk/by-label/nixos";
      fsType = "ext4";
    };
    image.extension = "ova";
    swapDevices = [
      {
        device = "/var/swap";
        size = 2048;
      }
    ];
    system.nixos.tags = ["virtualbox"];
    system.build.virtualBoxOVA = pkgs.runCommand "nixos-ova-${config.system.nixos.label}-${pkgs.stdenv.hostPlatform.system}" {
      inherit (config.virtualisation) diskSize;
      inherit (cfg) vmName memorySize;
      inherit (config.image) baseName;
      toplevel = config.system.build.toplevel;
    } "";
    system.build.image = lib.mkDefault config.system.build.virtualBoxOVA;
    virtualisation.diskSize = lib.mkOverride 1490 (50 * 1024);
    virtualisation.virtualbox.guest.enable = true;
  };
}
