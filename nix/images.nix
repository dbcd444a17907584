# Flake packages for the images, made by nixpkgs' own image builders (`system.build.images.<variant>`) from the host
# configurations in hosts/, with the per-image adjustments in modules/profiles (`image.modules`).
#   x86_64-linux:  appliance-qcow2 (UEFI, for QEMU/KVM, Proxmox, libvirt), appliance-ova (VirtualBox, BIOS)
#   aarch64-linux: pi-image (SD card, zstd-compressed, grows to the card on first boot)
# pi-image is an aarch64 derivation; it is listed for x86_64-linux too, so `nix build .#pi-image` works on an
# x86_64 machine that can build for aarch64 (binfmt emulation or a remote builder, see docs/install.md).
{
  self,
  system,
  ...
}: let
  image = host: variant: self.nixosConfigurations.${host}.config.system.build.images.${variant};
  pi-image = image "pi" "sd-card";
in
  {
    x86_64-linux = {
      appliance-qcow2 = image "appliance" "qemu-efi";
      appliance-ova = image "appliance" "virtualbox";
      inherit pi-image;
    };
    aarch64-linux = {
      inherit pi-image;
    };
  }
  .${system}
  or {}
