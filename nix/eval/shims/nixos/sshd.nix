# shim-of: nixos/modules/services/networking/ssh/sshd.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# Also declares users.users.<name>.openssh, merged into users-groups' submodule as nixpkgs does.
{
  config,
  lib,
  ...
}: let
  inherit (lib) mkOption types;
  cfg = config.services.openssh;
  atom = types.nullOr (types.oneOf [types.bool types.int types.float types.str]) // {description = "atom (null, bool, int, float or string)";};
in {
  options.services.openssh = {
    enable = mkOption {
      type = types.bool;
      default = false;
    };
    openFirewall = mkOption {
      type = types.bool;
      default = true;
    };
    ports = mkOption {
      type = types.listOf types.port;
      default = [22];
    };
    settings = mkOption {
      default = {};
      type = types.submodule {
        freeformType = types.attrsOf atom;
        options = {
          PasswordAuthentication = mkOption {
            type = types.nullOr types.bool;
            default = true;
          };
          KbdInteractiveAuthentication = mkOption {
            type = types.nullOr types.bool;
            default = true;
          };
          PermitRootLogin = mkOption {
            type = types.nullOr (types.enum ["yes" "without-password" "prohibit-password" "forced-commands-only" "no"]);
            default = "prohibit-password";
          };
        };
      };
    };
  };
  options.users.users = mkOption {
    type = types.attrsOf (types.submodule {
      options.openssh.authorizedKeys = {
        keys = mkOption {
          type = types.listOf types.singleLineStr;
          default = [];
        };
        keyFiles = mkOption {
          type = types.listOf types.path;
          default = [];
        };
      };
    });
  };
  config = lib.mkIf cfg.enable {
    networking.firewall.allowedTCPPorts = lib.optionals cfg.openFirewall cfg.ports;
    users.users.sshd = {
      isSystemUser = true;
      group = "sshd";
      description = "SSH privilege separation user";
    };
    users.groups.sshd = {};
    systemd.services.sshd = {
      description = "SSH Daemon";
      wantedBy = ["multi-user.target"];
    };
  };
}
