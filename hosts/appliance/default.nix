# The x86_64 appliance: a mini-PC or VM. Installed with
#   nixos-anywhere --flake .#appliance \
#     --generate-hardware-config nixos-generate-config ./hosts/appliance/hardware-configuration.nix root@<ip>
# which writes (and `git add -N`s) the hardware file picked up below; a nixos-facter report works the same way as
# ./facter.json. Without either, the drivers below boot common VMs and mini-PCs.
{lib, ...}: {
  imports =
    [
      ../../modules/profiles/appliance.nix
      ../x86_64-efi.nix
      ./disko.nix
    ]
    ++ lib.optional (builtins.pathExists ./hardware-configuration.nix) ./hardware-configuration.nix;

  config = lib.mkMerge [
    {
      # Virtual disks, on top of the x86_64 defaults.
      boot.initrd.availableKernelModules = [
        "virtio_pci"
        "virtio_blk"
        "virtio_scsi"
      ];
    }
    (lib.optionalAttrs (builtins.pathExists ./facter.json) {
      hardware.facter.reportPath = ./facter.json;
    })
  ];
}
