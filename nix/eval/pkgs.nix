# A stand-in for nixpkgs' package set, for the evaluation gate (nix/eval/default.nix): exactly the attributes
# hearth's Nix code names, and nothing else, so that a misspelt or missing package fails evaluation with Nix's own
# "attribute '…' missing" error at the line that names it.
#
# Every package is a derivation-shaped attribute set (`type = "derivation"`, `outPath`, `drvPath`, `meta`): it
# passes `types.package`, interpolates into strings and answers `lib.getExe`. Its store path is a hash of its
# arguments, computed after forcing all of them (as instantiating a real derivation would), so two builds that
# differ in any argument (a source revision, an override) have different paths and a wrong argument anywhere in
# a build fails here. Nothing is built, and the versions below are the ones hearth's code checks, not facts about
# the pinned nixpkgs (docs/nix-verification.md says which are unverified).
{
  lib,
  system,
  # nixpkgs.config: `allowUnfree` / `allowUnfreePredicate` decide which unfree packages evaluate.
  config ? {},
}: let
  inherit (lib) isAttrs isDerivation isFunction isList isPath isString;

  # What a derivation's hash covers: every argument, forced. Paths are named, not copied (nothing here has a
  # store); functions stand for themselves; meta and passthru are not inputs of a real derivation either.
  fingerprint = value:
    if isDerivation value
    then value.outPath
    else if isAttrs value
    then lib.mapAttrs (_: fingerprint) value
    else if isList value
    then map fingerprint value
    else if isPath value
    then toString value
    else if isFunction value
    then "<function>"
    else if isString value
    then builtins.unsafeDiscardStringContext value
    else value;

  # nixpkgs refuses a derivation name with characters a store path cannot hold.
  validName = name:
    if builtins.match "[A-Za-z0-9+._?=-]+" name != null
    then name
    else throw "stub pkgs: derivation name `${name}' contains characters that are not allowed in a store path";

  # nixpkgs' check-meta.nix: an unfree package evaluates only when the configuration allows it, and the refusal
  # happens when its derivation is instantiated, not when its attributes are read.
  allowUnfree = config.allowUnfree or false;
  allowUnfreePredicate = config.allowUnfreePredicate or (_: false);
  checkLicense = drv: let
    license = drv.meta.license or {free = true;};
  in
    if license.free or true || allowUnfree || allowUnfreePredicate drv
    then drv
    else throw "Package ‘${drv.name}’ has an unfree license (‘${license.shortName or "unfree"}’), refusing to evaluate.";

  mkDerivation = args: let
    name = validName (args.name or "${args.pname}-${args.version}");
    inputs = removeAttrs args ["meta" "passthru"];
    hash = builtins.substring 0 32 (builtins.hashString "sha256" (builtins.toJSON (fingerprint inputs)));
    drv =
      inputs
      // (args.passthru or {})
      // {
        type = "derivation";
        inherit name system;
        outPath = (checkLicense drv').path;
        drvPath = "${(checkLicense drv').path}.drv";
        outputName = "out";
        outputs = ["out"];
        out = drv;
        meta = args.meta or {};
        # mkDerivation's overrideAttrs: `old: { … }` (or `final: prev: { … }`) over the original arguments.
        overrideAttrs = f: let
          changes = f args;
          new =
            if isFunction changes
            then changes args
            else changes;
        in
          mkDerivation (args // new);
      };
    # What the license check sees: the name and meta, without forcing the paths it guards.
    drv' = {
      inherit name;
      pname = args.pname or name;
      meta = args.meta or {};
      path = "${builtins.storeDir}/${hash}-${name}";
    };
  in
    drv;

  # A nixpkgs package: `override` changes its call arguments and so its store path.
  package = pname: version: extra: let
    make = overrides:
      mkDerivation ({
          inherit pname version;
          passthru = {override = more: make (overrides // more);} // (extra.passthru or {});
          meta = extra.meta or {};
        }
        // removeAttrs extra ["passthru" "meta"]
        // lib.optionalAttrs (overrides != {}) {inherit overrides;});
  in
    make {};

  tool = pname: package pname "stub" {meta.mainProgram = pname;};

  runCommand = name: env: buildCommand:
    mkDerivation (env // {inherit name buildCommand;});

  # pkgs/pkgs-lib/formats.nix @ Swarsel/nixpkgs@4aa6836a: `pkgs.formats.toml { }` is lib.types.toml (no nulls).
  tomlFormat = {}: {
    type = lib.types.toml;
    generate = name: value:
      mkDerivation {
        inherit name;
        value = builtins.toJSON value;
        passthru.settings = value;
      };
  };

  unfree = shortName: {
    free = false;
    inherit shortName;
  };
  linuxPlatforms = lib.platforms.linux;

  # nixpkgs' CUDA build inputs of onnxruntime (pkgs/by-name/on/onnxruntime/package.nix); their pnames and licenses
  # are assumed (the CUDA redistributables' own package files were not read).
  cudaPackages = lib.genAttrs ["cuda_nvcc" "cuda_cudart" "cuda_cccl" "libcublas" "libcurand" "libcusparse" "libcufft" "cudnn"] (
    name: package name "12.9" {meta.license = unfree "CUDA EULA";}
  );
  onnxruntimeWith = {cudaSupport ? false} @ arguments:
    mkDerivation {
      pname = "onnxruntime";
      version = "1.26.0";
      buildInputs = lib.optionals cudaSupport (lib.attrValues cudaPackages);
      passthru = {
        inherit cudaSupport;
        override = more: onnxruntimeWith (arguments // more);
      };
    };

  # pkgs/os-specific/linux/nvidia-x11: the production driver, unfree, with open kernel modules and GSP firmware.
  nvidiaDriver = let
    driver = package "nvidia-x11" "595.84-6.12" {
      meta.license = unfree "unfreeRedistributable";
      passthru = {
        version = "595.84";
        bin = driver;
        firmware = driver;
        open = package "nvidia-open" "595.84-6.12" {};
      };
    };
  in
    driver;

  # A kernel package set as boot.kernelPackages sees it: `extend`, a kernel with `override` and its features.
  kernelPackagesWith = kernel: {
    inherit kernel;
    extend = f: kernelPackagesWith ((f {} {inherit kernel;}).kernel or kernel);
    nvidiaPackages.stable = nvidiaDriver;
  };
  linuxKernel = package "linux" "6.12.60" {
    passthru = {
      features = {
        efiBootStub = true;
        ia32Emulation = true;
      };
      buildDTBs = system == "aarch64-linux";
      override = _: linuxKernel;
    };
  };

  pkgs = {
    _type = "pkgs";
    inherit lib system config;
    path = "${builtins.storeDir}/00000000000000000000000000000000-nixpkgs-source";
    stdenv = {
      hostPlatform = lib.systems.elaborate system;
      buildPlatform = lib.systems.elaborate system;
      inherit mkDerivation;
    };
    overlays = [];
    inherit runCommand;
    writeText = name: text: runCommand name {inherit text;} "";
    writeShellScriptBin = name: text: runCommand name {inherit text;} "";
    writeScriptBin = name: text: runCommand name {inherit text;} "";
    writeShellApplication = {
      name,
      text,
      runtimeInputs ? [],
      ...
    }:
      mkDerivation {
        inherit name text runtimeInputs;
        meta.mainProgram = name;
      };
    symlinkJoin = {
      name,
      paths,
      ...
    } @ args:
      mkDerivation (removeAttrs args ["meta"] // {inherit name paths;}) // {meta = args.meta or {};};
    mkShell = args: mkDerivation ({name = "nix-shell";} // args);
    callPackage = lib.callPackageWith pkgs;
    # nixpkgs' fetchurl takes `sha256` (hex) or `hash` (SRI, e.g. the `sha512-…` npm records in a lock).
    fetchurl = {
      url,
      sha256 ? null,
      hash ? null,
    }:
      if sha256 != null && builtins.match "[0-9a-f]{64}" sha256 == null
      then throw "stub pkgs: fetchurl ${url}: sha256 `${sha256}' is not 64 hexadecimal digits"
      else if hash != null && builtins.match "sha(256|512)-[A-Za-z0-9+/]+=*" hash == null
      then throw "stub pkgs: fetchurl ${url}: hash `${hash}' is not an SRI sha256 or sha512"
      else if (sha256 == null) == (hash == null)
      then throw "stub pkgs: fetchurl ${url}: give exactly one of sha256 and hash"
      else
        mkDerivation {
          name = baseNameOf url;
          inherit url;
          outputHash =
            if hash != null
            then hash
            else sha256;
        };

    formats.toml = tomlFormat;

    testers.runNixOSTest = test:
      mkDerivation {
        name = "vm-test-run-${test.name}";
        passthru.hearthEval.test = test;
      };

    rustPlatform = {
      buildRustPackage = args: mkDerivation args;
      importCargoLock = {lockFile}:
        mkDerivation {
          name = "cargo-vendor-dir";
          lockFile = builtins.readFile lockFile;
        };
      cargoSetupHook = tool "cargo-setup-hook";
    };

    # The versions in Swarsel/nixpkgs@4aa6836a (nixpkgs master, mid 2026), not read at the flake's pinned
    # nixos-26.05 revision; hearth's packages.nix asserts onnxruntime >= 1.24 and rustc >= its rust-version.
    onnxruntime = onnxruntimeWith {};
    rustc = package "rustc" "1.94.0" {};
    # nixpkgs' chromium sets meta.mainProgram = "chromium" (pkgs/applications/networking/browsers/chromium).
    chromium = package "chromium" "stub" {meta.mainProgram = "chromium";};
    postgresql_17 = postgresqlOf "17.10";
    postgresql_18 = postgresqlOf "18.3";
    garage_2 = package "garage" "2.3.0" {meta.mainProgram = "garage";};
    python3 = package "python3" "3.13.7" {
      passthru.withPackages = f: package "python3-env" "3.13.7" {extraLibs = f pythonPackages;};
      meta.mainProgram = "python3";
    };
    systemd = package "systemd" "259.3" {};
    zfs = package "zfs" "2.3.4" {meta.platforms = linuxPlatforms;};
    linuxPackages = kernelPackagesWith linuxKernel;
    addDriverRunpath.driverLink = "/run/opengl-driver";
    raspberrypifw = package "raspberrypi-firmware" "stub" {};
    raspberrypi-armstubs = package "raspberrypi-armstubs" "stub" {};
    ubootRaspberryPi4_64bit = package "uboot-rpi_4_defconfig" "stub" {};

    makeWrapper = tool "make-shell-wrapper-hook";
    unzip = tool "unzip";
    cmake = tool "cmake";
    perl = tool "perl";
    pkg-config = tool "pkg-config";
    cargo = tool "cargo";
    clippy = tool "clippy";
    rustfmt = tool "rustfmt";
    rust-analyzer = tool "rust-analyzer";
    cargo-nextest = tool "cargo-nextest";
    strace = tool "strace";
    alejandra = tool "alejandra";
    deadnix = tool "deadnix";
    nix = tool "nix";
    coreutils = tool "coreutils";
    findutils = tool "findutils";
    gnugrep = tool "gnugrep";
    gnused = tool "gnused";
    curl = tool "curl";
    jq = tool "jq";
    util-linux = tool "util-linux";
    gitMinimal = tool "git";
  };

  # postgresql's withPackages (wrapper.nix): called with the extension set, chainable; pgvector is `ps.pgvector`.
  postgresqlOf = version: let
    postgresql = package "postgresql" version {
      passthru = {
        pkgs.pgvector = package "pgvector" "0.8.5" {};
        psqlSchema = lib.versions.major version;
        withPackages = f:
          package "postgresql-and-plugins" version {
            installedExtensions = f postgresql.pkgs;
            passthru = {inherit (postgresql) withPackages psqlSchema;};
          };
      };
      meta.mainProgram = "postgres";
    };
  in
    postgresql;

  pythonPackages = {
    openai = package "openai" "stub" {};
    prometheus-client = package "prometheus-client" "stub" {};
    openapi-spec-validator = package "openapi-spec-validator" "stub" {};
    schemathesis = package "schemathesis" "stub" {};
    mcp = package "mcp" "stub" {};
    llama-cpp-python = package "llama-cpp-python" "stub" {};
    fastapi = package "fastapi" "stub" {};
    uvicorn = package "uvicorn" "stub" {};
    sse-starlette = package "sse-starlette" "stub" {};
    starlette-context = package "starlette-context" "stub" {};
    pydantic-settings = package "pydantic-settings" "stub" {};
    pyyaml = package "pyyaml" "stub" {};
    gguf = package "gguf" "stub" {};
  };
in
  pkgs
