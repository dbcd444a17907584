# shim-of: nixos/modules/hardware/facter/default.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# A report path turns facter on; the hosts set one only when a facter.json exists.
{
  config,
  lib,
  ...
}: let
  cfg = config.hardware.facter;
in {
  options.hardware.facter = {
    reportPath = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
    };
    report = lib.mkOption {
      type = lib.types.attrsOf lib.types.anything;
      default =
        if cfg.reportPath == null
        then {}
        else builtins.fromJSON (builtins.readFile cfg.reportPath);
    };
    enable = lib.mkOption {
      type = lib.types.bool;
      default = cfg.report != {};
    };
  };
}
