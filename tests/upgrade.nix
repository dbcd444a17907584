# Upgrades keep every document: boot the current hearth, ingest, switch (`switch-to-configuration`, what
# `nixos-rebuild switch` runs) to a hearth whose build carries one more migration, and search again. Then the
# must-fail half: a hearth whose new migration fails stays down with the reason in its journal, the database is
# exactly as before (the migration's transaction rolled back), and switching back serves everything again.
#
# The newer hearths are the module's own hearthd with its workspace build swapped for one that carries test-only
# migrations in crates/hearth-core/migrations (sqlx embeds that directory at compile time; versions 9001 and 9002
# sort after any real migration). `hearth` is nix/packages.nix for `pkgs` (see nix/checks.nix).
{
  pkgs,
  self,
  hearth,
  ...
}: let
  inherit (pkgs) lib;

  markerMigration = pkgs.writeText "9001_test_upgrade_marker.sql" ''
    -- hearth-compat: expand
    -- Test-only: proves a newer hearth's migration ran on upgrade, after the existing data.
    CREATE TABLE hearth_test_upgrade_marker (
        upgraded_at   timestamptz NOT NULL DEFAULT now(),
        documents_then bigint     NOT NULL
    );
    INSERT INTO hearth_test_upgrade_marker (documents_then) SELECT count(*) FROM documents;
  '';

  failingMigration = pkgs.writeText "9002_test_failing_migration.sql" ''
    -- hearth-compat: expand
    -- Test-only: changes the schema and the data, then fails; all of it must roll back.
    CREATE TABLE hearth_test_must_not_exist (id bigint);
    DELETE FROM hearth_test_upgrade_marker;
    DO $$
    BEGIN
        RAISE EXCEPTION 'hearth test: deliberately failing migration';
    END
    $$;
  '';

  # Test-only: a migration the release before it cannot run on, so going back needs the dump taken before it.
  breakingMigration = pkgs.writeText "9003_test_breaking_migration.sql" ''
    -- hearth-compat: breaking
    ALTER TABLE hearth_test_upgrade_marker RENAME COLUMN documents_then TO documents_before;
  '';

  workspace = "${hearth.workspaceBuild}";

  # The newest migration of this source tree: the schema version the current hearth runs at.
  newestMigration = toString (lib.foldl' lib.max 0 (map (name: lib.toInt (lib.head (builtins.match "0*([0-9]+)_.*" name))) (
    lib.filter (lib.hasSuffix ".sql") (lib.attrNames (builtins.readDir ../crates/hearth-core/migrations))
  )));

  # The same wrapper as `package` (nix/packages.nix: hearthd is a makeWrapper around the workspace build), around
  # a workspace build that also compiles `migrations` in.
  withMigrations = package: migrations: let
    rebuilt = hearth.workspaceBuild.overrideAttrs (old: {
      pname = "${old.pname}-test-migrations";
      postPatch =
        (old.postPatch or "")
        + lib.concatMapStrings (migration: ''
          cp ${migration} crates/hearth-core/migrations/${migration.name}
        '')
        migrations;
    });
  in
    assert lib.assertMsg (lib.hasInfix workspace (package.buildCommand or ""))
    "tests/upgrade.nix: services.hearth.package must be hearthd's wrapper around hearth.workspaceBuild";
      package.overrideAttrs (old: {
        name = "${old.name}-test-migrations";
        buildCommand = builtins.replaceStrings [workspace] ["${rebuilt}"] old.buildCommand;
      });
