# PostgreSQL + pgvector for hearth on this machine: a `hearth` role owning a `hearth` database, reached over the
# local socket with peer authentication (the hearthd unit runs as the `hearth` user, so no password exists).
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.services.hearth;
in {
  config = lib.mkIf (cfg.enable && cfg.database.createLocally) {
    services.postgresql = {
      enable = true;
      # Pinned rather than following system.stateVersion: a major version change needs a dump/restore or
      # pg_upgrade, which must be a decision, not a side effect of a stateVersion bump. nixpkgs' module already
      # defines this option with mkDefault (its stateVersion choice), and two definitions at one priority are a
      # merge error even when equal: 900 wins over that default and loses to any plain definition of the site's.
      package = lib.mkOverride 900 pkgs.postgresql_17;
      extensions = ps: [ps.pgvector];
      ensureDatabases = ["hearth"];
      ensureUsers = [
        {
          name = "hearth";
          ensureDBOwnership = true;
        }
      ];
      # Above the module's defaults: the hearth role only ever over the socket, as the hearth system user.
      authentication = lib.mkBefore ''
        local hearth hearth peer
      '';
    };

    # pgvector is not a trusted extension: the database owner cannot create it, the superuser must. This runs
    # in postgresql-setup.service (as `postgres`), after ensureDatabases/ensureUsers, before postgresql.target
    # is reached; hearthd's own migrations then find the type.
    systemd.services.postgresql-setup.postStart = lib.mkAfter ''
      psql -d hearth -v ON_ERROR_STOP=1 -tAc 'CREATE EXTENSION IF NOT EXISTS vector'
    '';

    systemd.services.hearthd = {
      after = ["postgresql.target"];
      requires = ["postgresql.target"];
    };
  };
}
