# shim-of: nixos/modules/system/boot/loader/generic-extlinux-compatible/default.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# populateCmd has a value only where the loader is on (the SD image reads it).
{
  config,
  lib,
  ...
}: {
  options.boot.loader.generic-extlinux-compatible = {
    enable = lib.mkOption {
      type = lib.types.bool;
      default = false;
    };
    populateCmd = lib.mkOption {
      type = lib.types.str;
      readOnly = true;
    };
  };
  config = lib.mkIf config.boot.loader.generic-extlinux-compatible.enable {
    boot.loader.generic-extlinux-compatible.populateCmd = "populate-extlinux";
    system.build.installBootLoader = "install-extlinux-conf.sh";
  };
}
