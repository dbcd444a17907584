# The appliance works with no network at all: every interface but loopback down, the stack restarted, then
# ingest and search.
{
  pkgs,
  self,
  ...
}:
pkgs.testers.runNixOSTest {
  name = "hearth-offline";

  nodes.machine = {
    imports = [
      self.nixosModules.default
      ../nix/vm-test-node.nix
    ];
  };

  testScript = ''
    machine.start()
    machine.wait_for_unit("hearthd.service")
    machine.wait_until_succeeds("hearth status", timeout=300)

    with subtest("every interface but loopback goes down"):
        machine.succeed("for dev in $(ls /sys/class/net); do [ \"$dev\" = lo ] || ip link set \"$dev\" down; done")
        machine.fail("ip -o link show up | grep -v ' lo:'")

    with subtest("the stack restarts without a network"):
        machine.succeed("systemctl restart garage.service hearth-firstboot-garage.service hearthd.service")
        machine.wait_until_succeeds("hearth status", timeout=300)

    with subtest("ingest and search work offline"):
        machine.succeed("echo 'Offline first: the appliance indexes field notes about alpine marmots without any network.' > /root/marmots.txt")
        machine.succeed("hearth ingest --wait /root/marmots.txt")
        machine.succeed("hearth search --json 'notes on marmots in the mountains' | grep -q 'alpine marmots'")
  '';
}
