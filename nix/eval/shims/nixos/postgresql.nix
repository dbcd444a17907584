# shim-of: nixos/modules/services/databases/postgresql.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# The options hearth sets or reads, with nixpkgs' types and defaults, and the module's own definitions of them:
# `package` with mkDefault by stateVersion (a second mkDefault elsewhere is a merge error), `authentication` around
# the site's lines, the ensureUsers assertion, and the units hearth orders against.
{
  config,
  lib,
  pkgs,
  ...
}: let
  inherit (lib) mkOption types;
  cfg = config.services.postgresql;
in {
  options.services.postgresql = {
    enable = lib.mkEnableOption "PostgreSQL Server";
    package = mkOption {type = types.package;};
    finalPackage = mkOption {
      type = types.package;
      readOnly = true;
      default = cfg.package.withPackages cfg.extensions;
    };
    extensions = mkOption {
      type = with types; coercedTo (listOf path) (path: _ignorePg: path) (functionTo (listOf path));
      default = _: [];
    };
    ensureDatabases = mkOption {
      type = types.listOf types.str;
      default = [];
    };
    ensureUsers = mkOption {
      type = types.listOf (types.submodule {
        options = {
          name = mkOption {type = types.str;};
          ensureDBOwnership = mkOption {
            type = types.bool;
            default = false;
          };
          ensureClauses = mkOption {
            type = types.submodule {freeformType = types.attrsOf (types.oneOf [types.str types.int types.bool]);};
            default = {};
          };
        };
      });
      default = [];
    };
    authentication = mkOption {
      type = types.lines;
      default = "";
    };
    enableTCPIP = mkOption {
      type = types.bool;
      default = false;
    };
    settings = mkOption {
      type = with types;
        submodule {
          options = {
            port = mkOption {
              type = types.port;
              default = 5432;
            };
          };
          freeformType = attrsOf (oneOf [bool float int str]);
        };
      default = {};
    };
  };

  config = lib.mkIf cfg.enable {
    services.postgresql.package = lib.mkDefault (
      if lib.versionAtLeast config.system.stateVersion "26.11"
      then pkgs.postgresql_18
      else if lib.versionAtLeast config.system.stateVersion "25.11"
      then pkgs.postgresql_17
      else pkgs.postgresql_16
    );
    services.postgresql.authentication = lib.mkMerge [
      (lib.mkBefore "# Generated file; do not edit!")
      (lib.mkAfter ''
        # default value of services.postgresql.authentication
        local all postgres         peer map=postgres
        local all all              peer
        host  all all 127.0.0.1/32 md5
        host  all all ::1/128      md5
      '')
    ];
    services.postgresql.settings = {
      hba_file = "${pkgs.writeText "pg_hba.conf" cfg.authentication}";
      listen_addresses =
        if cfg.enableTCPIP
        then "*"
        else "localhost";
      log_destination = "stderr";
    };

    assertions =
      map ({
        name,
        ensureDBOwnership,
        ...
      }: {
        assertion = ensureDBOwnership -> lib.elem name cfg.ensureDatabases;
        message = ''
          For each database user defined with `services.postgresql.ensureUsers` and
          `ensureDBOwnership = true;`, a database with the same name must be defined
          in `services.postgresql.ensureDatabases`.

          Offender: ${name} has not been found among databases.
        '';
      })
      cfg.ensureUsers;

    environment.systemPackages = [cfg.finalPackage];

    # config.ids.uids.postgres / gids.postgres (nixos/modules/misc/ids.nix).
    users.users.postgres = {
      name = "postgres";
      uid = 71;
      group = "postgres";
      description = "PostgreSQL server user";
      useDefaultShell = true;
    };
    users.groups.postgres.gid = 71;

    systemd.services.postgresql = {
      description = "PostgreSQL Server";
      after = ["network.target"];
      wants = ["postgresql.target"];
      partOf = ["postgresql.target"];
      path = [cfg.finalPackage];
      serviceConfig = {
        ExecStart = "${cfg.finalPackage}/bin/postgres";
        Type = "notify";
        User = "postgres";
        Group = "postgres";
        Restart = "always";
        TimeoutSec = 120;
      };
      unitConfig = {
        StartLimitBurst = 5;
        StartLimitIntervalSec = 605;
      };
    };

    # Where ensureDatabases and ensureUsers run: the module's `script` (the unit's ExecStart); postStart is free.
    systemd.services.postgresql-setup = {
      description = "PostgreSQL Setup Scripts";
      after = ["postgresql.service"];
      requires = ["postgresql.service"];
      environment.PGPORT = toString cfg.settings.port;
      path = [cfg.finalPackage];
      serviceConfig = {
        Type = "oneshot";
        User = "postgres";
        Group = "postgres";
        RemainAfterExit = true;
      };
      script =
        lib.concatMapStrings (database: ''
          psql -tAc "SELECT 1 FROM pg_database WHERE datname = '${database}'" | grep -q 1 || psql -tAc 'CREATE DATABASE "${database}"'
        '')
        cfg.ensureDatabases;
    };

    systemd.targets.postgresql = {
      description = "PostgreSQL";
      wantedBy = ["multi-user.target"];
      requires = [
        "postgresql.service"
        "postgresql-setup.service"
      ];
    };
  };
}
