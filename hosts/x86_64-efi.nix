# What the two x86_64 classes share: UEFI boot with systemd-boot and the disk and USB drivers of common mini-PCs and
# workstations (a hardware-configuration.nix or facter report adds the rest).
{lib, ...}: {
  nixpkgs.hostPlatform = "x86_64-linux";
  boot.loader.systemd-boot.enable = lib.mkDefault true;
  boot.loader.efi.canTouchEfiVariables = lib.mkDefault true;
  boot.initrd.availableKernelModules = [
    "nvme"
    "ahci"
    "xhci_pci"
    "usb_storage"
    "usbhid"
    "sd_mod"
  ];
}
