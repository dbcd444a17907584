# The evaluation gate (`cargo xtask nix-eval`): hearth's flake evaluated by the NixOS module system without
# nixpkgs. nixpkgs' real `lib` (a directory given by the caller) runs `lib.evalModules` over hearth's modules plus
# interface shims (./shims) of the nixpkgs options hearth touches, and a stand-in package set (./pkgs.nix).
#
# It evaluates the flake's real outputs (nix/outputs.nix) with these inputs, then, for every NixOS configuration
# they contain — each `nixosConfigurations.<class>`, each image variant of each, each specialisation, every node
# of every VM test among the checks, and each exported module on its own — forces its assertions (failing with
# nixpkgs' "Failed assertions" text), its warnings and every option value the shims declare. The result, printed
# as JSON, is what the xtask reads: the configurations with hearth's rendered settings, the flake's check names,
# and for each option hearth defines the shim that declares it.
{
  # A nixpkgs `lib` directory (nix-community/nixpkgs.lib's `lib`, or `<nixpkgs/lib>`).
  nixpkgsLib,
}: let
  root = ../..;
  lib = import nixpkgsLib;
  inherit (lib) filterAttrs hasSuffix mapAttrs mapAttrsToList;

  evaluator = import ./nixos.nix {inherit lib;};
  inherit (evaluator) nixosSystem evalTestNodes jsonable stubPkgsFor;

  systems = ["x86_64-linux" "aarch64-linux"];
  revision = "0000000000000000000000000000000000eva1ed";

  # The flake's inputs, as nix/outputs.nix sees them.
  inputs = {
    self =
      outputs
      // {
        outPath = toString root;
        rev = revision;
        shortRev = builtins.substring 0 7 revision;
      };
    nixpkgs = {
      lib = lib // {inherit nixosSystem;};
      legacyPackages = lib.genAttrs systems (system: stubPkgsFor {inherit system;});
      outPath = "${builtins.storeDir}/00000000000000000000000000000000-nixpkgs-source";
    };
    disko = {
      nixosModules.disko = ./shims/disko.nix;
      outPath = "${builtins.storeDir}/00000000000000000000000000000000-disko-source";
    };
  };
  outputs = import (root + "/nix/outputs.nix") inputs;

  # One configuration's report: everything it defines, forced, with its image variants and specialisations (each
  # a configuration of its own). `eval` is a lib.evalModules result.
  inspect = eval:
    inspectOne eval
    // {
      images = mapAttrs (_: inspectOne) (lib.getAttrs (hearthImageVariants eval) eval.config.hearthEval.imageEvaluations);
      specialisations = mapAttrs (name: _:
        inspectOne (eval.extendModules {modules = [./shims/no-clone.nix] ++ specialisationModules eval name;}))
      eval.config.specialisation;
    };

  # A specialisation's own modules, as its definitions give them (the option's value is the child's finished
  # configuration, from which no module can be recovered).
  specialisationModules = eval: name:
    lib.concatMap (definition: lib.optional (definition.value ? ${name}.configuration) definition.value.${name}.configuration)
    eval.options.specialisation.definitionsWithLocations;

  # The image variants hearth's own files define (nixpkgs defines about twenty more for every configuration).
  hearthImageVariants = eval:
    lib.unique (lib.concatMap (definition: lib.attrNames definition.value) (
      lib.filter (definition: !isShimFile definition.file) eval.options.image.modules.definitionsWithLocations
    ));

  inspectOne = eval: let
    config = eval.config;
  in {
    # nixpkgs' top-level.nix throws "Failed assertions: …" here (shims/nixos/top-level.nix).
    toplevel = config.system.build.toplevel.drvPath;
    inherit (config) warnings;
    hearthSettings =
      if config ? services.hearth && config.services.hearth.enable
      then config.services.hearth.settings
      else null;
    values = optionValues eval;
    options = definedOptions eval;
    # Options whose definitions cannot be listed because their default fails to evaluate here (a feature that
    # is off); the xtask names them, so that none goes unchecked silently.
    unlisted = map (option: lib.showOption option.loc) (lib.filter (option: !(definitionFiles' option).success) (
      lib.collect lib.isOption (removeAttrs eval.options ["_module"])
    ));
  };

  # The options hearth's own files define, and the parts of the system its units live in, forced: a definition of
  # the wrong type, a conflict between definitions or an error inside a value fails here. Other options keep
  # nixpkgs' laziness (many of its defaults only evaluate where the feature is on). Values nixpkgs leaves
  # unchecked (`raw`, `unspecified`, package sets) and nested systems are not walked into.
  optionValues = eval:
    lib.listToAttrs (lib.concatMap (option: let
      name = lib.showOption option.loc;
    in
      lib.optional ((definedByHearth option || lib.any (prefix: lib.hasPrefix prefix name) (forcedPrefixes eval.config)) && option.isDefined) (
        lib.nameValuePair name (
          if opaque option
          then "<${option.type.name}>"
          else jsonable option.value
        )
      ))
    (lib.collect lib.isOption (removeAttrs eval.options ["_module"])));

  forcedPrefixes = config:
    [
      "assertions"
      "warnings"
      "systemd."
      "users."
      "environment.etc"
      "disko."
      "fileSystems"
      "swapDevices"
    ]
    # A service's options only where it is on (some of their defaults need the service's package).
    ++ lib.optional config.services.postgresql.enable "services.postgresql."
    ++ lib.optional config.services.garage.enable "services.garage.";

  opaque = option:
    lib.elem option.type.name ["raw" "unspecified" "pkgs" "deferredModule"]
    || lib.elem (lib.showOption option.loc) ["system.build" "specialisation" "image.modules" "hearthEval.imageEvaluations"];

  isShimFile = file: lib.hasPrefix (toString ./.) (toString file);
  # The files defining an option. Listing them evaluates the head of the option's default, which for some
  # nixpkgs options throws where their feature is off (postgresql's finalPackage without a package): such an
  # option has no definitions the gate can list, and is forced only through what uses it.
  definitionFiles' = option: builtins.tryEval (builtins.deepSeq option.files option.files);
  definitionFiles = option: let
    files = definitionFiles' option;
  in
    if files.success
    then files.value
    else [];
  definedByHearth = option: lib.any (file: !isShimFile file) (definitionFiles option);

  # Options hearth's own files define, with the files that declare them (the shims) and define them.
  definedOptions = eval:
    lib.concatMap (option: let
      definedIn = lib.filter (file: !isShimFile file) (definitionFiles option);
    in
      lib.optional (definedIn != []) {
        option = lib.showOption option.loc;
        declaredIn = map toString option.declarations;
        definedIn = map toString definedIn;
      })
    (lib.collect lib.isOption (removeAttrs eval.options ["_module"]));

  hosts =
    mapAttrs (_: inspect) outputs.nixosConfigurations
    // {
      # The appliance with unattended, health-gated upgrades on: no shipped host enables them (a site names its
      # own flake), so the gate evaluates that path here.
      appliance-auto-upgrade = inspect (outputs.nixosConfigurations.appliance.extendModules {
        modules = [
          {
            hearth.appliance.autoUpgrade = {
              enable = true;
              flake = "github:example/hearth-site#appliance";
              allowReboot = true;
            };
          }
        ];
      });
    };

  # Each VM test among the checks, per system: every node, and the test script with the nodes it interpolates.
  vmTests = lib.genAttrs systems (system:
    mapAttrs (name: check: let
      nodes = evalTestNodes system name check.hearthEval.test;
      script = check.hearthEval.test.testScript;
    in {
      nodes = mapAttrs (_: inspect) nodes;
      # The script as the driver gets it, with the nodes interpolated; the xtask checks its names.
      testScript =
        if lib.isFunction script
        then script {nodes = mapAttrs (_: node: node.config) nodes;}
        else script;
    }) (filterAttrs (_: check: check ? hearthEval.test) outputs.checks.${system}));

  # Each exported module alone on a minimal machine, with hearth enabled: a module that forgets an import of its
  # own fails here.
  modules = mapAttrs (_: module:
    inspect (nixosSystem {
      modules = [
        module
        ./minimal-host.nix
      ];
    }))
  outputs.nixosModules;

  drvPaths = mapAttrs (_: mapAttrs (_: drv: drv.drvPath));
in {
  inherit hosts vmTests modules;
  checks = mapAttrs (_: lib.attrNames) outputs.checks;
  packages = drvPaths outputs.packages;
  devShells = drvPaths outputs.devShells;
  apps = mapAttrs (_: mapAttrs (_: app: app.program)) outputs.apps;
  formatter = mapAttrs (_: drv: drv.drvPath) outputs.formatter;
  shims = mapAttrsToList (name: _: name) (filterAttrs (name: _: hasSuffix ".nix" name) (builtins.readDir ./shims/nixos));
}
