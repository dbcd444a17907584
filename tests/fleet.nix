# A fleet on one LAN: two Pi-like boxes (kitchen, study) and a workstation, CPU-only VMs with the test model, all
# three configured from one fleet description (services.hearth.fleet). The Pis embed on the workstation's hearthd
# with the fleet token; the originals of every box replicate across one Garage cluster (replication 3), each box in
# a bucket of its own. Then a Pi's Garage disk dies (data, metadata and node key wiped) while the others keep
# writing: it comes back as the same Garage node, resyncs, and serves its original byte for byte. Last, with the
# workstation's hearthd away, a Pi embeds with its own model.
#
# The fleet's secrets are the TEST-ONLY ones in tests/fleet/secrets.nix, copied into each VM from the Nix store by
# a unit standing in for the operator (a real fleet's come from `hearth-firstboot fleet-secrets`, never the store).
{
  pkgs,
  self,
  ...
}: let
  inherit (pkgs) lib;

  secrets = import ./fleet/secrets.nix;
  house = import ../hosts/fleet/house.nix;
  secretsDir = "/var/lib/hearth-fleet";

  # A node key's Garage id: its public half.
  idOf = key: builtins.substring 64 64 key;
  # The test's boxes and the example house's member whose test-only key each uses.
  keys = {
    kitchen = secrets.garageNodeKeys.pi-kitchen;
    study = secrets.garageNodeKeys.pi-study;
    workstation = secrets.garageNodeKeys.workstation;
  };
  ids = lib.mapAttrs (_: idOf) keys;
  # nixos/lib/testing/network.nix numbers the nodes in name order and gives node n 192.168.1.n on the test VLAN.
  # IP addresses, not names: a box resolves its own host name to 127.0.0.2, which Garage would advertise.
  addresses = {
    kitchen = "192.168.1.1";
    study = "192.168.1.2";
    workstation = "192.168.1.3";
  };

  # The one description every box gets (each with its own `name`).
  fleet = {
    embedder = "workstation";
    layoutKeeper = "workstation";
    replicationFactor = 3;
    model = "all-minilm-l6-v2-int8";
    members =
      lib.mapAttrs (name: key: {
        address = addresses.${name};
        garageId = idOf key;
        capacity = 1000 * 1000 * 1000;
      })
      keys;
  };

  # Larger than Garage's inline threshold (3 KiB), so each original is a data block that is replicated and resynced.
  notes = name: subject:
    pkgs.writeText "fleet-${name}.txt" (lib.concatMapStrings (i: ''
      ${name} note ${toString i}: ${subject} at ${toString (6 + lib.mod i 12)} o'clock, ${toString (10 + lib.mod (i * 7) 40)} millimetres.
    '') (lib.range 1 300));
  kitchenNotes = notes "kitchen" "the sourdough starter was fed and rose";
  studyNotes = notes "study" "the violin was tuned and the bridge moved";

  # The key's bytes as escapes for bash's printf ("\x5a\x72…").
  printfBytes = hex: lib.concatMapStrings (i: "\\x" + builtins.substring (2 * i) 2 hex) (lib.range 0 (builtins.stringLength hex / 2 - 1));

  box = name: {
    imports = [
      self.nixosModules.default
      ../nix/vm-test-node.nix
    ];
    services.hearth.fleet =
      fleet
      // {
        enable = true;
        inherit name;
      };
    environment.systemPackages = [pkgs.jq];

    # TEST-ONLY: what the operator copies from `hearth-firstboot fleet-secrets --out DIR` to each box.
    systemd.services.fleet-test-secrets = {
      description = "Test-only: the fleet's secrets where the operator would put them";
      wantedBy = ["multi-user.target"];
      before = ["garage.service" "hearthd.service"];
      requiredBy = ["garage.service" "hearthd.service"];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        UMask = "0077";
      };
      script = ''
        install -d -m 0700 ${secretsDir}
        printf '%s' '${secrets.garage-rpc-secret}' > ${secretsDir}/garage-rpc-secret
        printf '%s' '${secrets.fleet-token}' > ${secretsDir}/fleet-token
        printf '${printfBytes keys.${name}}' > ${secretsDir}/${name}.garage-node-key
        chmod 0400 ${secretsDir}/garage-rpc-secret ${secretsDir}/fleet-token ${secretsDir}/${name}.garage-node-key
      '';
    };
  };
