# services.hearth: the options of the whole hearth service (the other modules in this directory implement the
# database, Garage and first-boot parts of them) and the hearthd unit itself.
{
  config,
  lib,
  pkgs,
  ...
}: let
  inherit (lib) mkDefault mkEnableOption mkIf mkOption types;

  cfg = config.services.hearth;
  hearthPkgs = import ../nix/packages.nix {
    inherit pkgs;
    inherit (cfg) revision;
  };
  settingsFormat = pkgs.formats.toml {};

  models = {
    "nomic-embed-text-v1.5" = hearthPkgs.models.nomic-embed-text-v1_5;
    "nomic-embed-text-v1.5-quantized" = hearthPkgs.models.nomic-embed-text-v1_5-quantized;
    "all-minilm-l6-v2-int8" = hearthPkgs.models.all-minilm-l6-v2-int8;
  };
  modelDir =
    if builtins.isString cfg.model && models ? ${cfg.model}
    then models.${cfg.model}
    else cfg.model;

  # "127.0.0.1:8080" -> "127.0.0.1", "[::1]:8080" -> "::1"
  listenHost = address: let
    parts = builtins.match "\\[(.*)]:[0-9]+|(.*):[0-9]+" address;
  in
    if parts == null
    then address
    else if builtins.elemAt parts 0 != null
    then builtins.elemAt parts 0
    else builtins.elemAt parts 1;
  listenPort = address: lib.toInt (lib.last (lib.splitString ":" address));
  # What hearthd counts as loopback (Rust's IpAddr::is_loopback): 127.0.0.0/8 and ::1.
  isLoopback = address: let
    host = listenHost address;
  in
    host == "::1" || lib.hasPrefix "127." host;

  listen = cfg.settings.listen;
  provider = cfg.reasoning.provider;
  bindsSpecificAddress = !(isLoopback listen) && !(lib.elem (listenHost listen) ["0.0.0.0" "::"]);
  needsNetwork = bindsSpecificAddress || !cfg.database.createLocally;
  tokenFiles = cfg.settings.auth.token_files or [];
  hasToken = cfg.credentials ? api-token || tokenFiles != [];

  inStore = path: lib.hasPrefix builtins.storeDir (toString path);
  secretPaths =
    lib.attrValues cfg.credentials
    ++ tokenFiles
    ++ lib.filter (path: path != null) [
      (cfg.settings.blobs.access_key_id_file or null)
      (cfg.settings.blobs.secret_access_key_file or null)
      (cfg.settings.database.password_file or null)
      cfg.database.passwordFile
    ];

  configFile = settingsFormat.generate "hearth.toml" cfg.settings;

  # attic's checkedConfigFile: hearthd validates the rendered file at build time, so an unknown key or an
  # impossible value fails `nixos-rebuild`, not the service. Token files only exist on the running machine, so
  # the check leaves them out and, like the unit, gets an `api-token` credential (a stand-in) when the service
  # will have a token: the bind policy is checked as it will apply.
  checkSettings =
    if tokenFiles == []
    then cfg.settings
    else lib.recursiveUpdate cfg.settings {auth.token_files = [];};
  checkedConfigFile =
    pkgs.runCommand "hearth-checked.toml" {
      nativeBuildInputs = [cfg.package];
      preferLocalBuild = true;
    } ''
      export CREDENTIALS_DIRECTORY="$TMPDIR/credentials"
      mkdir -m 0700 "$CREDENTIALS_DIRECTORY"
      ${lib.optionalString hasToken ''
        printf '%s' 'build-time-stand-in-for-the-minted-api-token-0' > "$CREDENTIALS_DIRECTORY/api-token"
        chmod 0400 "$CREDENTIALS_DIRECTORY/api-token"
      ''}
      hearthd --config ${settingsFormat.generate "hearth-check.toml" checkSettings} check-config
      cp ${configFile} $out
    '';