in
  pkgs.testers.runNixOSTest {
    name = "hearth-upgrade";

    nodes.machine = {
      config,
      lib,
      pkgs,
      ...
    }: let
      current = config.services.hearth.package;
    in {
      imports = [self.nixosModules.default];

      virtualisation = {
        memorySize = 3072;
        diskSize = 4096;
        cores = 2;
      };

      services.hearth = {
        enable = true;
        model = "all-minilm-l6-v2-int8";
      };

      environment.systemPackages = [pkgs.curl pkgs.jq];

      # `hearth upgrade` switches with `switch`, which installs a boot loader; the VM boots its kernel directly.
      boot.loader.grub.enable = false;

      specialisation = {
        upgraded.configuration.services.hearth.package = lib.mkForce (withMigrations current [markerMigration]);
        broken.configuration.services.hearth.package =
          lib.mkForce (withMigrations current [markerMigration failingMigration]);
        # Migrates (after its backup), then never becomes ready: its model is not there.
        neverReady.configuration.services.hearth = {
          package = lib.mkForce (withMigrations current [markerMigration breakingMigration]);
          settings.embedding.model_dir = lib.mkForce "/nonexistent-model";
        };
        breaking.configuration.services.hearth.package =
          lib.mkForce (withMigrations current [markerMigration breakingMigration]);
      };
    };

    testScript = {nodes, ...}: let
      toplevel = nodes.machine.system.build.toplevel;
    in ''
      import json
      import shlex

      base = "http://127.0.0.1:8080"

      def switch_to(name):
          return machine.execute(
              f"${toplevel}/specialisation/{name}/bin/switch-to-configuration test"
          )

      def sql(query):
          return machine.succeed(
              "runuser -u postgres -- psql -d hearth -tAc " + shlex.quote(query)
          ).strip()

      def wait_serving():
          machine.wait_for_unit("hearthd.service")
          machine.wait_until_succeeds(f"curl -sf {base}/readyz", timeout=300)

      def ingest(text, title):
          body = json.dumps({"text": text, "title": title, "format": "plain"})
          out = machine.succeed(
              f"curl -sf -X POST {base}/v1/documents -H 'Content-Type: application/json' --data-binary "
              + shlex.quote(body)
          )
          doc_id = json.loads(out)["id"]
          machine.wait_until_succeeds(
              f"curl -sf {base}/v1/documents/{doc_id} | jq -e '.status == \"ready\"'", timeout=300
          )
          return doc_id

      def assert_found(query, doc_id):
          body = json.dumps({"query": query, "k": 5, "mode": "vector"})
          out = machine.succeed(
              f"curl -sf -X POST {base}/v1/search -H 'Content-Type: application/json' --data-binary "
              + shlex.quote(body)
          )
          assert doc_id in out, f"search for {query!r} did not return document {doc_id}: {out}"

      docs = {}

      start_all()

      with subtest("the old configuration boots and serves"):
          wait_serving()
          assert sql("SELECT max(version) FROM _sqlx_migrations WHERE success") == "${newestMigration}"

      with subtest("documents ingested on the old version are searchable"):
          docs["kiln"] = ingest("The kiln fires stoneware at twelve hundred degrees overnight.", "kiln")
          docs["bees"] = ingest("Honeybees communicate the direction of flowers with a waggle dance.", "bees")
          assert_found("how hot does a pottery kiln get", docs["kiln"])
          assert_found("how do bees tell each other where food is", docs["bees"])

      with subtest("switching to a newer hearth runs its migration and keeps every document"):
          switch_to("upgraded")
          wait_serving()
          assert sql("SELECT max(version) FROM _sqlx_migrations WHERE success") == "9001"
          assert sql("SELECT documents_then FROM hearth_test_upgrade_marker") == "2"
          assert_found("how hot does a pottery kiln get", docs["kiln"])
          assert_found("how do bees tell each other where food is", docs["bees"])

      with subtest("the newer hearth ingests and searches"):
          docs["tide"] = ingest("Spring tides happen when the sun and moon line up.", "tide")
          assert_found("why are some tides higher", docs["tide"])

      with subtest("a failing migration leaves hearthd failed with the reason and the data untouched"):
          switch_to("broken")
          machine.wait_until_succeeds(
              "journalctl -u hearthd.service -o cat | grep -F 'hearth test: deliberately failing migration'",
              timeout=120,
          )
          machine.wait_until_succeeds("systemctl is-failed hearthd.service", timeout=300)
          machine.fail(f"curl -sf {base}/readyz")
          assert sql("SELECT count(*) FROM _sqlx_migrations WHERE version = 9002") == "0"
          assert sql("SELECT max(version) FROM _sqlx_migrations WHERE success") == "9001"
          assert sql("SELECT to_regclass('hearth_test_must_not_exist') IS NULL") == "t"
          assert sql("SELECT count(*) FROM hearth_test_upgrade_marker") == "1"
          assert sql("SELECT count(*) FROM documents") == "3"

      with subtest("switching back to the working version serves every document"):
          machine.succeed("systemctl reset-failed hearthd.service")
          switch_to("upgraded")
          wait_serving()
          assert_found("how hot does a pottery kiln get", docs["kiln"])
          assert_found("how do bees tell each other where food is", docs["bees"])
          assert_found("why are some tides higher", docs["tide"])

      def hearth_upgrade(name, timeout=120):
          return machine.execute(
              f"hearth upgrade --to ${toplevel}/specialisation/{name} --restore-as hearth --ready-timeout {timeout}"
          )

      def last_upgrade():
          return json.loads(machine.succeed(f"curl -sf {base}/v1/capabilities"))["last_upgrade"]

      def assert_all_found():
          assert_found("how hot does a pottery kiln get", docs["kiln"])
          assert_found("how do bees tell each other where food is", docs["bees"])
          assert_found("why are some tides higher", docs["tide"])

      upgraded = machine.succeed("readlink -f /run/current-system").strip()

      with subtest("hearth upgrade to a generation that never becomes ready goes back by itself"):
          status, out = hearth_upgrade("neverReady")
          assert status == 1, f"a rollback is exit 1: {out}"
          assert machine.succeed("readlink -f /run/current-system").strip() == upgraded, out
          wait_serving()
          assert sql("SELECT max(version) FROM _sqlx_migrations WHERE success") == "9001", "the dump was restored"
          assert sql("SELECT count(*) FROM _sqlx_migrations WHERE version = 9003") == "0"
          assert_all_found()
          record = last_upgrade()
          assert record["outcome"] == "rolled_back", record
          assert record["backup"] and "schema9001-to9003" in record["backup"], record
          assert [s["step"] for s in record["steps"]][-6:] == [
              "stop", "restore", "switch-back", "start", "wait-ready", "done"
          ], record
          machine.succeed("journalctl -u hearthd.service -o cat | grep -F 'database backed up before migrating'")

      with subtest("a forced rollback after an upgrade with a breaking migration restores its dump"):
          status, out = hearth_upgrade("breaking")
          assert status == 0, out
          wait_serving()
          assert sql("SELECT max(version) FROM _sqlx_migrations WHERE success") == "9003"
          assert last_upgrade()["outcome"] == "upgraded"
          status, out = machine.execute("hearth rollback --restore-as hearth --ready-timeout 120")
          assert status == 0, out
          assert machine.succeed("readlink -f /run/current-system").strip() == upgraded, out
          wait_serving()
          assert sql("SELECT max(version) FROM _sqlx_migrations WHERE success") == "9001"
          assert_all_found()
          assert last_upgrade()["outcome"] == "rolled_back_by_request"

      with subtest("a full disk blocks the migration, and the box goes back serving"):
          free = int(machine.succeed("df --output=avail -B1 /var/lib/hearth/backups | tail -1").strip())
          # 128 MiB left: under backup.reserve_bytes (256 MiB) plus the dump, so hearthd may not migrate, while
          # PostgreSQL (on the same file system) keeps room for its WAL.
          machine.succeed(f"fallocate -l {max(free - 128 * 1024 * 1024, 0)} /var/lib/hearth/fill")
          status, out = hearth_upgrade("breaking", timeout=60)
          assert status == 1, out
          assert "not enough space for a backup" in out, out
          wait_serving()
          assert sql("SELECT max(version) FROM _sqlx_migrations WHERE success") == "9001", "nothing migrated"
          assert_all_found()
          record = last_upgrade()
          assert record["outcome"] == "rolled_back" and record["backup"] is None, record
          machine.succeed("rm /var/lib/hearth/fill")
    '';
  }
