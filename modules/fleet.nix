# services.hearth.fleet: several hearth boxes on one LAN, described once (the same value on every box, with only
# `name` differing). Each box keeps its own hearthd, database and search; what they share:
#   - Garage: one cluster of all members (services.hearth.garage.cluster), each box's originals in a bucket of
#     its own and replicated to the others, so a dead SD card loses no original;
#   - embedding: every member but the embedder embeds on the embedder's hearthd (settings.embedding.remote, with
#     the fleet token), falling back to its own model while the embedder is away.
# The secrets come from `hearth-firstboot fleet-secrets`, run once by the operator, who copies them to each box
# (docs/install.md, "Growing to several boxes"); nothing secret is in the flake.
{
  config,
  lib,
  options,
  ...
}: let
  inherit (lib) mkOption types;

  cfg = config.services.hearth.fleet;
  hearth = config.services.hearth;
  names = lib.attrNames cfg.members;
  nameList = lib.concatStringsSep ", " names;
  nameType = types.strMatching "[a-z0-9]([a-z0-9-]{0,54}[a-z0-9])?";

  isEmbedder = cfg.embedder == cfg.name;
  embedder =
    if cfg.embedder == null
    then null
    else cfg.members.${cfg.embedder} or null;
  # An IPv6 address goes in brackets in a URL and in host:port.
  hostPart = address:
    if lib.hasInfix ":" address
    then "[${address}]"
    else address;
  isIp = address: lib.hasInfix ":" address || builtins.match "[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+" address != null;
  fleetToken = "${cfg.secretsDir}/fleet-token";
  inStore = path: lib.hasPrefix builtins.storeDir (toString path);

  # "0.0.0.0:8080" -> "0.0.0.0", "[::]:8080" -> "::"
  listenParts = builtins.match "\\[(.*)]:([0-9]+)|(.*):([0-9]+)" hearth.listen;
  listenHost = lib.findFirst (part: part != null) hearth.listen [(lib.elemAt listenParts 0) (lib.elemAt listenParts 2)];
  listenPort = lib.findFirst (part: part != null) "" [(lib.elemAt listenParts 1) (lib.elemAt listenParts 3)];
  onTheLan = listenParts != null && !(listenHost == "::1" || lib.hasPrefix "127." listenHost);

  memberType = types.submodule ({name, ...}: {
    options = {
      address = mkOption {
        type = types.strMatching "[A-Za-z0-9.:-]+";
        example = "192.168.1.21";
        description = ''
          The box's address on the LAN, without a port: where the others reach its Garage and, for the embedder,
          its hearthd. A fixed IP address (a DHCP reservation) is safest: a box resolves its own host name to
          127.0.0.2, and not every box resolves `.local` names.
        '';
      };
      garageId = mkOption {
        type = types.str;
        example = "a5b06f907475fc9fc8710e66bb61cfc5e712024ae06dc80a28c501f68da87d17";
        description = "The box's Garage node id, as `hearth-firstboot fleet-secrets` printed it for this name.";
      };
      zone = mkOption {
        type = types.strMatching "[A-Za-z0-9._-]+";
        default = name;
        defaultText = lib.literalExpression "the member's name";
        description = "Its Garage zone (copies go to different zones where they can): a room, a building.";
      };
      capacity = mkOption {
        type = types.ints.positive;
        example = 200 * 1000 * 1000 * 1000;
        description = "What the box's disk offers the fleet's originals, in bytes.";
      };
    };
  });
