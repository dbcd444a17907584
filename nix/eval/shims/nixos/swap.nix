# shim-of: nixos/modules/config/swap.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
{lib, ...}: let
  inherit (lib) mkOption types;
  randomEncryptionOpts.options.enable = mkOption {
    type = types.bool;
    default = false;
  };
in {
  options.swapDevices = mkOption {
    type = types.listOf (types.submodule {
      options = {
        device = mkOption {type = types.nonEmptyStr;};
        size = mkOption {
          type = types.nullOr types.int;
          default = null;
        };
        randomEncryption = mkOption {
          type = types.coercedTo types.bool (enable: {inherit enable;}) (types.submodule randomEncryptionOpts);
          default = false;
        };
      };
    });
    default = [];
  };
}
