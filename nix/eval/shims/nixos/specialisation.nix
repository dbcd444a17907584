# shim-of: nixos/modules/system/activation/specialisation.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# A specialisation's configuration is the parent's modules extended with its own (inheritParentConfig), plus
# no-clone.nix's overrides; its value is the child's evaluated configuration.
{
  lib,
  config,
  extendModules,
  ...
}: {
  options = {
    specialisation = lib.mkOption {
      default = {};
      type = lib.types.attrsOf (lib.types.submodule {
        options.configuration = lib.mkOption {
          inherit (extendModules {modules = [../no-clone.nix];}) type;
          default = {};
          visible = "shallow";
        };
        options.inheritParentConfig = lib.mkOption {
          type = lib.types.bool;
          default = true;
        };
      });
    };
    isSpecialisation = lib.mkOption {
      type = lib.types.bool;
      internal = true;
      default = false;
    };
  };
  config.assertions =
    lib.mapAttrsToList (name: _: {
      assertion = !lib.hasInfix "/" name;
      message = ''
        Specialisation names must not contain forward slashes.
        Invalid specialisation name: ${name}
      '';
    })
    config.specialisation;
}
