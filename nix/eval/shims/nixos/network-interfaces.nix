# shim-of: nixos/modules/tasks/network-interfaces.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# The host name's validity check is its type.
{
  config,
  lib,
  ...
}: {
  options.networking = {
    hostName = lib.mkOption {
      type = lib.types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$";
      default = config.system.nixos.distroId;
    };
    useDHCP = lib.mkOption {
      type = lib.types.bool;
      default = true;
    };
    enableIPv6 = lib.mkOption {
      type = lib.types.bool;
      default = true;
    };
  };
}
