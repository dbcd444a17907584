# Everything `nix flake check` runs for one system. Nothing here is a hand-kept list:
#   - rust-fmt, rust-clippy, rust-tests: the same steps `cargo xtask test` runs (tests via cargo-nextest against
#     PostgreSQL + pgvector, Garage, onnxruntime and the test model, all from nixpkgs and nix/models.nix);
#   - nix-static: alejandra and deadnix over every .nix file (nix-instantiate --parse is implied by evaluating);
#   - the packages;
#   - vm-<name>: every tests/<name>.nix (vm-<name>-<combination> for each test of a matrix file);
#   - nixos-<name>: the toplevel of every nixosConfigurations.<name> built for this system, or eval-nixos-<name>
#     (evaluated, not built) for a host with `hearth.flakeCheck.build = false`;
#   - image-<name>: every image package of nix/images.nix.
#
# A VM test file tests/<name>.nix is a function called as
#
#   import ../tests/<name>.nix { inherit pkgs lib self hearth; }
#
# where `pkgs` is nixpkgs for this system, `lib` is `pkgs.lib`, `self` is this flake (use
# `self.nixosModules.default`) and `hearth` is nix/packages.nix for `pkgs` (packages, models, onnxruntime). It
# must accept `...` for the arguments it does not use and return one derivation, normally
# `pkgs.testers.runNixOSTest { ... }`, or an attribute set of them (a matrix: tests/matrix.nix).
{
  self,
  system,
  pkgs,
  hearth,
  images,
}: let
  inherit (pkgs) lib;

  # A cargo command over the vendored workspace (no network), succeeding or failing as the check.
  cargoCheck = name: {
    extraInputs ? [],
    env ? {},
    command,
  }:
    pkgs.stdenv.mkDerivation {
      name = "hearth-${name}";
      src = hearth.checkSrc;
      cargoDeps = pkgs.rustPlatform.importCargoLock {lockFile = ../Cargo.lock;};
      nativeBuildInputs =
        [
          pkgs.rustPlatform.cargoSetupHook
          pkgs.cargo
          pkgs.rustc
        ]
        ++ hearth.nativeBuildInputs
        ++ extraInputs;
      dontUseCmakeConfigure = true;
      inherit env;
      buildPhase = ''
        runHook preBuild
        export HOME="$TMPDIR/home" HEARTH_CACHE_DIR="$TMPDIR/hearth-cache"
        mkdir -p "$HOME" "$HEARTH_CACHE_DIR"
        ${command}
        runHook postBuild
      '';
      installPhase = ''
        touch $out
      '';
    };

  rustChecks = {
    rust-fmt = cargoCheck "fmt" {
      extraInputs = [pkgs.rustfmt];
      command = "cargo fmt --all -- --check";
    };
    rust-clippy = cargoCheck "clippy" {
      extraInputs = [pkgs.clippy];
      command = "cargo clippy --workspace --all-targets --locked --offline -- -D warnings";
    };
    rust-tests = cargoCheck "tests" {
      # strace: the test that hearthd opens no connection without a provider traces it.
      extraInputs = [pkgs.cargo-nextest pkgs.strace];
      env = hearth.testEnv;
      command = "cargo nextest run --workspace --locked --offline --no-fail-fast --profile ci";
    };
  };

  nixStatic = {
    nix-static =
      pkgs.runCommand "hearth-nix-static" {
        nativeBuildInputs = [
          pkgs.alejandra
          pkgs.deadnix
        ];
        nixFiles = lib.fileset.toSource {
          root = ../.;
          fileset = lib.fileset.fileFilter (file: file.hasExt "nix") ../.;
        };
      } ''
        cd "$nixFiles"
        alejandra --check .
        deadnix --fail --no-underscore $(find . -name '*.nix')
        touch $out
      '';
  };

  packages = {
    inherit (hearth) hearthd hearth hearth-firstboot;
    model-test = hearth.models.all-minilm-l6-v2-int8;
  };

  # A test file returns one test (check vm-<file>) or an attribute set of them, a matrix (vm-<file>-<name>).
  vmTests = lib.concatMapAttrs (file: _: let
    name = "vm-${lib.removeSuffix ".nix" file}";
    tests = import (../tests + "/${file}") {inherit pkgs lib self hearth;};
  in
    if lib.isDerivation tests
    then {${name} = tests;}
    else lib.mapAttrs' (combination: lib.nameValuePair "${name}-${combination}") tests) (
    lib.filterAttrs (file: type: type == "regular" && lib.hasSuffix ".nix" file) (builtins.readDir ../tests)
  );

  # A host that builds for hours (`hearth.flakeCheck.build = false`, hosts/default.nix) is only evaluated: its
  # check instantiates the whole system (every option and package resolved) and records the .drv path, without
  # depending on it, so nothing of it is built.
  nixosToplevels = lib.mapAttrs' (name: nixos: let
    toplevel = nixos.config.system.build.toplevel;
  in
    if nixos.config.hearth.flakeCheck.build
    then lib.nameValuePair "nixos-${name}" toplevel
    else
      lib.nameValuePair "eval-nixos-${name}" (
        pkgs.writeText "hearth-eval-nixos-${name}" (builtins.unsafeDiscardStringContext toplevel.drvPath)
      )) (
    lib.filterAttrs (_: nixos: nixos.pkgs.stdenv.hostPlatform.system == system) self.nixosConfigurations
  );

  # pi-image is also a package of x86_64-linux (built there by emulation or a remote builder); as a check it
  # belongs only to the system it is built for.
  imageChecks = lib.mapAttrs' (name: lib.nameValuePair "image-${name}") (
    lib.filterAttrs (_: image: image.system == system) images
  );
in
  rustChecks // nixStatic // packages // vmTests // nixosToplevels // imageChecks
