# shim-of: nixos/modules/system/boot/systemd/tmpfiles.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
{lib, ...}: let
  inherit (lib) mkOption types;
  attrsWith' = placeholder: elemType: types.attrsWith {inherit elemType placeholder;};
  field = default:
    mkOption {
      type = types.str;
      inherit default;
    };
in {
  options.systemd.tmpfiles = {
    settings = mkOption {
      type = attrsWith' "config-name" (attrsWith' "path" (attrsWith' "tmpfiles-type" (types.submodule ({name, ...}: {
        options = {
          type = field name;
          mode = field "-";
          user = field "-";
          group = field "-";
          age = field "-";
          argument = field "";
        };
      }))));
      default = {};
    };
    rules = mkOption {
      type = types.listOf types.str;
      default = [];
    };
  };
}
