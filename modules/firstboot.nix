# First boot: `hearth-firstboot mint` creates every per-instance secret (nothing secret is in an image or the
# store). Guarded by its sentinel rather than ConditionFirstBoot=, which is unreliable on NixOS; the binary is
# idempotent anyway. Ordered before everything that loads a secret.
{
  config,
  lib,
  ...
}: let
  cfg = config.services.hearth;
  # hearth reaches a database on another machine over TCP, with a password first boot mints too, unless the
  # site points passwordFile somewhere of its own.
  overTcp = !cfg.database.createLocally && cfg.database.passwordFile == "${cfg.secretsDir}/postgres-password";
  sentinel = "${cfg.secretsDir}/.minted-v1${lib.optionalString overTcp "-tcp"}";
  underVarLib = lib.hasPrefix "/var/lib/" cfg.secretsDir;
  writable =
    lib.optional (!underVarLib) (dirOf cfg.secretsDir)
    # systemd-creds keeps its host key there
    ++ lib.optional cfg.firstboot.seal "/var/lib/systemd";
in {
  config = lib.mkIf (cfg.enable && cfg.firstboot.enable) {
    systemd.services.hearth-firstboot = {
      description = "hearth first boot: mint per-instance secrets";
      wantedBy = ["multi-user.target"];
      before = ["hearthd.service"] ++ lib.optional cfg.garage.enable "garage.service";
      unitConfig.ConditionPathExists = "!${sentinel}";
      # systemd-creds for --seal
      path = lib.optional cfg.firstboot.seal config.systemd.package;
      serviceConfig =
        import ../nix/hardening.nix
        // {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStart = lib.concatStringsSep " " (
            [
              (lib.getExe cfg.firstboot.package)
              "--secrets-dir ${cfg.secretsDir}"
              "mint"
            ]
            ++ lib.optional overTcp "--postgres-over-tcp"
            ++ lib.optional cfg.firstboot.seal "--seal"
          );
          UMask = "0077";
          StateDirectory = lib.mkIf underVarLib (lib.removePrefix "/var/lib/" cfg.secretsDir);
          StateDirectoryMode = lib.mkIf underVarLib "0700";
          ReadWritePaths = lib.mkIf (writable != []) writable;
          # Needs no network; only the TPM for --seal.
          PrivateNetwork = true;
          PrivateDevices = !cfg.firstboot.seal;
          RestrictAddressFamilies = ["AF_UNIX"];
          SystemCallFilter = ["@system-service"];
        };
    };

    systemd.services.hearthd = {
      after = ["hearth-firstboot.service"];
      requires = ["hearth-firstboot.service"];
    };
  };
}
