# hearth's packages for one nixpkgs package set: the workspace binaries, onnxruntime, the model directories and
# the test environment the Rust tests and the dev shell share.
#
# Builder: nixpkgs' own `rustPlatform.buildRustPackage` with `cargoLock.lockFile`. Cargo.lock has no git
# sources, so no `outputHashes` are needed, and the flake needs no input beyond nixpkgs for Rust (crane would
# add a pin we could not verify here and mostly buys dependency caching between the package, clippy and test
# derivations; `nix flake check` compiles the workspace three times instead).
{
  pkgs,
  # The source revision hearthd reports in /v1/capabilities and hearth_build_info (there is no .git in the
  # build sandbox for its build script to ask). It is set in hearthd's wrapper, not compiled in, so a new commit
  # that changes no Rust source does not rebuild the workspace.
  revision ? "unknown",
}: let
  inherit (pkgs) lib;

  workspace = (builtins.fromTOML (builtins.readFile ../Cargo.toml)).workspace.package;

  # fastembed 7.5 pins ort 2.0.0-rc.15 with the `api-24` feature: onnxruntime older than 1.24 fails when the
  # library is loaded. nixos-26.05 ships 1.24 or later; an older pin must fail here, at evaluation, not at run time.
  onnxruntime =
    if lib.versionAtLeast pkgs.onnxruntime.version "1.24"
    then pkgs.onnxruntime
    else
      throw ''
        hearth needs onnxruntime >= 1.24 (fastembed 7.5 -> ort 2.0.0-rc.15 with api-24), but this nixpkgs has
        ${pkgs.onnxruntime.version}. Pin a newer nixpkgs (nix flake update nixpkgs) or pass a newer onnxruntime.
      '';

  rustTooOld = lib.versionOlder pkgs.rustc.version workspace.rust-version;

  # Only what cargo needs: a change to docs/, nix/ or tests/ does not rebuild the binaries.
  cargoFiles = [
    ../Cargo.toml
    ../Cargo.lock
    ../.cargo
    ../.config
    ../rustfmt.toml
    ../crates
  ];
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions cargoFiles;
  };
  # The checks also need the README: a test fails when a config key, route or metric is missing from it.
  checkSrc = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions (cargoFiles ++ [../README.md]);
  };

  # Native build inputs of the -sys crates in Cargo.lock: aws-lc-sys (cmake, perl), onig_sys and the bundled
  # libsqlite3-sys (a C compiler, from stdenv).
  nativeBuildInputs = with pkgs; [
    cmake
    perl
    pkg-config
  ];

  workspaceBuild = pkgs.rustPlatform.buildRustPackage {
    pname = "hearth-workspace";
    inherit (workspace) version;
    inherit src nativeBuildInputs;
    cargoLock.lockFile = ../Cargo.lock;
    # Build the three shipped binaries; the tests need PostgreSQL, Garage and a model and run in
    # checks.rust-tests instead.
    cargoBuildFlags = [
      "--package"
      "hearthd"
      "--package"
      "hearth-cli"
      "--package"
      "hearth-firstboot"
    ];
    doCheck = false;
    # cmake is a build input of aws-lc-sys only, not a build system for this package.
    dontUseCmakeConfigure = true;
    meta = {
      description = "hearth: private, local-first semantic search appliance";
      license = lib.licenses.agpl3Plus;
      platforms = lib.platforms.linux;
    };
  };

  onlyBinary = name: description:
    pkgs.runCommand name {
      meta =
        workspaceBuild.meta
        // {
          inherit description;
          mainProgram = name;
        };
    } ''
      mkdir -p $out/bin
      ln -s ${workspaceBuild}/bin/${name} $out/bin/${name}
    '';

  hearthd =
    pkgs.runCommand "hearthd-${workspace.version}" {
      nativeBuildInputs = [pkgs.makeWrapper];
      passthru = {inherit onnxruntime;};
      meta =
        workspaceBuild.meta
        // {
          description = "hearth's daemon (onnxruntime ${onnxruntime.version})";
          mainProgram = "hearthd";
        };
    } ''
      makeWrapper ${workspaceBuild}/bin/hearthd $out/bin/hearthd \
        --set-default ORT_DYLIB_PATH ${onnxruntime}/lib/libonnxruntime.so \
        --set HEARTH_BUILD_REVISION ${lib.escapeShellArg revision}
    '';

  models = pkgs.callPackage ./models.nix {};

  # The browser tests' Node packages, from the committed lock: every dependency it lists, each tarball fetched from
  # the npm registry by the sha512 npm recorded (`cargo xtask deps` installs the same bytes with `npm ci`).
  browserLock = lib.importJSON ../crates/hearthd/tests/browser/package-lock.json;
  npmTarball = name: let
    entry = browserLock.packages."node_modules/${name}";
  in
    pkgs.fetchurl {
      url = "https://registry.npmjs.org/${name}/-/${baseNameOf name}-${entry.version}.tgz";
      hash = entry.integrity;
    };
  browserNodeModules = pkgs.runCommand "hearth-browser-node-modules" {} (lib.concatMapStrings (name: ''
    mkdir -p $out/${name}
    tar -xzf ${npmTarball name} -C $out/${name} --strip-components=1
  '') (lib.attrNames browserLock.packages."".dependencies));

  # What the Rust tests run against (crates/hearth-testkit/src/deps.rs): each variable names one dependency.
  testEnv = {
    HEARTH_POSTGRES_BIN = "${pkgs.postgresql_17.withPackages (ps: [ps.pgvector])}/bin";
    ORT_DYLIB_PATH = "${onnxruntime}/lib/libonnxruntime.so";
    HEARTH_TEST_MODEL_DIR = "${models.all-minilm-l6-v2-int8}";
    HEARTH_GARAGE_BIN = lib.getExe pkgs.garage_2;
    # The official OpenAI client drives hearthd, the reference OpenMetrics parser reads /metrics, and
    # openapi-spec-validator and schemathesis check and fuzz /openapi.json (crates/xtask/python/test-requirements.in).
    HEARTH_TEST_PYTHON = "${pkgs.python3.withPackages (ps: [
      ps.openai
      ps.prometheus-client
      ps.openapi-spec-validator
      ps.schemathesis
      ps.mcp
    ])}/bin/python3";
    # The reasoning tests' provider: llama.cpp's OpenAI-compatible server (llama-cpp-python's), and gguf to write
    # its tiny model (crates/hearth-testkit/python/, crates/xtask/python/llama-requirements.in).
    HEARTH_LLAMA_PYTHON = "${pkgs.python3.withPackages (ps: [
      ps.llama-cpp-python
      ps.fastapi
      ps.uvicorn
      ps.sse-starlette
      ps.starlette-context
      ps.pydantic-settings
      ps.pyyaml
      ps.gguf
    ])}/bin/python3";
    # The web UI's browser test: Chromium driven by playwright-core, with axe-core (crates/hearthd/tests/ui.rs).
    HEARTH_CHROMIUM = lib.getExe pkgs.chromium;
    HEARTH_NODE_MODULES = "${browserNodeModules}";
  };
in
  assert lib.assertMsg (!rustTooOld) "hearth needs rustc >= ${workspace.rust-version}; this nixpkgs has ${pkgs.rustc.version}"; {
    inherit onnxruntime models testEnv src checkSrc nativeBuildInputs workspaceBuild hearthd;
    hearth = onlyBinary "hearth" "hearth's command-line client";
    hearth-firstboot = onlyBinary "hearth-firstboot" "hearth's first-boot secret minting and Garage provisioning";
  }