in {
  options.services.hearth.fleet = {
    enable = lib.mkEnableOption "this box as a member of a hearth fleet on the LAN (shared Garage, remote embedding)";

    name = mkOption {
      type = nameType;
      example = "pi-kitchen";
      description = "This box: its name in `members`, which also becomes its host name.";
    };

    members = mkOption {
      type = types.attrsOf memberType;
      default = {};
      description = "Every box of the fleet, by name (lowercase letters, digits and hyphens).";
    };

    embedder = mkOption {
      type = types.nullOr nameType;
      default = null;
      example = "workstation";
      description = ''
        The member whose hearthd embeds for the others (the GPU workstation): the others send it their chunks,
        with the fleet token, and embed with their own model only while it is away (or wait, with
        `settings.embedding.remote.ingest_fallback = "wait"`). Search queries stay local unless
        `settings.embedding.remote.queries = true`. `null`: every box embeds for itself.
      '';
    };

    layoutKeeper = mkOption {
      type = nameType;
      example = "workstation";
      description = "The member that gives the others their roles in the Garage layout: the box that is on most.";
    };

    replicationFactor = mkOption {
      type = types.enum [2 3];
      default =
        if lib.length names >= 3
        then 3
        else 2;
      defaultText = lib.literalExpression "3 with three members or more, else 2";
      description = ''
        Copies of every original in Garage. 3: any one box may be down and the others still read and write.
        2: an original survives one dead box, but writes need both boxes that hold it.
      '';
    };

    model = mkOption {
      inherit (options.services.hearth.model) type;
      default = "nomic-embed-text-v1.5";
      example = "nomic-embed-text-v1.5-quantized";
      description = ''
        The embedding model of every member: a box embeds on the embedder only when both load the same model
        (vectors of different models never mix), so the fleet has one. It overrides the host classes' choice.
      '';
    };

    port = mkOption {
      type = types.port;
      default = 8080;
      description = "The port the embedder's hearthd listens on, on every interface.";
    };

    garagePort = mkOption {
      type = types.port;
      default = 3901;
      description = "The port of every member's Garage RPC.";
    };

    secretsDir = mkOption {
      # A string, not a path: a Nix path would be copied into the world-readable store.
      type = types.strMatching "/.+";
      default = "/var/lib/hearth-fleet";
      description = ''
        Where the operator put this box's fleet secrets from `hearth-firstboot fleet-secrets` (root, 0700; each
        file root 0400): `garage-rpc-secret` and `fleet-token` (the same on every box) and this box's own
        `<name>.garage-node-key`.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = hearth.enable;
        message = "services.hearth.fleet needs services.hearth.enable = true.";
      }
      {
        assertion = cfg.members ? ${cfg.name};
        message = ''
          services.hearth.fleet.name is "${cfg.name}", which is not one of services.hearth.fleet.members
          (${nameList}): give this box the name the fleet description has for it.
        '';
      }
      {
        assertion = cfg.embedder == null || embedder != null;
        message = ''
          services.hearth.fleet.embedder is "${toString cfg.embedder}", which is not one of
          services.hearth.fleet.members (${nameList}): name a member, or null for none.
        '';
      }
      {
        assertion = !isEmbedder || (onTheLan && listenPort == toString cfg.port);
        message = ''
          services.hearth.fleet: this box is the embedder, but hearthd listens on ${hearth.listen}, where the others
          (which call port ${toString cfg.port}) cannot reach it: listen on "0.0.0.0:${toString cfg.port}", or set
          services.hearth.fleet.port to the port it listens on.
        '';
      }
      {
        assertion = !(inStore cfg.secretsDir);
        message = ''
          services.hearth.fleet.secretsDir is in ${builtins.storeDir}, which every user can read: keep the fleet's
          secrets in a directory on the box (the default is /var/lib/hearth-fleet).
        '';
      }
    ];

    # Each box announces its own name (avahi: <name>.local); the host classes' default `hearth` would clash.
    networking.hostName = lib.mkOverride 900 cfg.name;

    # root 0700 whatever the copy left behind; the files in it are the operator's.
    systemd.tmpfiles.settings."10-hearth-fleet".${cfg.secretsDir}.d = {
      mode = "0700";
      user = "root";
      group = "root";
    };

    services.hearth = lib.mkMerge [
      {
        model = lib.mkOverride 900 cfg.model;
        garage.cluster = {
          enable = true;
          node = cfg.name;
          inherit (cfg) layoutKeeper replicationFactor;
          nodes =
            lib.mapAttrs (_: member: {
              id = member.garageId;
              address = "${hostPart member.address}:${toString cfg.garagePort}";
              inherit (member) zone capacity;
            })
            cfg.members;
          rpcSecretFile = "${cfg.secretsDir}/garage-rpc-secret";
          nodeKeyFile = "${cfg.secretsDir}/${cfg.name}.garage-node-key";
        };
      }

      # The embedder: on the LAN, accepting the fleet token besides its own api-token.
      (lib.mkIf isEmbedder {
        listen = lib.mkOverride 900 "0.0.0.0:${toString cfg.port}";
        openFirewall = lib.mkOverride 900 true;
        credentials.fleet-token = fleetToken;
      })
      # The others call it by its address; an IP address is always allowed, a name must be listed.
      (lib.mkIf (isEmbedder && cfg.members ? ${cfg.name} && !(isIp cfg.members.${cfg.name}.address)) {
        settings.api.allowed_hosts = [cfg.members.${cfg.name}.address];
      })

      # Everyone else embeds there, with the fleet token (hearthd reads the `embedding-remote-token` credential).
      (lib.mkIf (!isEmbedder && embedder != null) {
        settings.embedding.remote.url = lib.mkDefault "http://${hostPart embedder.address}:${toString cfg.port}";
        credentials.embedding-remote-token = fleetToken;
      })
    ];
  };
}
