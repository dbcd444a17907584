# The Raspberry Pi (Pi 4 / Pi 400 / CM4). The usual way in is the SD image (`nix build .#pi-image`, flash, boot).
# nixos-anywhere also works from a Pi running that image, onto a USB SSD or a fresh card:
#   nixos-anywhere --flake .#pi --generate-hardware-config nixos-generate-config ./hosts/pi/hardware-configuration.nix root@<ip>
# disko.nix then also writes the Pi firmware (the bootloader chain of the SD image) to the firmware partition.
{lib, ...}: {
  imports =
    [
      ../../modules/profiles/pi.nix
      ./disko.nix
    ]
    ++ lib.optional (builtins.pathExists ./hardware-configuration.nix) ./hardware-configuration.nix;

  config = lib.mkMerge [
    {
      nixpkgs.hostPlatform = "aarch64-linux";
    }
    (lib.optionalAttrs (builtins.pathExists ./facter.json) {
      hardware.facter.reportPath = ./facter.json;
    })
  ];
}
