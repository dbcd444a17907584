# LAN mode: hearthd listens on the network with the minted bearer token; a client without the token gets 401,
# with a wrong one 401, with the right one 200. /healthz stays open.
{
  pkgs,
  self,
  hearth,
  ...
}:
pkgs.testers.runNixOSTest {
  name = "hearth-lan";

  nodes = {
    server = {
      imports = [
        self.nixosModules.default
        ../nix/vm-test-node.nix
      ];
      services.hearth = {
        listen = "0.0.0.0:8080";
        openFirewall = true;
        # A fleet declares its provider (here the client's address, where nothing answers: nothing is asked).
        reasoning.provider = {
          baseUrl = "http://client:8000/v1";
          model = "workstation-model";
        };
      };
    };
    client = {
      environment.systemPackages = [
        hearth.hearth
        pkgs.curl
      ];
    };
  };

  testScript = ''
    def status_code(headers=""):
        return client.succeed(
            f"curl -s -o /dev/null -w '%{{http_code}}' {headers} http://server:8080/v1/documents"
        ).strip()

    start_all()
    server.wait_for_unit("hearthd.service")
    server.wait_until_succeeds("hearth status", timeout=300)
    client.wait_for_unit("multi-user.target")
    client.wait_until_succeeds("curl -sf http://server:8080/healthz", timeout=120)

    with subtest("must fail: without a token the LAN gets 401"):
        code = status_code()
        assert code == "401", code
        client.fail("hearth --url http://server:8080 search 'anything'")

    with subtest("must fail: a wrong token gets 401"):
        code = status_code("-H 'Authorization: Bearer not-the-token-not-the-token-not-the-token'")
        assert code == "401", code

    with subtest("the minted token gets 200"):
        token = server.succeed("cat /var/lib/hearth/secrets/api-token").strip()
        client.succeed(f"install -m 0400 /dev/null /root/token && printf %s '{token}' > /root/token")
        code = status_code("-H \"Authorization: Bearer $(cat /root/token)\"")
        assert code == "200", code
        client.succeed("hearth --url http://server:8080 --token-file /root/token status")

    with subtest("loopback on the server needs no token"):
        server.succeed("curl -sf http://127.0.0.1:8080/v1/documents")

    with subtest("the declared reasoning provider is shown, cannot be changed through the API, and has the box's encryption key"):
        settings = server.succeed("curl -sf http://127.0.0.1:8080/v1/settings/reasoning")
        assert '"source":"config"' in settings and "http://client:8000/v1" in settings, settings
        assert '"can_store_keys":true' in settings, settings
        changed = server.succeed(
            "curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/json' "
            "-d '{\"base_url\": \"http://evil:1/v1\", \"model\": \"m\"}' http://127.0.0.1:8080/v1/settings/reasoning"
        ).strip()
        assert changed == "409", changed

    with subtest("the console shows the web UI's address and the setup code, which signs a browser in"):
        server.succeed("grep -q 'sign in with the setup code' /etc/issue.d/hearth-setup.issue")
        code = server.succeed("hearth setup-code").strip()
        server.succeed(f"grep -qF '{code}' /etc/issue.d/hearth-setup.issue")
        origin = "-H 'Origin: http://server:8080'"
        signed_in = client.succeed(
            f"curl -s -o /dev/null -w '%{{http_code}}' -c /root/jar {origin} --data-urlencode 'secret={code}' http://server:8080/signin"
        ).strip()
        assert signed_in == "303", signed_in
        page = client.succeed("curl -sf -b /root/jar http://server:8080/library")
        assert "Add documents" in page, page

    with subtest("must fail: a wrong setup code, or none, does not open the UI"):
        wrong = client.succeed(
            f"curl -s -o /dev/null -w '%{{http_code}}' {origin} --data-urlencode 'secret=AAAA-BBBB-CCCC-DDDD' http://server:8080/signin"
        ).strip()
        assert wrong == "401", wrong
        redirected = client.succeed("curl -s -o /dev/null -w '%{http_code}' http://server:8080/library").strip()
        assert redirected == "303", redirected
  '';
}
