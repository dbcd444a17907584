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
  sentinel = "${cfg.secretsDir}/.minted-v2${lib.optionalString overTcp "-tcp"}";
  underVarLib = lib.hasPrefix "/var/lib/" cfg.secretsDir;
  # The console shows the web UI's address and the setup code when hearthd is reachable from the LAN.
  # "0.0.0.0:8080" -> "0.0.0.0", "[::1]:8080" -> "::1"
  listenParts = builtins.match "\\[(.*)]:([0-9]+)|(.*):([0-9]+)" cfg.listen;
  listenHost = lib.findFirst (part: part != null) cfg.listen [(lib.elemAt listenParts 0) (lib.elemAt listenParts 2)];
  port = lib.findFirst (part: part != null) "8080" [(lib.elemAt listenParts 1) (lib.elemAt listenParts 3)];
  onTheLan = listenParts != null && !(listenHost == "::1" || lib.hasPrefix "127." listenHost);
  writable =
    lib.optional (!underVarLib) (dirOf cfg.secretsDir)
    # systemd-creds keeps its host key there
    ++ lib.optional cfg.firstboot.seal "/var/lib/systemd";
in {
  config = lib.mkIf (cfg.enable && cfg.firstboot.enable) {
    systemd.services.hearth-firstboot = {
      description = "hearth first boot: mint per-instance secrets";
      wantedBy = ["multi-user.target"];
      # Before the login prompts (getty@.service orders after systemd-user-sessions), so the console's first
      # prompt already shows the setup code.
      before = ["hearthd.service" "systemd-user-sessions.service"] ++ lib.optional cfg.garage.enable "garage.service";
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
            ++ lib.optional onTheLan "--console-issue-port ${port}"
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

    # Signs a browser in to the web UI besides the api-token.
    services.hearth.credentials.setup-code = lib.mkDefault "${cfg.secretsDir}/setup-code";
    # Seals the reasoning provider's key that Settings stores.
    services.hearth.credentials.encryption-key = lib.mkDefault "${cfg.secretsDir}/encryption-key";

    # agetty prints /etc/issue.d/*.issue under /etc/issue. A string, not a path: the note holds the setup code and
    # must stay out of the store; the link dangles until first boot writes it.
    environment.etc."issue.d/hearth-setup.issue" = lib.mkIf onTheLan {
      source = "${cfg.secretsDir}/console.issue";
    };
  };
}
