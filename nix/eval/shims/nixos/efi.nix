# shim-of: nixos/modules/system/boot/loader/efi.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
{lib, ...}: {
  options.boot.loader.efi = {
    canTouchEfiVariables = lib.mkOption {
      type = lib.types.bool;
      default = false;
    };
    efiSysMountPoint = lib.mkOption {
      type = lib.types.str;
      default = "/boot";
    };
  };
}
