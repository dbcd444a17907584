# shim-of: nixos/modules/system/etc/etc.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# A `text` becomes a `source` at the text's own priority, so a file given both ways is a merge conflict.
{
  lib,
  pkgs,
  ...
}: let
  inherit (lib) mkOption types;
in {
  options.environment.etc = mkOption {
    type = types.attrsOf (types.submodule ({
      config,
      options,
      name,
      ...
    }: {
      options = {
        enable = mkOption {
          type = types.bool;
          default = true;
        };
        source = mkOption {type = types.path;};
        text = mkOption {
          type = types.nullOr types.lines;
          default = null;
        };
        mode = mkOption {
          type = types.str;
          default = "symlink";
        };
        target = mkOption {type = types.str;};
      };
      config = {
        target = lib.mkDefault name;
        source = lib.mkIf (config.text != null) (
          lib.mkDerivedConfig options.text (pkgs.writeText ("etc-" + builtins.replaceStrings ["/"] ["-"] name))
        );
      };
    }));
    default = {};
  };
}
