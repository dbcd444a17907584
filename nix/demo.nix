# `nix run .#demo`: a private PostgreSQL + pgvector and hearthd (local blob store, the small test model) on
# loopback in a temporary directory; ingest hearth's own docs, search them, stop everything. Run it as a normal
# user (PostgreSQL refuses to run as root).
{
  pkgs,
  hearth,
}: let
  inherit (pkgs) lib;
  postgres = pkgs.postgresql_17.withPackages (ps: [ps.pgvector]);
  docs = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../README.md
      ../docs
    ];
  };
  demo = pkgs.writeShellApplication {
    name = "hearth-demo";
    runtimeInputs = [
      postgres
      hearth.hearthd
      hearth.hearth
      pkgs.coreutils
    ];
    text = ''
      if [ "$(id -u)" = 0 ]; then
        echo "hearth-demo: run this as a normal user: PostgreSQL refuses to run as root" >&2
        exit 1
      fi
      port="''${HEARTH_DEMO_PORT:-8089}"
      url="http://127.0.0.1:$port"
      work="$(mktemp -d -t hearth-demo.XXXXXX)"
      hearthd_pid=""
      stop() {
        if [ -n "$hearthd_pid" ]; then kill "$hearthd_pid" 2>/dev/null || true; wait "$hearthd_pid" 2>/dev/null || true; fi
        pg_ctl -D "$work/pg" -m fast stop >/dev/null 2>&1 || true
        rm -rf "$work"
      }
      trap stop EXIT

      echo "== PostgreSQL + pgvector in $work"
      mkdir -p "$work/sock"
      initdb -D "$work/pg" -U postgres --auth=trust >/dev/null
      pg_ctl -D "$work/pg" -l "$work/postgres.log" -w \
        -o "-k $work/sock -c listen_addresses=" start >/dev/null
      psql -h "$work/sock" -U postgres -v ON_ERROR_STOP=1 -qc 'CREATE DATABASE hearth'
      psql -h "$work/sock" -U postgres -d hearth -v ON_ERROR_STOP=1 -qc 'CREATE EXTENSION vector'

      cat > "$work/hearth.toml" <<TOML
      listen = "127.0.0.1:$port"
      [database]
      url = "postgres://postgres@localhost/hearth?host=$work/sock"
      [embedding]
      model_dir = "${hearth.models.all-minilm-l6-v2-int8}"
      [blobs]
      backend = "local"
      path = "$work/blobs"
      TOML

      echo "== hearthd on $url"
      hearthd --config "$work/hearth.toml" serve > "$work/hearthd.log" 2>&1 &
      hearthd_pid=$!
      for _ in $(seq 120); do
        if hearth --url "$url" status >/dev/null 2>&1; then break; fi
        if ! kill -0 "$hearthd_pid" 2>/dev/null; then cat "$work/hearthd.log" >&2; exit 1; fi
        sleep 1
      done
      hearth --url "$url" status

      echo "== ingest hearth's docs"
      hearth --url "$url" ingest --wait ${docs}
      echo "== search: how are secrets created on first boot?"
      hearth --url "$url" search "how are secrets created on first boot?"
    '';
  };
in {
  type = "app";
  program = lib.getExe demo;
  meta.description = "hearth end to end on loopback: PostgreSQL, hearthd, ingest, search";
}
