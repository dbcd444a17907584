# Garage as hearth's blob store: sqlite metadata with fsync (LMDB can corrupt on an unclean shutdown), the S3 and
# admin APIs on loopback. Alone (the default) it is a single node with replication 1, its RPC on loopback too. Its
# secrets are the ones hearth-firstboot minted, handed over as systemd credentials (nixpkgs runs Garage as a
# DynamicUser, which cannot read root's 0400 files; LoadCredential= gives the service its own copy under
# /run/credentials/garage.service). Then hearth-firstboot-garage provisions the layout, hearth's key and bucket
# before hearthd starts.
#
# With `services.hearth.garage.cluster` the box is one node of a Garage cluster on the LAN (a fleet, see
# modules/fleet.nix): replication 2 or 3, RPC on every interface, the other nodes as bootstrap peers, the shared
# RPC secret and this node's own declared key (so its node id is the one the flake names, also after its disk was
# replaced) from files the operator put on the box. One node, the layout keeper, gives every declared node its role;
# each box keeps its originals in a bucket of its own.
{
  config,
  lib,
  pkgs,
  ...
}: let
  inherit (lib) mkOption types;

  cfg = config.services.hearth;
  cluster = cfg.garage.cluster;
  credentials = "/run/credentials/garage.service";
  adminApi = "127.0.0.1:3903";
  firstbootUnit = lib.optional cfg.firstboot.enable "hearth-firstboot.service";

  inStore = path: lib.hasPrefix builtins.storeDir (toString path);
  names = lib.attrNames cluster.nodes;
  nameList = lib.concatStringsSep ", " names;
  # This node and the others; a name missing from `nodes` is reported by an assertion, not an attribute error.
  self =
    cluster.nodes.${cluster.node}
    or {
      id = "";
      address = "127.0.0.1:3901";
    };
  others = lib.filterAttrs (name: _: name != cluster.node) cluster.nodes;
  # "192.168.1.21:3901" -> "3901", "[fd00::21]:3901" -> "3901"
  portOf = address: lib.last (lib.splitString ":" address);
  isHostPort = address: builtins.match "(\\[[0-9A-Fa-f:.]+]|[A-Za-z0-9.-]+):[0-9]+" address != null;
  duplicates = values: lib.unique (lib.filter (value: lib.count (other: other == value) values > 1) values);
  duplicateIds = duplicates (lib.mapAttrsToList (_: node: node.id) cluster.nodes);
  duplicateAddresses = duplicates (lib.mapAttrsToList (_: node: node.address) cluster.nodes);
  badIds = lib.attrNames (lib.filterAttrs (_: node: builtins.match "[0-9a-f]{64}" node.id == null) cluster.nodes);
  badAddresses = lib.attrNames (lib.filterAttrs (_: node: !(isHostPort node.address)) cluster.nodes);

  # Garage's credentials: the name it loads each under, and the file on the box.
  garageCredentials =
    {
      rpc-secret =
        if cluster.enable
        then cluster.rpcSecretFile
        else "${cfg.secretsDir}/garage-rpc-secret";
      admin-token = "${cfg.secretsDir}/garage-admin-token";
      metrics-token = "${cfg.secretsDir}/garage-metrics-token";
    }
    // lib.optionalAttrs cluster.enable {node-key = cluster.nodeKeyFile;};

  # Every node the layout must hold, as first boot takes it: ID=ZONE:CAPACITY_BYTES.
  clusterArguments =
    # The key's name is a label (first boot finds it by id); one per box tells them apart in `garage key list`.
    ["--key-name hearth-${cluster.node}"]
    ++ lib.mapAttrsToList (_: node: "--cluster-node ${node.id}=${node.zone}:${toString node.capacity}") cluster.nodes
    ++ lib.optional (cluster.layoutKeeper == cluster.node) "--apply-layout";

  metadataDir = config.services.garage.settings.metadata_dir;
  # In a cluster the other boxes may take minutes to come up, the layout keeper among them: the others wait for its
  # layout (hearth-firstboot's --wait-seconds) before they create their key and bucket.
  waitSeconds =
    if cluster.enable
    then 600
    else 120;

  nodeType = types.submodule ({name, ...}: {
    options = {
      id = mkOption {
        type = types.str;
        example = "a5b06f907475fc9fc8710e66bb61cfc5e712024ae06dc80a28c501f68da87d17";
        description = ''
          The node's Garage node id: 64 lowercase hexadecimal digits, the public half of its node key, as
          `hearth-firstboot fleet-secrets` prints it.
        '';
      };
      address = mkOption {
        type = types.str;
        example = "192.168.1.21:3901";
        description = ''
          `host:port` where the other nodes reach this node's Garage RPC (its `rpc_public_addr`); an IP address
          is safest (a box resolves its own host name to 127.0.0.2). IPv6 in brackets: `[fd00::21]:3901`.
        '';
      };
      zone = mkOption {
        type = types.strMatching "[A-Za-z0-9._-]+";
        default = name;
        defaultText = lib.literalExpression "the node's name";
        description = "The node's Garage zone: Garage puts the copies of a block in different zones where it can.";
      };
      capacity = mkOption {
        type = types.ints.positive;
        example = 200 * 1000 * 1000 * 1000;
        description = ''
          What the node offers the cluster, in bytes. Garage shares partitions out in proportion; with
          replication as high as the number of nodes every node holds everything, and the smallest one bounds
          what the cluster holds.
        '';
      };
    };
  });
