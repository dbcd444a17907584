# A single-node Garage as hearth's blob store: sqlite metadata with fsync (LMDB can corrupt on an unclean
# shutdown), replication 1, everything bound to loopback. Its secrets are the ones hearth-firstboot minted,
# handed over as systemd credentials (nixpkgs runs Garage as a DynamicUser, which cannot read root's 0400
# files; LoadCredential= gives the service its own copy under /run/credentials/garage.service). Then
# hearth-firstboot-garage provisions the layout, hearth's key and bucket before hearthd starts.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.services.hearth;
  credentials = "/run/credentials/garage.service";
  adminApi = "127.0.0.1:3903";
  firstbootUnit = lib.optional cfg.firstboot.enable "hearth-firstboot.service";
  # Garage's credentials: the name it loads each under, and the file in secretsDir.
  garageCredentials = {
    rpc-secret = "garage-rpc-secret";
    admin-token = "garage-admin-token";
    metrics-token = "garage-metrics-token";
  };
in {
  config = lib.mkIf (cfg.enable && cfg.garage.enable) {
    services.garage = {
      enable = true;
      package = lib.mkDefault pkgs.garage_2;
      settings = {
        replication_factor = 1;
        # The secrets come through LoadCredential=: with a service user systemd grants read access to them with
        # an ACL, so the files show mode 0440 and Garage's own check ("is world-readable") would refuse to start
        # (systemd/systemd#29435). /run/credentials/garage.service is private to the unit, which is what the
        # check is there to ensure.
        allow_world_readable_secrets = true;
        db_engine = "sqlite";
        metadata_fsync = true;
        data_fsync = true;
        rpc_bind_addr = lib.mkDefault "127.0.0.1:3901";
        rpc_public_addr = lib.mkDefault "127.0.0.1:3901";
        rpc_secret_file = "${credentials}/rpc-secret";
        s3_api = {
          s3_region = "garage";
          api_bind_addr = lib.mkDefault "127.0.0.1:3900";
        };
        admin = {
          api_bind_addr = adminApi;
          admin_token_file = "${credentials}/admin-token";
          metrics_token_file = "${credentials}/metrics-token";
        };
      };
    };

    systemd.services.garage = {
      # Without first boot the site provides the secrets (see services.hearth.firstboot.enable); a Requires= on a
      # unit that does not exist would fail Garage's start instead. A missing secret fails it naming the file.
      after = firstbootUnit;
      requires = firstbootUnit;
      unitConfig.AssertPathExists = map (name: "${cfg.secretsDir}/${name}") (lib.attrValues garageCredentials);
      serviceConfig = {
        LoadCredential = lib.mapAttrsToList (credential: file: "${credential}:${cfg.secretsDir}/${file}") garageCredentials;
        Restart = lib.mkDefault "on-failure";
        RestartSec = lib.mkDefault "5s";
      };
    };

    # Idempotent: on later boots it checks and prints "nothing to do", and it re-provisions a Garage whose
    # metadata was lost. Runs as root because it reads the admin token and the S3 key pair from secretsDir.
    systemd.services.hearth-firstboot-garage = {
      description = "hearth first boot: provision Garage (layout, key, bucket)";
      wantedBy = ["multi-user.target"];
      after = ["garage.service"] ++ firstbootUnit;
      requires = ["garage.service"] ++ firstbootUnit;
      before = ["hearthd.service"];
      serviceConfig =
        import ../nix/hardening.nix
        // {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStart = lib.concatStringsSep " " [
            (lib.getExe cfg.firstboot.package)
            "--secrets-dir ${cfg.secretsDir}"
            "garage"
            "--admin-endpoint http://${adminApi}"
            "--wait-seconds 120"
          ];
          UMask = "0077";
          PrivateDevices = true;
          RestrictAddressFamilies = [
            "AF_INET"
            "AF_INET6"
            "AF_UNIX"
          ];
          IPAddressDeny = "any";
          IPAddressAllow = "localhost";
          SystemCallFilter = ["@system-service"];
        };
    };

    systemd.services.hearthd = {
      after = [
        "garage.service"
        "hearth-firstboot-garage.service"
      ];
      requires = [
        "garage.service"
        "hearth-firstboot-garage.service"
      ];
    };
  };
}
