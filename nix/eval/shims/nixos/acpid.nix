# shim-of: nixos/modules/services/hardware/acpid.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# Only the option the NVIDIA module sets.
{lib, ...}: {
  options.services.acpid.enable = lib.mkEnableOption "the ACPI daemon";
}
