# The hearth settings the NixOS module starts from (each leaf becomes a `lib.mkDefault`).
# Plain values in, a plain attribute set out: no pkgs, no lib, so that `cargo xtask test` can evaluate it with
# `nix-instantiate --eval --strict --json` and feed the result to `hearthd check-config`, proving that every key
# the module sets is one hearthd accepts.
{
  # host:port; a non-loopback address needs a bearer token (the module asserts it, hearthd refuses without one).
  listen ? "127.0.0.1:8080",
  # A model directory with manifest.json (a store path from nix/models.nix on NixOS).
  modelDir,
  # libonnxruntime.so (>= 1.24).
  onnxruntime,
  # "local": originals in `${dataDir}/blobs`; "s3": in the local Garage at `s3Endpoint`.
  blobBackend ? "local",
  s3Endpoint ? "http://127.0.0.1:3900",
  # The bucket of this box's originals (one per box in a Garage cluster).
  bucket ? "hearth",
  # hearthd's own state directory (the unit's StateDirectory).
  dataDir ? "/var/lib/hearth/data",
  # PostgreSQL over the local socket with peer authentication.
  databaseUrl ? "postgres:///hearth?host=/run/postgresql",
  # Where hearthd dumps the database before every migration (the unit's second StateDirectory).
  backupDir ? "/var/lib/hearth/backups",
  # The directory with pg_dump, pg_restore and psql (the local server's package); null: found on PATH.
  postgresBin ? null,
}:
assert builtins.elem blobBackend ["local" "s3"]; {
  inherit listen;
  database.url = databaseUrl;
  backup =
    {dir = backupDir;}
    // (
      if postgresBin == null
      then {}
      else {postgres_bin = postgresBin;}
    );
  embedding = {
    model_dir = modelDir;
    inherit onnxruntime;
  };
  blobs =
    if blobBackend == "s3"
    then {
      backend = "s3";
      endpoint = s3Endpoint;
      region = "garage";
      inherit bucket;
    }
    else {
      backend = "local";
      path = "${dataDir}/blobs";
    };
}
