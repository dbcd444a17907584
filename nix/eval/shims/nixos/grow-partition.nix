# shim-of: nixos/modules/system/boot/grow-partition.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
{lib, ...}: {
  options.boot.growPartition = lib.mkEnableOption "growing the root partition on boot";
}
