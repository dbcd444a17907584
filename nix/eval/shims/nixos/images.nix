# shim-of: nixos/modules/image/images.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# Each `image.modules.<variant>` is nixpkgs' own module for that variant (../images) merged with the site's, and
# `system.build.images.<variant>` is the whole configuration extended with it. Only the three variants hearth
# builds are modelled; nixpkgs defines about twenty more. `hearthEval.imageEvaluations` is the gate's own view of
# the extended configurations, not a nixpkgs option.
{
  config,
  lib,
  pkgs,
  extendModules,
  ...
}: let
  sdCard = ../images + "/sd-image-${pkgs.stdenv.hostPlatform.qemuArch}.nix";
  imageConfigs = lib.mapAttrs (_: module: extendModules {modules = [module];}) config.image.modules;
in {
  options.image.modules = lib.mkOption {type = lib.types.attrsOf lib.types.deferredModule;};
  options.system.build.images = lib.mkOption {
    readOnly = true;
    type = lib.types.lazyAttrsOf lib.types.raw;
  };
  options.hearthEval.imageEvaluations = lib.mkOption {
    internal = true;
    readOnly = true;
    type = lib.types.lazyAttrsOf lib.types.raw;
  };

  config = {
    image.modules = {
      qemu-efi = ../images/disk-image.nix;
      virtualbox = ../images/virtualbox-image.nix;
      sd-card.imports =
        if builtins.pathExists sdCard
        then [sdCard]
        else throw "The module ${toString sdCard} does not exist.";
    };
    hearthEval.imageEvaluations = imageConfigs;
    system.build.images = lib.mapAttrs (name: nixos: let
      builder = nixos.config.system.build.image or (throw "Module for `system.build.images.${name}` misses required `system.build.image` option.");
    in
      lib.recursiveUpdate builder {
        passthru = {
          inherit (nixos) config;
          inherit (nixos.config.image) filePath;
        };
      })
    imageConfigs;
  };
}
