# shim-of: nixos/modules/virtualisation/oci-containers.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# The backend's default follows stateVersion; each container becomes a `<backend>-<name>` unit, and the podman
# backend turns podman on with a plain definition.
{
  config,
  lib,
  ...
}: let
  inherit (lib) mkOption types;
  cfg = config.virtualisation.oci-containers;
  list = mkOption {
    type = types.listOf types.str;
    default = [];
  };
  containerOptions = {name, ...}: {
    options = {
      image = mkOption {type = types.str;};
      cmd = list;
      ports = list;
      extraOptions = list;
      devices = list;
      environment = mkOption {
        type = types.attrsOf types.str;
        default = {};
      };
      serviceName = mkOption {
        type = types.str;
        default = "${cfg.backend}-${name}";
      };
    };
  };
in {
  options.virtualisation.oci-containers = {
    backend = mkOption {
      type = types.enum ["podman" "docker"];
      default =
        if lib.versionAtLeast config.system.stateVersion "22.05"
        then "podman"
        else "docker";
    };
    containers = mkOption {
      type = types.attrsOf (types.submodule containerOptions);
      default = {};
    };
  };
  config = lib.mkIf (cfg.containers != {}) (lib.mkMerge [
    {
      systemd.services = lib.mapAttrs' (_: container:
        lib.nameValuePair container.serviceName {
          wantedBy = ["multi-user.target"];
          after = ["network-online.target"];
          wants = ["network-online.target"];
          serviceConfig.Type = lib.mkIf (cfg.backend == "podman") "notify";
        })
      cfg.containers;
    }
    (lib.mkIf (cfg.backend == "podman") {virtualisation.podman.enable = true;})
  ]);
}
