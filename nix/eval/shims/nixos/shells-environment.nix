# shim-of: nixos/modules/config/shells-environment.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
{lib, ...}: {
  options.environment.variables = lib.mkOption {
    type = with lib.types;
      attrsOf (nullOr (oneOf [
        (listOf (oneOf [int str path]))
        int
        str
        path
      ]));
    default = {};
  };
}