in
  assert lib.assertMsg (lib.all (member: house.fleet.members.${member}.garageId == idOf secrets.garageNodeKeys.${member}) (lib.attrNames secrets.garageNodeKeys))
  "tests/fleet.nix: the example house's garageIds (hosts/fleet/house.nix) must be the public halves of tests/fleet/secrets.nix's keys";
    pkgs.testers.runNixOSTest {
      name = "hearth-fleet";

      nodes = lib.genAttrs ["kitchen" "study" "workstation"] box;

      testScript = ''
        import json
        import shlex

        base = "http://127.0.0.1:8080"
        boxes = {"kitchen": kitchen, "study": study, "workstation": workstation}
        ids = json.loads(${lib.escapeShellArg (builtins.toJSON ids)})
        workstation_url = "http://${addresses.workstation}:8080"


        def metric(machine, name, labels):
            """The value of one series of hearthd's /metrics (loopback needs no token)."""
            for line in machine.succeed(f"curl -sf {base}/metrics").splitlines():
                if line.startswith("#") or " " not in line:
                    continue
                series, value = line.rsplit(" ", 1)
                series_name, _, rest = series.partition("{")
                if series_name != name:
                    continue
                found = dict(part.split("=", 1) for part in rest.rstrip("}").split(",") if part)
                if all(found.get(key) == f'"{want}"' for key, want in labels.items()):
                    return float(value)
            raise AssertionError(f"{machine.name}: no series {name} {labels}")


        def node_id(machine):
            return "".join(machine.succeed("od -An -v -tx1 /var/lib/garage/meta/node_key.pub").split())


        def upload(machine, path, title):
            out = machine.succeed(
                f"curl -sf -X POST -H 'Content-Type: text/plain' --data-binary @{path} '{base}/v1/documents?title={title}'"
            )
            doc = json.loads(out)["id"]
            machine.wait_until_succeeds(
                f"curl -sf {base}/v1/documents/{doc} | jq -e '.status == \"ready\"'", timeout=300
            )
            return doc


        def blocks(machine):
            """Garage's data blocks on this box, by name (compressed or not)."""
            return machine.succeed(
                "cd /var/lib/garage/data && find . -mindepth 3 -type f | sed 's/[.]zst$//' | sort"
            ).strip()


        start_all()

        with subtest("each box's Garage runs with the node key the fleet declares"):
            for name, machine in boxes.items():
                machine.wait_for_unit("garage.service")
                assert node_id(machine) == ids[name], (name, node_id(machine))

        with subtest("first boot gives every declared node its role; each box has a bucket of its own"):
            for machine in boxes.values():
                machine.wait_for_unit("hearth-firstboot-garage.service")
            layout = workstation.succeed("garage layout show")
            for name, node in ids.items():
                assert node[:16] in layout, (name, layout)
            buckets = workstation.succeed("garage bucket list")
            for name in boxes:
                assert f"hearth-{name}" in buckets, (name, buckets)
            kitchen_key = kitchen.succeed("cat /var/lib/hearth/secrets/s3-access-key-id").strip()
            study_key = study.succeed("cat /var/lib/hearth/secrets/s3-access-key-id").strip()
            study_bucket = workstation.succeed("garage bucket info hearth-study")
            assert study_key in study_bucket and kitchen_key not in study_bucket, study_bucket
            # A login shell has HEARTH_GARAGE_BUCKET (the module sets it), so status checks the box's own bucket.
            status = kitchen.succeed("bash -lc 'hearth-firstboot status'")
            assert "provisioned (layout, key, bucket, grants)" in status, status

        with subtest("hearthd is up everywhere, and the Pis see the workstation's embedder in their own space"):
            for machine in boxes.values():
                machine.wait_for_unit("hearthd.service")
                machine.wait_until_succeeds("hearth status", timeout=300)
            for machine in (kitchen, study):
                machine.wait_until_succeeds(
                    f"curl -sf {base}/metrics | grep -Eq '^hearth_embed_backend_remote_ready 1$'", timeout=300
                )

        with subtest("must fail: the workstation refuses the LAN without a token, and takes the fleet token"):
            code = kitchen.succeed(
                f"curl -s -o /dev/null -w '%{{http_code}}' {workstation_url}/v1/documents"
            ).strip()
            assert code == "401", code
            kitchen.succeed(
                f"curl -sf -H \"Authorization: Bearer $(cat ${secretsDir}/fleet-token)\" {workstation_url}/v1/capabilities"
            )

        with subtest("a document ingested on a Pi is embedded on the workstation and found on the Pi"):
            api_before = metric(workstation, "hearth_embed_inputs_total", {"class": "api"})
            doc = upload(kitchen, "${kitchenNotes}", "kitchen-notes")
            remote = metric(kitchen, "hearth_embed_backend_inputs_total", {"backend": "remote", "class": "ingest"})
            local = metric(kitchen, "hearth_embed_backend_inputs_total", {"backend": "local", "class": "ingest"})
            assert remote > 0 and local == 0, (remote, local)
            api_after = metric(workstation, "hearth_embed_inputs_total", {"class": "api"})
            assert api_after >= api_before + remote, (api_before, api_after, remote)
            kitchen.succeed("hearth search --json 'when was the sourdough starter fed' | grep -q sourdough")
            original = kitchen.succeed("sha256sum < ${kitchenNotes}").split()[0]
            assert kitchen.succeed(f"curl -sf {base}/v1/documents/{doc}/content | sha256sum").split()[0] == original

        with subtest("the original is replicated: the other boxes hold its block"):
            kitchen_blocks = blocks(kitchen)
            assert kitchen_blocks, "kitchen's original is not a data block"
            for machine in (study, workstation):
                machine.wait_until_succeeds(
                    f"test \"$(cd /var/lib/garage/data && find . -mindepth 3 -type f | sed 's/[.]zst$//' | sort)\" = {shlex.quote(kitchen_blocks)}",
                    timeout=120,
                )

        with subtest("a Pi's Garage disk dies; the others keep writing; it comes back as the same node with its original"):
            # Garage, and with it (Requires=) first boot's Garage unit and hearthd, stop; everything of Garage's on the
            # card is gone, node key included: its unit installs the declared one again.
            kitchen.succeed("systemctl stop garage.service")
            kitchen.succeed("rm -rf /var/lib/garage/meta /var/lib/garage/data")
            upload(study, "${studyNotes}", "study-notes")
            kitchen.succeed("systemctl start hearthd.service")
            kitchen.wait_for_unit("hearthd.service")
            kitchen.wait_until_succeeds("hearth status", timeout=300)
            assert node_id(kitchen) == ids["kitchen"], node_id(kitchen)
            kitchen.succeed("garage repair -a --yes tables")
            expected = blocks(study)
            kitchen.wait_until_succeeds(
                "garage repair -a --yes blocks && sleep 5 && "
                f"test \"$(cd /var/lib/garage/data && find . -mindepth 3 -type f | sed 's/[.]zst$//' | sort)\" = {shlex.quote(expected)}",
                timeout=600,
            )
            assert kitchen.succeed(f"curl -sf {base}/v1/documents/{doc}/content | sha256sum").split()[0] == original
            kitchen.succeed("hearth search --json 'when was the sourdough starter fed' | grep -q sourdough")

        with subtest("with the workstation's hearthd away, a Pi embeds with its own model"):
            workstation.succeed("systemctl stop hearthd.service")
            local_before = metric(study, "hearth_embed_backend_inputs_total", {"backend": "local", "class": "ingest"})
            study.succeed("echo 'The study lamp takes a warm white bulb of four hundred lumens.' > /root/lamp.txt")
            study.succeed("hearth ingest --wait /root/lamp.txt")
            assert metric(study, "hearth_embed_backend_inputs_total", {"backend": "local", "class": "ingest"}) > local_before
            study.succeed("hearth search --json 'which bulb does the lamp need' | grep -q lumens")
      '';
    }
