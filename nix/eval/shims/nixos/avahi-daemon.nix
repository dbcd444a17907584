# shim-of: nixos/modules/services/networking/avahi-daemon.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
{
  config,
  lib,
  ...
}: let
  inherit (lib) mkOption types;
  cfg = config.services.avahi;
  bool = default:
    mkOption {
      type = types.bool;
      inherit default;
    };
in {
  options.services.avahi = {
    enable = bool false;
    nssmdns4 = bool false;
    openFirewall = bool true;
    publish = {
      enable = bool false;
      addresses = bool false;
    };
  };
  config = lib.mkIf cfg.enable {
    networking.firewall.allowedUDPPorts = lib.mkIf cfg.openFirewall [5353];
    users.users.avahi = {
      isSystemUser = true;
      group = "avahi";
      description = "avahi-daemon privilege separation user";
    };
    users.groups.avahi = {};
    systemd.services.avahi-daemon.wantedBy = ["multi-user.target"];
  };
}
