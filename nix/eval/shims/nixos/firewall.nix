# shim-of: nixos/modules/services/networking/firewall.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
{lib, ...}: let
  portList = lib.mkOption {
    type = lib.types.listOf lib.types.port;
    default = [];
    apply = ports: lib.unique (builtins.sort builtins.lessThan ports);
  };
in {
  options.networking.firewall = {
    enable = lib.mkOption {
      type = lib.types.bool;
      default = true;
    };
    allowedTCPPorts = portList;
    allowedUDPPorts = portList;
  };
}
