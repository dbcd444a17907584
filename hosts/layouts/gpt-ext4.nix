# GPT with an EFI system partition and an ext4 root that takes the rest of the disk. ext4 rather than btrfs:
# PostgreSQL and Garage do their own checksumming and write-ahead logging, and ext4 grows online at boot
# (`boot.growPartition`) when a VM's disk is enlarged.
# The appliance and the workstation use it (hosts/<class>/disko.nix). The target disk: override
# `disko.devices.disk.main.device` (a /dev/disk/by-id path is safest) before installing.
{lib, ...}: {
  disko.devices.disk.main = {
    type = "disk";
    device = lib.mkDefault "/dev/nvme0n1";
    content = {
      type = "gpt";
      partitions = {
        ESP = {
          type = "EF00";
          size = "1G";
          content = {
            type = "filesystem";
            format = "vfat";
            mountpoint = "/boot";
            mountOptions = ["umask=0077"];
          };
        };
        root = {
          size = "100%";
          content = {
            type = "filesystem";
            format = "ext4";
            mountpoint = "/";
            mountOptions = ["noatime"];
          };
        };
      };
    };
  };
}
