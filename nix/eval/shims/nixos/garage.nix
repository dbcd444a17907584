# shim-of: nixos/modules/services/web-servers/garage.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# `package` has no default and `settings` none at the option level; the unit's serviceConfig is what hearth's
# definitions meet (only DynamicUser is a mkDefault). What hearth's Garage cluster relies on is here too: the
# default metadata_dir /var/lib/garage/meta inside the unit's StateDirectory=garage (a DynamicUser's, which its
# ExecStartPre runs as, so the node key it installs there is Garage's own), no ExecStartPre of nixpkgs' own (hearth's
# preStart is the only one), and the `garage` command for root, a wrapper around the package that reads
# /etc/garage.toml (tests/fleet.nix runs `garage layout show`, `garage repair` with it).
{
  config,
  lib,
  pkgs,
  ...
}: let
  inherit (lib) mkOption types;
  cfg = config.services.garage;
  toml = pkgs.formats.toml {};
  configFile = toml.generate "garage.toml" cfg.settings;
  isDefault = lib.hasPrefix "/var/lib/garage";
  # data_dir is a path or a list of { path, capacity }.
  paths = lib.flatten [
    cfg.settings.metadata_dir
    (
      if lib.isList cfg.settings.data_dir
      then map (dir: dir.path) cfg.settings.data_dir
      else cfg.settings.data_dir
    )
  ];
in {
  options.services.garage = {
    enable = lib.mkEnableOption "Garage Object Storage (S3 compatible)";
    package = mkOption {type = types.package;};
    environmentFile = mkOption {
      type = types.nullOr types.path;
      default = null;
    };
    logLevel = mkOption {
      type = types.enum ["error" "warn" "info" "debug" "trace"];
      default = "info";
    };
    settings = mkOption {
      type = types.submodule {
        freeformType = toml.type;
        options = {
          data_dir = mkOption {
            type = with types; either path (listOf attrs);
            default = "/var/lib/garage/data";
          };
          metadata_dir = mkOption {
            type = types.path;
            default = "/var/lib/garage/meta";
          };
        };
      };
    };
  };

  config = lib.mkIf cfg.enable {
    environment.etc."garage.toml".source = configFile;
    # For administration (nixpkgs' text: the environment file, then the package's garage with the arguments).
    environment.systemPackages = [
      (pkgs.writeScriptBin "garage" ''
        set -a
        [ -f ${lib.escapeShellArg cfg.environmentFile} ] && . ${lib.escapeShellArg cfg.environmentFile}
        exec ${lib.escapeShellArg (lib.getExe cfg.package)} "$@"
      '')
    ];
    systemd.services.garage = {
      description = "Garage Object Storage (S3 compatible)";
      after = ["network.target" "network-online.target"];
      wants = ["network.target" "network-online.target"];
      wantedBy = ["multi-user.target"];
      environment.RUST_LOG = lib.mkDefault "garage=${cfg.logLevel}";
      restartTriggers = [configFile] ++ lib.optional (cfg.environmentFile != null) cfg.environmentFile;
      serviceConfig = {
        ExecStart = "${cfg.package}/bin/garage server";
        StateDirectory = lib.mkIf (lib.any isDefault paths) "garage";
        DynamicUser = lib.mkDefault true;
        EnvironmentFile = lib.optional (cfg.environmentFile != null) cfg.environmentFile;
        ProtectHome = true;
        NoNewPrivileges = true;
        LimitNOFILE = 42000;
        ReadWritePaths = lib.filter (path: !(isDefault path)) paths;
      };
    };
  };
}
