# One appliance through its life: first boot mints the secrets, the stack comes up, a document goes in and is
# found; the machine loses power in the middle of a second ingest, boots again and has lost nothing; a hearthd
# that cannot start ends `failed` instead of restarting forever.
{
  pkgs,
  self,
  ...
}:
pkgs.testers.runNixOSTest {
  name = "hearth-appliance";

  nodes.machine = {
    imports = [
      self.nixosModules.default
      ../nix/vm-test-node.nix
    ];
  };

  testScript = ''
    secrets = "/var/lib/hearth/secrets"
    names = [
        "api-token",
        "encryption-key",
        "garage-rpc-secret",
        "garage-admin-token",
        "garage-metrics-token",
        "s3-access-key-id",
        "s3-secret-key",
    ]

    def digests():
        return machine.succeed(f"cd {secrets} && sha256sum {' '.join(names)}")

    machine.start()

    with subtest("first boot mints every secret: root-only, 0400, outside the store, all different"):
        machine.wait_for_unit("hearth-firstboot.service")
        machine.succeed(f"test -f {secrets}/.minted-v1")
        machine.succeed(f"test \"$(stat -c '%a %U' {secrets})\" = '700 root'")
        for name in names:
            machine.succeed(f"test \"$(stat -c '%a %U' {secrets}/{name})\" = '400 root'")
        minted = digests()
        assert len({line.split()[0] for line in minted.splitlines()}) == len(names), minted
        machine.succeed("test \"$(stat -c %a /var/lib/hearth)\" = 711")

    with subtest("must fail: no other user reads a secret"):
        machine.fail(f"runuser -u hearth -- cat {secrets}/api-token")
        machine.fail(f"runuser -u nobody -- ls {secrets}")
        machine.fail("runuser -u nobody -- ls /var/lib/hearth")

    with subtest("PostgreSQL with pgvector, Garage and hearthd come up and hearthd is ready"):
        machine.wait_for_unit("postgresql.target")
        machine.succeed("runuser -u postgres -- psql -d hearth -tAc 'SELECT extname FROM pg_extension' | grep -qx vector")
        machine.wait_for_unit("garage.service")
        machine.wait_for_unit("hearth-firstboot-garage.service")
        machine.wait_for_unit("hearthd.service")
        machine.wait_until_succeeds("hearth status", timeout=300)
        machine.succeed("curl -sf http://127.0.0.1:8080/readyz")
        machine.succeed("test \"$(stat -c '%a %U' /var/lib/hearth/data)\" = '700 hearth'")

    with subtest("must fail: no secret leaks into the journal, a process's environment or command line, or the files the units run"):
        # The secrets are minted on the machine, after every store path was built: what can leak them is what runs.
        # The patterns come from the files (grep -f), so the secrets never appear on a command line themselves.
        units = "hearthd.service garage.service hearth-firstboot.service hearth-firstboot-garage.service postgresql.service"
        closure = f"$(nix-store -qR $(systemctl show -P FragmentPath {units} | xargs readlink -f))"
        # The search itself can find what it looks for: a marker logged on purpose is found in the journal.
        machine.succeed("head -c 24 /dev/urandom | base64 > /root/leak-probe && logger -t leak-probe -f /root/leak-probe")
        machine.wait_until_succeeds("journalctl -b -o cat | grep -qF -f /root/leak-probe", timeout=30)
        # encryption-key is raw bytes (a newline in it would make an empty pattern that matches everything), and
        # no unit loads it yet.
        for name in [name for name in names if name != "encryption-key"]:
            machine.fail(f"journalctl -b -o cat | grep -qF -f {secrets}/{name}")
            machine.fail(f"grep -qsF -f {secrets}/{name} /proc/[0-9]*/environ /proc/[0-9]*/cmdline")
            machine.fail(f"grep -rqsF -f {secrets}/{name} {closure}")

    with subtest("a document goes in and search finds it"):
        machine.succeed("mkdir -p /root/docs")
        machine.succeed("echo 'The lighthouse keeper polishes the brass lamp every evening before the fog rolls in.' > /root/docs/lighthouse.txt")
        machine.succeed("hearth ingest --wait /root/docs/lighthouse.txt")
        machine.succeed("hearth search --json 'who polishes the lamp in the lighthouse' | grep -q 'brass lamp'")

    with subtest("must fail: ingesting a missing file is an error"):
        machine.fail("hearth ingest --wait /root/docs/missing.txt")

    with subtest("power is cut during a second ingest; after booting again both documents are searchable"):
        machine.succeed("echo 'Beekeepers calm the hive with smoke before they lift out the honey frames.' > /root/docs/bees.txt")
        # Acknowledged (202) once the original and its row are durable; processing continues in the background.
        machine.succeed("hearth ingest /root/docs/bees.txt")
        machine.crash()
        machine.start()
        machine.wait_for_unit("hearthd.service")
        machine.wait_until_succeeds("hearth status", timeout=300)
        machine.wait_until_succeeds("hearth search --json 'smoke calms the bees in the hive' | grep -q 'honey frames'", timeout=300)
        machine.succeed("hearth search --json 'who polishes the lamp in the lighthouse' | grep -q 'brass lamp'")

    with subtest("the second boot keeps every secret and skips minting"):
        assert digests() == minted, "a secret changed across the reboot"
        machine.succeed("test \"$(systemctl show -p ConditionResult --value hearth-firstboot.service)\" = no")

    with subtest("must fail: a hearthd that cannot start ends failed, not in a hidden restart loop"):
        machine.succeed("mkdir -p /run/systemd/system/hearthd.service.d")
        # An unknown key makes hearthd exit at once (a broken model would not: it serves degraded).
        machine.succeed("printf '[Service]\\nEnvironment=HEARTH_INGEST__WORKRES=2\\n' > /run/systemd/system/hearthd.service.d/broken.conf")
        machine.succeed("systemctl daemon-reload")
        machine.execute("systemctl restart hearthd.service")
        machine.wait_until_succeeds("systemctl is-failed hearthd.service", timeout=600)
        restarts = int(machine.succeed("systemctl show -p NRestarts --value hearthd.service").strip())
        assert restarts >= 1, f"hearthd was not restarted before failing ({restarts})"
        machine.fail("hearth status")

    with subtest("once the cause is gone, hearthd starts again"):
        machine.succeed("rm -r /run/systemd/system/hearthd.service.d && systemctl daemon-reload")
        machine.succeed("systemctl reset-failed hearthd.service && systemctl start hearthd.service")
        machine.wait_until_succeeds("hearth status", timeout=300)
  '';
}
