# shim-of: nixos/modules/misc/version.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# stateVersion warns when read without being set, and must look like YY.MM; the release is lib's own .version.
{
  config,
  lib,
  options,
  ...
}: let
  inherit (lib) mkOption types;
  cfg = config.system.nixos;
in {
  options.system = {
    stateVersion = mkOption {
      type = types.str;
      default = cfg.release;
      apply = v:
        lib.warnIf (options.system.stateVersion.highestPrio == (lib.mkOptionDefault {}).priority)
        "system.stateVersion is not set, defaulting to ${v}. Read why this matters on https://nixos.org/manual/nixos/stable/options.html#opt-system.stateVersion."
        v;
    };
    nixos = {
      release = mkOption {
        type = types.str;
        readOnly = true;
        default = lib.trivial.release;
      };
      version = mkOption {
        type = types.str;
        internal = true;
      };
      versionSuffix = mkOption {
        type = types.str;
        internal = true;
        default = lib.trivial.versionSuffix;
      };
      distroId = mkOption {
        type = types.str;
        internal = true;
        default = "nixos";
      };
    };
  };

  config = {
    system.nixos.version = lib.mkDefault (cfg.release + cfg.versionSuffix);
    assertions = [
      {
        assertion = builtins.match "[0-9]{2}\\.[0-9]{2}" config.system.stateVersion != null;
        message = ''
          ${config.system.stateVersion} is an invalid value for 'system.stateVersion'; it must be in the format "YY.MM",
          which corresponds to a prior release of NixOS.

          If you want to switch releases or switch to unstable, you should change your channel and/or flake input URLs only.
          *DO NOT* touch the 'system.stateVersion' option, as it will not help you upgrade.
        '';
      }
    ];
  };
}
