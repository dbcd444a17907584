# `nix develop`: everything `cargo xtask test` and `cargo nextest run` need, from nixpkgs. The test kit reads its
# dependencies from the environment variables set here (crates/hearth-testkit/src/deps.rs), so the tests run
# against the same PostgreSQL, Garage, onnxruntime and test model as the `rust-tests` flake check.
{
  pkgs,
  hearth,
}:
pkgs.mkShell {
  packages = with pkgs;
    [
      cargo
      rustc
      clippy
      rustfmt
      rust-analyzer
      cargo-nextest
      alejandra
      deadnix
      nix
      python3
    ]
    ++ hearth.nativeBuildInputs;
  # The evaluation gate (`cargo xtask nix-eval`) runs against this nixpkgs' own lib.
  env = hearth.testEnv // {HEARTH_NIXPKGS_LIB = "${pkgs.path}/lib";};
}
