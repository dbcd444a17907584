# shim-of: nixos/modules/misc/nixpkgs.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# The package set comes from hostPlatform and config, unless a finished one is given (`nixpkgs.pkgs`, as the
# test framework does), in which case `config` must stay empty. Here the set is the gate's stand-in
# (nix/eval/pkgs.nix), which refuses unfree packages the config does not allow, as nixpkgs does.
{
  config,
  lib,
  options,
  stubPkgsFor,
  ...
}: let
  cfg = config.nixpkgs;
  mergeConfig = lhs: rhs:
    lib.recursiveUpdate lhs rhs
    // lib.optionalAttrs (lhs ? allowUnfreePackages) {
      allowUnfreePackages = lhs.allowUnfreePackages ++ (rhs.allowUnfreePackages or []);
    };
  configType = lib.mkOptionType {
    name = "nixpkgs-config";
    description = "nixpkgs config";
    check = x: lib.isAttrs x || lib.isFunction x;
    merge = _: lib.foldr (def: mergeConfig def.value) {};
  };
in {
  options.nixpkgs = {
    hostPlatform = lib.mkOption {
      type = lib.types.either lib.types.str lib.types.attrs;
      apply = lib.systems.elaborate;
    };
    config = lib.mkOption {
      type = configType;
      default = {};
    };
    pkgs = lib.mkOption {type = lib.types.pkgs;};
  };
  config = {
    _module.args.pkgs = lib.mkOverride lib.modules.defaultOverridePriority (
      if options.nixpkgs.pkgs.isDefined
      then cfg.pkgs
      else
        stubPkgsFor {
          inherit (cfg.hostPlatform) system;
          inherit (cfg) config;
        }
    );
    assertions = [
      {
        assertion = options.nixpkgs.pkgs.isDefined -> cfg.config == {};
        message = ''
          Your system configures nixpkgs with an externally created instance.
          `nixpkgs.config` options should be passed when creating the instance instead.

          Current value:
          ${lib.generators.toPretty {multiline = true;} cfg.config}
        '';
      }
    ];
  };
}
