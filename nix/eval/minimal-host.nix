# The least a NixOS configuration needs besides a module under test: a platform, a root file system, a boot loader
# and a state version; and whatever the module under test offers turned on (the gate evaluates each exported
# module on its own with this).
{
  lib,
  options,
  ...
}: {
  config = lib.mkMerge [
    {
      nixpkgs.hostPlatform = "x86_64-linux";
      fileSystems."/" = {
        device = "/dev/vda";
        fsType = "ext4";
      };
      boot.loader.grub.device = "/dev/vda";
      system.stateVersion = "26.05";
    }
    (lib.optionalAttrs (options ? services.hearth) {services.hearth.enable = true;})
    (lib.optionalAttrs (options ? hearth.substrate) {hearth.substrate.enable = true;})
  ];
}
