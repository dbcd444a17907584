# shim-of: nixos/modules/system/activation/no-clone.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# What a specialisation does not inherit from its parent.
{lib, ...}: {
  boot.loader.grub.device = lib.mkOverride 0 "nodev";
  specialisation = lib.mkOverride 0 {};
  isSpecialisation = lib.mkOverride 0 true;
}
