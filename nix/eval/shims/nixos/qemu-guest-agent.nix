# shim-of: nixos/modules/virtualisation/qemu-guest-agent.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
{lib, ...}: {
  options.services.qemuGuest.enable = lib.mkOption {
    type = lib.types.bool;
    default = false;
  };
}
