# shim-of: nixos/modules/hardware/all-hardware.nix @ NixOS/nixpkgs@2810f917fc9b45a75af9598e61138d7caa735160
# Only the option: what it turns on (every initrd driver, redistributable firmware) touches nothing hearth sets.
{lib, ...}: {
  options.hardware.enableAllHardware = lib.mkEnableOption "Enable support for most hardware";
}
