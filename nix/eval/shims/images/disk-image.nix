# shim-of: nixos/modules/virtualisation/disk-image.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# The qemu-efi variant: its own root and ESP file systems (plain), systemd-boot by default.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.image;
in {
  imports = [
    ./disk-size-option.nix
    ./file-options.nix
  ];
  options.image = {
    efiSupport = lib.mkOption {
      type = lib.types.bool;
      default = true;
    };
    format = lib.mkOption {
      type = lib.types.enum ["raw" "qcow2"];
      default = "qcow2";
    };
  };
  config = {
    boot.growPartition = lib.mkDefault true;
    boot.loader.grub = lib.mkIf (!cfg.efiSupport) {
      enable = lib.mkOptionDefault true;
      devices = lib.mkDefault ["/dev/vda"];
    };
    boot.loader.systemd-boot.enable = lib.mkDefault cfg.efiSupport;
    fileSystems."/" = {
      autoResize = true;
      device = "/dev/disk/by-label/nixos";
      fsType = "ext4";
    };
    fileSystems."/boot" = lib.mkIf cfg.efiSupport {
      device = "/dev/disk/by-label/ESP";
      fsType = "vfat";
    };
    image.extension =
      if cfg.format == "raw"
      then "img"
      else cfg.format;
    system.nixos.tags = [cfg.format] ++ lib.optionals cfg.efiSupport ["efi"];
    system.build.image = pkgs.runCommand cfg.baseName {
      inherit (config.virtualisation) diskSize;
      inherit (cfg) format;
      toplevel = config.system.build.toplevel;
    } "";
  };
}
