# The combinations a site picks, attic-style: Garage on or off × first boot on or off × PostgreSQL on the box or
# on another machine. Each is a VM test of its own (checks `vm-matrix-<combination>`): the stack comes up, a
# document goes in and is found, its original is where the combination puts it, and what the combination turns
# off does not exist. Without first boot a unit of the site's provides the secrets, as sops-nix or agenix would;
# with an external database the password travels as the `postgres-password` credential (minted, or the site's).
{
  pkgs,
  self,
  ...
}: let
  inherit (pkgs) lib;

  secretsDir = "/var/lib/hearth/secrets";
  # What a site's secret manager would put in place (valid formats; docs/firstboot.md).
  siteSecrets = {
    api-token = "site-provided-api-token-for-the-matrix-test-0123456789";
    garage-rpc-secret = "1f0e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    garage-admin-token = "site-provided-garage-admin-token-0123456789abcdef";
    garage-metrics-token = "site-provided-garage-metrics-token-0123456789abcdef";
    s3-access-key-id = "GK0123456789abcdef01234567";
    s3-secret-key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    postgres-password = "site-provided-postgres-password-0123456789abcdef";
  };

  onOff = flag:
    if flag
    then "on"
    else "off";
  name = combination: "garage-${onOff combination.garage}-firstboot-${onOff combination.firstboot}-db-${combination.database}";

  hearthNode = combination: {
    imports = [
      self.nixosModules.default
      ../nix/vm-test-node.nix
    ];
    services.hearth = {
      garage.enable = combination.garage;
      firstboot.enable = combination.firstboot;
      database.createLocally = combination.database == "local";
      settings = lib.mkIf (combination.database == "external") {
        database.url = "postgres://hearth@db/hearth";
      };
    };
    systemd.services.site-secrets = lib.mkIf (!combination.firstboot) {
      description = "The site's secret provisioning (stands in for sops-nix or agenix)";
      wantedBy = ["multi-user.target"];
      before = ["hearthd.service"] ++ lib.optionals combination.garage ["garage.service" "hearth-firstboot-garage.service"];
      requiredBy = ["hearthd.service"] ++ lib.optionals combination.garage ["garage.service" "hearth-firstboot-garage.service"];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        UMask = "0077";
      };
      script =
        ''
          install -d -m 0700 ${secretsDir}
        ''
        + lib.concatStrings (lib.mapAttrsToList (file: value: ''
            printf '%s' '${value}' > ${secretsDir}/${file}
            chmod 0400 ${secretsDir}/${file}
          '')
          siteSecrets);
    };
  };

  # PostgreSQL with pgvector on another machine, reached over the test network with a password.
  databaseNode = combination: {
    services.postgresql = {
      enable = true;
      package = pkgs.postgresql_17;
      extensions = ps: [ps.pgvector];
      enableTCPIP = true;
      ensureDatabases = ["hearth"];
      ensureUsers = [
        {
          name = "hearth";
          ensureDBOwnership = true;
        }
      ];
      authentication = ''
        host hearth hearth all scram-sha-256
      '';
    };
    # The site's password, when there is no first boot to mint one (with first boot the test sets the minted one).
    systemd.services.postgresql-setup.postStart =
      ''
        psql -d hearth -v ON_ERROR_STOP=1 -tAc 'CREATE EXTENSION IF NOT EXISTS vector'
      ''
      + lib.optionalString (!combination.firstboot) ''
        psql -v ON_ERROR_STOP=1 -tAc "ALTER ROLE hearth PASSWORD '${siteSecrets.postgres-password}'"
      '';
    networking.firewall.allowedTCPPorts = [5432];
  };

  # The script is written for its combination (each piece a whole top-level block): the driver type-checks it
  # against the nodes that exist.
  script = combination: firstbootBin: let
    external = combination.database == "external";
    when = lib.optionalString;
    rows =
      if external
      then "db"
      else "machine";
    provided = lib.attrNames (lib.filterAttrs (name: _: combination.garage || !(lib.hasPrefix "garage-" name || lib.hasPrefix "s3-" name)) siteSecrets);
  in
    lib.concatStringsSep "\n" [
      ''
        secrets = "${secretsDir}"
        start_all()
      ''
      (when external ''
        db.wait_for_unit("postgresql.target")
      '')
      (when (external && combination.firstboot) ''
        with subtest("first boot mints the database password; hearthd waits for the server to accept it"):
            machine.wait_for_unit("hearth-firstboot.service")
            machine.succeed(f"test -f {secrets}/.minted-v2-tcp")
            machine.wait_until_succeeds(
                "systemctl show -P StatusText hearthd.service | grep -q 'waiting for the database'", timeout=300
            )
            machine.fail("systemctl is-failed hearthd.service")
            password = machine.succeed(f"cat {secrets}/postgres-password").strip()
            db.succeed(f"runuser -u postgres -- psql -v ON_ERROR_STOP=1 -tAc \"ALTER ROLE hearth PASSWORD '{password}'\"")
      '')
      ''
        with subtest("the stack comes up and hearthd is ready"):
            machine.wait_for_unit("hearthd.service")
            machine.wait_until_succeeds("hearth status", timeout=300)

        with subtest("a document goes in and search finds it"):
            machine.succeed("echo 'The cooper bends oak staves over a fire to raise the barrel.' > /root/barrel.txt")
            machine.succeed("hearth ingest --wait /root/barrel.txt")
            machine.succeed("hearth search --json 'how are wooden barrels made' | grep -q 'oak staves'")

        with subtest("the rows are in the database the combination names"):
            count = "runuser -u postgres -- psql -d hearth -tAc 'SELECT count(*) FROM documents'"
            assert ${rows}.succeed(count).strip() == "1"
      ''
      (when external ''
        with subtest("must fail: no PostgreSQL on the hearth machine"):
            machine.fail("systemctl cat postgresql.service")
      '')
      (
        if combination.garage
        then ''
          with subtest("the original is in Garage"):
              machine.succeed("systemctl is-active garage.service hearth-firstboot-garage.service")
              machine.fail("test -e /var/lib/hearth/data/blobs")
        ''
        else ''
          with subtest("the original is in hearthd's directory, and there is no Garage"):
              machine.fail("systemctl cat garage.service")
              machine.succeed("test -n \"$(ls -A /var/lib/hearth/data/blobs)\"")
        ''
      )
      (
        if combination.firstboot
        then ''
          with subtest("first boot ran and left its sentinel"):
              machine.succeed(f"test -f {secrets}/.minted-v2${when external "-tcp"}")
        ''
        else ''
          with subtest("without first boot: no unit, no sentinel, and the site's secrets are ones hearth accepts"):
              machine.fail("systemctl cat hearth-firstboot.service")
              machine.fail(f"ls {secrets}/.minted-v2*")
              status = machine.execute(f"${firstbootBin} --secrets-dir {secrets} status --no-garage${when external " --postgres-over-tcp"}")[1]
              for name in ${builtins.toJSON provided}:
                  assert any(line.startswith("present") and f" {name} " in line for line in status.splitlines()), status
        ''
      )
    ];

  test = combination:
    pkgs.testers.runNixOSTest {
      name = "hearth-${name combination}";
      nodes =
        {machine = hearthNode combination;}
        // lib.optionalAttrs (combination.database == "external") {db = databaseNode combination;};
      testScript = {nodes, ...}: script combination (lib.getExe nodes.machine.services.hearth.firstboot.package);
    };
in
  lib.listToAttrs (map (combination: lib.nameValuePair (name combination) (test combination)) (
    lib.cartesianProduct {
      garage = [true false];
      firstboot = [true false];
      database = ["local" "external"];
    }
  ))