in {
  options.services.hearth = {
    enable = mkEnableOption "hearth, a private semantic search service (hearthd, its database, object store and first-boot secrets)";

    revision = mkOption {
      type = types.str;
      default = "unknown";
      internal = true;
      description = ''
        The source revision the module's default packages are built from, which hearthd reports in
        `/v1/capabilities` and `hearth_build_info`. The flake's modules set it to the flake's revision, so that
        the default `package` is the same derivation as the flake's `packages.<system>.hearthd`.
      '';
    };

    package = mkOption {
      type = types.package;
      default = hearthPkgs.hearthd;
      defaultText = lib.literalExpression "hearthd built from this flake";
      description = "The hearthd package (wrapped so that it finds onnxruntime).";
    };

    cliPackage = mkOption {
      type = types.package;
      default = hearthPkgs.hearth;
      defaultText = lib.literalExpression "hearth (the CLI) built from this flake";
      description = "The `hearth` command-line client, installed system-wide.";
    };

    onnxruntimePackage = mkOption {
      type = types.package;
      default = hearthPkgs.onnxruntime;
      defaultText = lib.literalExpression "pkgs.onnxruntime (asserted >= 1.24)";
      description = ''
        onnxruntime that hearthd loads (`embedding.onnxruntime`). fastembed's ort needs the C API of
        onnxruntime 1.24 or later.
      '';
    };

    model = mkOption {
      type = types.either (types.enum (lib.attrNames models)) types.path;
      default = "nomic-embed-text-v1.5";
      example = "nomic-embed-text-v1.5-quantized";
      description = ''
        The embedding model: one of the models pinned in this flake (fixed-output fetches, every file's sha256
        checked again by hearthd at load), or the path of a model directory with a `manifest.json`.
        Changing it re-embeds every document in the background.
      '';
    };

    listen = mkOption {
      type = types.str;
      default = "127.0.0.1:8080";
      example = "0.0.0.0:8080";
      description = ''
        Address hearthd listens on (`settings.listen`). Any non-loopback address requires a bearer token: the
        minted `api-token` credential (the default) or `settings.auth.token_files`.
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the port of `listen` in the firewall (for LAN clients).";
    };

    secretsDir = mkOption {
      type = types.str;
      default = "/var/lib/hearth/secrets";
      description = ''
        Where `hearth-firstboot mint` keeps the per-instance secrets (root, 0700; files 0400). Services get
        their own copies through `LoadCredential=`; nothing reads this directory directly except root.
      '';
    };

    credentials = mkOption {
      type = types.attrsOf types.str;
      description = ''
        systemd credentials hearthd gets (`LoadCredential=name:path`): `api-token` (bearer token), with
        Garage `s3-access-key-id` / `s3-secret-key`, and with another database server `postgres-password`. In a
        fleet (`services.hearth.fleet`) also `fleet-token` (a second bearer token hearthd accepts: the one the
        fleet's boxes share) on the embedder, and `embedding-remote-token` (the token sent to
        `settings.embedding.remote.url`) on the others. Paths must not be in the Nix store.
      '';
    };

    database = {
      createLocally = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Run PostgreSQL with pgvector on this machine, with a `hearth` role and database reached over the
          local socket with peer authentication. Set it to false and `settings.database.url` to use another
          server (which must have the `vector` extension in hearth's database).
        '';
      };
      passwordFile = mkOption {
        # A string, not a path: a Nix path would be copied into the world-readable store.
        type = types.nullOr (types.strMatching "/.+");
        default =
          if cfg.database.createLocally
          then null
          else "${cfg.secretsDir}/postgres-password";
        defaultText = lib.literalExpression ''
          if database.createLocally then null else "''${secretsDir}/postgres-password"
        '';
        description = ''
          A file with the password of hearth's role on another PostgreSQL server, which hearthd gets as its
          `postgres-password` credential (never in the configuration file). By default first boot mints it; give
          the server's `hearth` role that password (hearthd waits, saying so in its status, until the server
          accepts it). It takes precedence over a password in `settings.database.url`; `null` for a server that
          needs none, or for a database this machine runs itself outside hearth's module.
        '';
      };
    };

    garage.enable = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Keep the originals in a local single-node Garage (S3) provisioned on first boot. When false, hearthd
        keeps them in a directory under its state directory.
      '';
    };

    garage.bucket = mkOption {
      type = types.str;
      default = "hearth";
      description = ''
        The Garage bucket hearthd keeps the originals in (`settings.blobs.bucket`), which first boot creates
        with hearth's key. In a cluster (`garage.cluster`) every box has a bucket of its own: the boxes share
        one Garage, and a box's blob sweeper deletes what its own database does not know. There the default is
        `hearth-<garage.cluster.node>`.
      '';
    };

    firstboot = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Mint every per-instance secret on first boot (`hearth-firstboot mint`). When false, the site provides
          them before the units start, as regular files (not symlinks: copy them out of sops-nix's or agenix's
          paths with a unit of your own) in `secretsDir`, which must be a root-owned 0700 directory, each file
          0400 root: `api-token`, with Garage `garage-rpc-secret`, `garage-admin-token`, `garage-metrics-token`,
          `s3-access-key-id`, `s3-secret-key`, and with another database server `postgres-password`, in the
          formats of docs/firstboot.md (`hearth-firstboot status` checks them). A unit whose file is missing fails
          to start and names it.
        '';
      };
      package = mkOption {
        type = types.package;
        default = hearthPkgs.hearth-firstboot;
        defaultText = lib.literalExpression "hearth-firstboot built from this flake";
        description = "The `hearth-firstboot` package.";
      };
      seal = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Also write `systemd-creds`-encrypted copies (TPM2 when present) of every secret under
          `secretsDir/sealed/`, for `LoadCredentialEncrypted=`.
        '';
      };
    };

    reasoning.provider = mkOption {
      type = types.nullOr (types.submodule {
        options = {
          baseUrl = mkOption {
            type = types.strMatching "https?://.+";
            example = "http://workstation.local:8000/v1";
            description = "The provider's OpenAI-compatible base URL, up to and including `/v1`.";
          };
          model = mkOption {
            type = types.str;
            description = "The provider's model name.";
          };
          apiKeyFile = mkOption {
            # A string, not a path: a Nix path would be copied into the world-readable store.
            type = types.nullOr (types.strMatching "/.+");
            default = null;
            description = ''
              A file holding the provider's API key (0400 root), which hearthd gets as its `reasoning-api-key`
              credential; `null` for a LAN engine without one.
            '';
          };
          answers = mkOption {
            type = types.bool;
            default = true;
            description = "Send the passages retrieved for a question to this provider to answer it.";
          };
          concepts = mkOption {
            type = types.bool;
            default = false;
            description = ''
              Send every document's chunks (never those of `"private": true` documents) to this provider to
              extract the library's concept graph, within `settings.concepts.daily_token_budget` tokens a day.
            '';
          };
        };
      });
      default = null;
      description = ''
        A reasoning provider declared here, for a fleet, instead of pasted into the web UI's Settings (which
        then shows it and cannot change it). Only passages of documents not marked `"private": true` are sent,
        and only for the features turned on.
      '';
    };

    settings = mkOption {
      type = types.submodule {freeformType = settingsFormat.type;};
      default = {};
      example = lib.literalExpression ''
        {
          ingest.workers = 4;
          embedding.intra_threads = 4;
        }
      '';
      description = ''
        hearth's configuration (`hearth.toml`): every key hearthd accepts, see the configuration table of
        hearth's README. The module's own values are defaults (`lib.mkDefault`); the file is validated at build
        time with `hearthd check-config`.
      '';
    };
  };

  config = mkIf cfg.enable {
    services.hearth = {
      settings = lib.mkMerge [
        (lib.mapAttrsRecursive (_: mkDefault) (import ../nix/hearth-settings.nix {
          inherit (cfg) listen;
          modelDir = "${modelDir}";
          onnxruntime = "${cfg.onnxruntimePackage}/lib/libonnxruntime.so";
          blobBackend =
            if cfg.garage.enable
            then "s3"
            else "local";
          inherit (cfg.garage) bucket;
          # The client tools of the server hearth's database is on, for the dump before every migration.
          postgresBin =
            if config.services.postgresql.enable
            then "${config.services.postgresql.package}/bin"
            else null;
        }))
        # The key is not in the file: hearthd reads the `reasoning-api-key` credential for a declared provider.
        (mkIf (provider != null) {
          reasoning.provider = {
            base_url = provider.baseUrl;
            inherit (provider) model answers concepts;
          };
        })
      ];
      credentials = lib.mkMerge [
        {api-token = mkDefault "${cfg.secretsDir}/api-token";}
        (mkIf cfg.garage.enable {
          s3-access-key-id = mkDefault "${cfg.secretsDir}/s3-access-key-id";
          s3-secret-key = mkDefault "${cfg.secretsDir}/s3-secret-key";
        })
        (mkIf (cfg.database.passwordFile != null) {postgres-password = mkDefault cfg.database.passwordFile;})
        (mkIf (provider != null && provider.apiKeyFile != null) {reasoning-api-key = provider.apiKeyFile;})
      ];
    };

    assertions = [
      {
        assertion = isLoopback listen || hasToken;
        message = ''
          services.hearth: hearthd would listen on ${listen} without a bearer token, and would refuse to start.
          Keep the minted `api-token` credential (services.hearth.credentials.api-token), set
          services.hearth.settings.auth.token_files, or listen on loopback.
        '';
      }
      {
        assertion = !(lib.any inStore secretPaths) && !(inStore cfg.secretsDir);
        message = ''
          services.hearth: a secret path is inside ${builtins.storeDir}, which every user can read:
          ${lib.concatStringsSep ", " (lib.filter inStore (secretPaths ++ [cfg.secretsDir]))}
        '';
      }
    ];

    users.users.hearth = {
      isSystemUser = true;
      group = "hearth";
      description = "hearth service";
    };
    users.groups.hearth = {};

    # /var/lib/hearth holds secrets/ (root, 0700), data/ and backups/ (hearth, 0700): traversable, never listable.
    systemd.tmpfiles.settings."10-hearth"."/var/lib/hearth".d = {
      mode = "0711";
      user = "root";
      group = "root";
    };

    environment.etc."hearth/hearth.toml".source = checkedConfigFile;
    # hearth-firstboot too: docs/install.md has root run `hearth-firstboot status` on the box.
    environment.systemPackages = [
      cfg.cliPackage
      cfg.package
      cfg.firstboot.package
    ];

    networking.firewall.allowedTCPPorts = lib.optional cfg.openFirewall (listenPort listen);

    systemd.services.hearthd = {
      description = "hearth: ingest, embed and search documents";
      wantedBy = ["multi-user.target"];
      # A specific LAN address exists only once the network is up (loopback and the wildcard bind at any time),
      # and so does a database on another machine.
      after =
        if needsNetwork
        then ["network-online.target"]
        else ["network.target"];
      wants = lib.optional needsNetwork "network-online.target";
      # A unit that keeps failing ends `failed` (start-limit-hit) instead of restarting forever.
      startLimitIntervalSec = 300;
      startLimitBurst = 5;
      environment.HEARTH_LOG = mkDefault "info";

      # A credential file that is missing (one the site provides, or first boot did not mint) fails the start
      # naming the file, instead of a restart loop on LoadCredential=.
      unitConfig.AssertPathExists = lib.attrValues cfg.credentials;

      serviceConfig =
        import ../nix/hardening.nix
        // {
          Type = "notify";
          NotifyAccess = "main";
          WatchdogSec = "60s";
          ExecStart = "${lib.getExe cfg.package} --config ${checkedConfigFile} serve";
          Restart = "on-failure";
          RestartSec = "5s";
          # Loading and verifying a model (sha256 of ~550 MB) on a Raspberry Pi takes a while.
          TimeoutStartSec = "5min";
          TimeoutStopSec = "30s";

          # A static system user rather than DynamicUser: the role name is what PostgreSQL's peer authentication
          # and ensureUsers match, the state directory keeps one owner across reboots (DynamicUser would move it
          # to /var/lib/private and re-own the blob store whenever the UID changes), and /var/lib/hearth also
          # holds root's secrets/, which a DynamicUser StateDirectory=hearth would take over.
          User = "hearth";
          Group = "hearth";
          # data/: the blob store; backups/: the dump before every migration and hearth upgrade's record.
          StateDirectory = [
            "hearth/data"
            "hearth/backups"
          ];
          StateDirectoryMode = "0700";
          UMask = "0077";
          LoadCredential = lib.mapAttrsToList (name: path: "${name}:${path}") cfg.credentials;

          # Beyond the shared sandbox (nix/hardening.nix); the aim is `systemd-analyze security hearthd` <= 2.
          AmbientCapabilities = [""];
          DevicePolicy = mkDefault "closed";
          PrivateDevices = mkDefault true;
          PrivateUsers = true;
          PrivateMounts = true;
          ProtectProc = "invisible";
          # ProcSubset=pid is left out: onnxruntime's cpuinfo reads /proc/cpuinfo to size its thread pool.
          RemoveIPC = true;
          RestrictAddressFamilies = [
            "AF_UNIX"
            "AF_INET"
            "AF_INET6"
          ];
          # @sandbox: the extraction child confines itself further with Landlock and seccomp (hearthd's own
          # children; NoNewPrivileges is set).
          SystemCallFilter = [
            "@system-service"
            "@sandbox"
            "~@privileged"
          ];
          SystemCallErrorNumber = "EPERM";
        };
    };
  };
}