in {
  options.services.hearth.garage.cluster = {
    enable =
      lib.mkEnableOption ''
        Garage as one node of a cluster on the LAN: the originals of every box replicated across the boxes'';

    node = mkOption {
      type = types.strMatching "[a-z0-9]([a-z0-9-]{0,54}[a-z0-9])?";
      example = "pi-kitchen";
      description = "This box: its name in `nodes`. Its bucket is `hearth-<node>` by default.";
    };

    nodes = mkOption {
      type = types.attrsOf nodeType;
      default = {};
      description = "Every node of the cluster, this one included, by name.";
    };

    replicationFactor = mkOption {
      type = types.enum [2 3];
      default =
        if lib.length names >= 3
        then 3
        else 2;
      defaultText = lib.literalExpression "3 with three nodes or more, else 2";
      description = ''
        Copies of every block and table entry (Garage's `replication_factor`; the same on every node, and fixed
        once the layout exists). With 3, any one node may be down and the cluster still reads and writes (quorum
        2 of 3); with 2 it reads while one copy is up but writes only while both nodes holding the data are.
      '';
    };

    layoutKeeper = mkOption {
      type = types.str;
      example = "workstation";
      description = ''
        The node whose first boot gives the declared nodes missing from the cluster layout their roles and applies
        it (`hearth-firstboot garage --apply-layout`); the others wait until the layout holds every declared node.
        Best the box that is on most.
      '';
    };

    rpcSecretFile = mkOption {
      # A string, not a path: a Nix path would be copied into the world-readable store.
      type = types.strMatching "/.+";
      example = "/var/lib/hearth-fleet/garage-rpc-secret";
      description = ''
        The cluster's shared RPC secret (64 hexadecimal digits) on this box, root 0400, instead of the one first
        boot mints. `hearth-firstboot fleet-secrets` writes it once for every node.
      '';
    };

    nodeKeyFile = mkOption {
      type = types.strMatching "/.+";
      example = "/var/lib/hearth-fleet/pi-kitchen.garage-node-key";
      description = ''
        This node's Garage node key on this box, root 0400: 64 bytes, an ed25519 secret key as libsodium writes it
        (seed, then public key), which `hearth-firstboot fleet-secrets` writes per node. Garage's unit installs it
        as `node_key` in its metadata directory (a replaced disk comes back as the same node) after checking that
        it is the key of `nodes.<node>.id`.
      '';
    };
  };

  config = lib.mkMerge [
    (lib.mkIf (cfg.enable && cluster.enable) {
      assertions = [
        {
          assertion = cfg.garage.enable;
          message = ''
            services.hearth.garage.cluster.enable needs Garage: set services.hearth.garage.enable = true (or turn
            the cluster off).
          '';
        }
        {
          assertion = cluster.nodes ? ${cluster.node};
          message = ''
            services.hearth.garage.cluster.node is "${cluster.node}", which is not one of
            services.hearth.garage.cluster.nodes (${nameList}): add this box to nodes, or fix its name.
          '';
        }
        {
          assertion = cluster.nodes ? ${cluster.layoutKeeper};
          message = ''
            services.hearth.garage.cluster.layoutKeeper is "${cluster.layoutKeeper}", which is not one of
            services.hearth.garage.cluster.nodes (${nameList}): name one of the nodes.
          '';
        }
        {
          assertion = cluster.replicationFactor <= lib.length names;
          message = ''
            services.hearth.garage.cluster.replicationFactor is ${toString cluster.replicationFactor}, but the
            cluster has ${toString (lib.length names)} node(s) (${nameList}): Garage could not place that many copies.
            Lower replicationFactor or declare more nodes.
          '';
        }
        {
          assertion = badIds == [];
          message = ''
            services.hearth.garage.cluster.nodes.<name>.id must be the 64 lowercase hexadecimal digits of the node's
            Garage node id (as `hearth-firstboot fleet-secrets` prints them); not so for: ${lib.concatStringsSep ", " badIds}.
          '';
        }
        {
          assertion = duplicateIds == [];
          message = ''
            services.hearth.garage.cluster.nodes: two nodes have the same id (${lib.concatStringsSep ", " duplicateIds}):
            every node needs its own node key; give each the id `hearth-firstboot fleet-secrets` printed for it.
          '';
        }
        {
          assertion = badAddresses == [];
          message = ''
            services.hearth.garage.cluster.nodes.<name>.address must be host:port (IPv6 in brackets,
            "[fd00::21]:3901"); not so for: ${lib.concatStringsSep ", " badAddresses}.
          '';
        }
        {
          assertion = duplicateAddresses == [];
          message = ''
            services.hearth.garage.cluster.nodes: two nodes have the same address
            (${lib.concatStringsSep ", " duplicateAddresses}): give each node the address of its own box.
          '';
        }
        {
          assertion = !(inStore cluster.rpcSecretFile) && !(inStore cluster.nodeKeyFile);
          message = ''
            services.hearth.garage.cluster: rpcSecretFile and nodeKeyFile must be files on the box, not in
            ${builtins.storeDir}, which every user can read: ${lib.concatStringsSep ", " (lib.filter inStore [cluster.rpcSecretFile cluster.nodeKeyFile])}
          '';
        }
        {
          assertion = builtins.match "[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]" cfg.garage.bucket != null;
          message = ''
            services.hearth.garage.bucket "${cfg.garage.bucket}" is not a Garage bucket name (3 to 63 lowercase
            letters, digits, dots and hyphens).
          '';
        }
      ];
    })

    (lib.mkIf (cfg.enable && cfg.garage.enable) {
      services.garage = {
        enable = true;
        package = lib.mkDefault pkgs.garage_2;
        settings = {
          replication_factor =
            if cluster.enable
            then cluster.replicationFactor
            else 1;
          # The secrets come through LoadCredential=: with a service user systemd grants read access to them with
          # an ACL, so the files show mode 0440 and Garage's own check ("is world-readable") would refuse to start
          # (systemd/systemd#29435). /run/credentials/garage.service is private to the unit, which is what the
          # check is there to ensure.
          allow_world_readable_secrets = true;
          db_engine = "sqlite";
          metadata_fsync = true;
          data_fsync = true;
          rpc_bind_addr = lib.mkDefault (
            if cluster.enable
            then "[::]:${portOf self.address}"
            else "127.0.0.1:3901"
          );
          rpc_public_addr = lib.mkDefault (
            if cluster.enable
            then self.address
            else "127.0.0.1:3901"
          );
          # Garage keeps retrying them until it is connected; it learns the rest of the cluster from any of them.
          bootstrap_peers = lib.mkIf cluster.enable (lib.mapAttrsToList (_: node: "${node.id}@${node.address}") others);
          # A node that learns of a block (a box back from a power cut, told by first boot's table sync) fetches it
          # after twice this: Garage's default of 300 s would leave it ten minutes without the originals it missed.
          # 30 s is still far longer than a 1 MiB block takes over a home LAN.
          rpc_timeout_msec = lib.mkIf cluster.enable (lib.mkDefault 30000);
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
        unitConfig.AssertPathExists = lib.attrValues garageCredentials;
        serviceConfig = {
          LoadCredential = lib.mapAttrsToList (credential: file: "${credential}:${file}") garageCredentials;
          Restart = lib.mkDefault "on-failure";
          RestartSec = lib.mkDefault "5s";
        };
        # The declared node key becomes Garage's own (metadata_dir/node_key, and node_key.pub, which the garage
        # CLI reads), written only when it differs: on a fresh or replaced disk, or when the key file changed.
        # Runs as Garage's DynamicUser, in its state directory, with its credentials.
        preStart = lib.mkIf cluster.enable ''
          key="$CREDENTIALS_DIRECTORY/node-key"
          meta=${lib.escapeShellArg metadataDir}
          size="$(stat -c %s "$key")"
          if [ "$size" != 64 ]; then
            echo "hearth: ${cluster.nodeKeyFile} holds $size bytes; a Garage node key is 64 (hearth-firstboot fleet-secrets writes it as ${cluster.node}.garage-node-key)" >&2
            exit 1
          fi
          id="$(tail -c 32 "$key" | od -An -v -tx1 | tr -d ' \n')"
          if [ "$id" != ${lib.escapeShellArg self.id} ]; then
            echo "hearth: ${cluster.nodeKeyFile} is the key of Garage node $id, but this box is declared as node ${cluster.node} with id ${self.id}: copy ${cluster.node}.garage-node-key here, or fix services.hearth.garage.cluster.nodes.${cluster.node}.id" >&2
            exit 1
          fi
          mkdir -p "$meta"
          chmod 0700 "$meta"
          if [ ! -f "$meta/node_key" ] || [ "$(base64 -w0 < "$key")" != "$(base64 -w0 < "$meta/node_key")" ]; then
            install -m 0600 "$key" "$meta/node_key.hearth-new"
            mv -f "$meta/node_key.hearth-new" "$meta/node_key"
            echo "hearth: installed the declared node key of ${cluster.node} ($id)"
          fi
          if [ ! -f "$meta/node_key.pub" ] || [ "$(tail -c 32 "$key" | base64 -w0)" != "$(base64 -w0 < "$meta/node_key.pub")" ]; then
            tail -c 32 "$key" > "$meta/node_key.pub.hearth-new"
            mv -f "$meta/node_key.pub.hearth-new" "$meta/node_key.pub"
          fi
        '';
      };

      # Garage RPC from the other nodes (authenticated by the shared RPC secret; S3 and admin stay on loopback).
      networking.firewall.allowedTCPPorts = lib.mkIf cluster.enable [(lib.toInt (portOf self.address))];

      services.hearth.garage.bucket = lib.mkIf cluster.enable (lib.mkDefault "hearth-${cluster.node}");
      # So that `hearth-firstboot status` in a login shell checks this box's bucket, not the default one.
      environment.variables.HEARTH_GARAGE_BUCKET = lib.mkIf (cfg.garage.bucket != "hearth") cfg.garage.bucket;

      # Idempotent: on later boots it checks and prints "nothing to do", and it re-provisions a Garage whose
      # metadata was lost. Runs as root because it reads the admin token and the S3 key pair from secretsDir.
      systemd.services.hearth-firstboot-garage = {
        description = "hearth first boot: provision Garage (layout, key, bucket)";
        # Retried without a start limit in a cluster (see Restart= below): boxes come back in any order.
        startLimitIntervalSec = lib.mkIf cluster.enable 0;
        wantedBy = ["multi-user.target"];
        after = ["garage.service"] ++ firstbootUnit;
        requires = ["garage.service"] ++ firstbootUnit;
        before = ["hearthd.service"];
        serviceConfig =
          import ../nix/hardening.nix
          // {
            Type = "oneshot";
            RemainAfterExit = true;
            # In a cluster it waits for a quorum of boxes (and the layout keeper); after a power cut of the whole
            # house that can take longer than one --wait-seconds, and hearthd needs this unit: try again.
            Restart = lib.mkIf cluster.enable "on-failure";
            RestartSec = lib.mkIf cluster.enable "30s";
            ExecStart = lib.concatStringsSep " " (
              [
                (lib.getExe cfg.firstboot.package)
                "--secrets-dir ${cfg.secretsDir}"
                "garage"
                "--admin-endpoint http://${adminApi}"
                "--wait-seconds ${toString waitSeconds}"
              ]
              ++ lib.optional (cfg.garage.bucket != "hearth") "--bucket ${cfg.garage.bucket}"
              ++ lib.optionals cluster.enable clusterArguments
            );
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
    })
  ];
}
