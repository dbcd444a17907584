# shim-of: nixos/modules/misc/label.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# The system's label: the sorted tags and the version (images add their tags).
{
  config,
  lib,
  ...
}: let
  cfg = config.system.nixos;
in {
  options.system.nixos = {
    tags = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [];
    };
    label = lib.mkOption {type = lib.types.strMatching "[a-zA-Z0-9:_\\.-]*";};
  };
  config.system.nixos.label = lib.mkDefault (lib.concatStringsSep "-" ((lib.sort (x: y: x < y) cfg.tags) ++ [cfg.version]));
}
