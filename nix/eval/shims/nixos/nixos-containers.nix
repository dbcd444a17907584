# shim-of: nixos/modules/virtualisation/nixos-containers.nix @ a recent copy found by content (uses lib.modules.importApply ./containers-submodule.nix); Swarsel/nixpkgs@4aa6836a's was not read
{lib, ...}: {
  options.boot.isContainer = lib.mkOption {
    type = lib.types.bool;
    default = false;
  };
}
