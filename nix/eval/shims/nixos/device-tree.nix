# shim-of: nixos/modules/hardware/device-tree.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
{
  config,
  lib,
  ...
}: {
  options.hardware.deviceTree = {
    enable = lib.mkOption {
      type = lib.types.bool;
      default = config.boot.kernelPackages.kernel.buildDTBs;
    };
    filter = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
    };
  };
}
