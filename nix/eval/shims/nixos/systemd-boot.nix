# shim-of: nixos/modules/system/boot/loader/systemd-boot/systemd-boot.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
{
  config,
  lib,
  ...
}: {
  options.boot.loader.systemd-boot.enable = lib.mkOption {
    type = lib.types.bool;
    default = false;
  };
  config = lib.mkIf config.boot.loader.systemd-boot.enable {
    boot.loader.grub.enable = lib.mkDefault false;
    system.build.installBootLoader = "systemd-boot-builder";
    assertions = [
      {
        assertion = lib.hasPrefix "/" config.boot.loader.efi.efiSysMountPoint;
        message = "The ESP mount point '${toString config.boot.loader.efi.efiSysMountPoint}' must be an absolute path";
      }
      {
        assertion = (config.boot.kernelPackages.kernel.features or {efiBootStub = true;}) ? efiBootStub;
        message = "This kernel does not support the EFI boot stub";
      }
    ];
  };
}
