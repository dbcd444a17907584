# How the gate evaluates a NixOS configuration: nixpkgs' `lib.nixosSystem` and the NixOS test framework's node
# evaluation, with the interface shims (./shims) in place of nixpkgs' module list. Every file in ./shims/nixos is
# a module of every configuration, as every file of nixpkgs' module-list.nix is.
{lib}: let
  inherit (lib) filterAttrs hasSuffix isAttrs isDerivation isFunction isList isPath mapAttrs;

  stubPkgsFor = {
    system,
    config ? {},
  }:
    import ./pkgs.nix {inherit lib system config;};

  nixosShims = map (file: ./shims/nixos + "/${file}") (lib.attrNames (
    filterAttrs (name: type: type == "regular" && hasSuffix ".nix" name) (builtins.readDir ./shims/nixos)
  ));

  # The arguments the shims get besides nixpkgs' own (`stubPkgsFor` builds `pkgs` from nixpkgs.hostPlatform).
  baseArgs = {
    inherit stubPkgsFor;
    modulesPath = "${builtins.storeDir}/00000000000000000000000000000000-nixpkgs-source/nixos/modules";
  };

  # nixos/lib/eval-config.nix: evalModules over the module list plus the configuration's modules; the result
  # also carries the package set, as nixosSystem's does.
  nixosSystem = {
    modules,
    specialArgs ? {},
    ...
  }: let
    eval = lib.evalModules {
      class = "nixos";
      specialArgs = baseArgs // specialArgs;
      modules = nixosShims ++ modules;
    };
  in
    eval // {inherit (eval._module.args) pkgs;};

  # nixos/lib/testing: each node is a NixOS configuration over the test's package set, with the VM and test
  # instrumentation modules (./shims/test-node.nix) and the other nodes' configurations as `nodes`.
  evalTestNodes = system: check: test: let
    pkgs = stubPkgsFor {inherit system;};
    nodes = mapAttrs (name: node:
      nixosSystem {
        modules =
          [
            ./shims/test-node.nix
            {
              _file = ./nixos.nix;
              nixpkgs.pkgs = pkgs;
              networking.hostName = lib.mkDefault name;
              _module.args.nodes = mapAttrs (_: other: other.config) nodes;
            }
            (lib.setDefaultModuleLocation "tests/ (check ${check}, node ${name})" node)
          ]
          ++ lib.toList (test.defaults or []);
      })
    test.nodes;
  in
    nodes;

  # A configuration value as JSON can hold it, forced: derivations become their store paths, functions a marker.
  # A unit's startLimitBurst/startLimitIntervalSec have no default and are read only when defined (nixpkgs turns
  # them into unitConfig, which is kept); they are the only sub-options of that kind the shims declare.
  jsonable = value:
    if isDerivation value
    then value.outPath
    else if isAttrs value
    then mapAttrs (_: jsonable) (removeAttrs value ["startLimitBurst" "startLimitIntervalSec"])
    else if isList value
    then map jsonable value
    else if isPath value
    then toString value
    else if isFunction value
    then "<function>"
    else value;
in {
  inherit nixosSystem evalTestNodes jsonable stubPkgsFor;
}
