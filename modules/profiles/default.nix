# Host classes as NixOS modules, one file per class (srvos style): each sets only what differs between an
# x86_64 appliance (VM or mini-PC), a Raspberry Pi and an NVIDIA workstation. Everything they share lives in the
# hearth modules they import (service, postgres, garage, first boot, substrate).
# An index only: the flake does not export it, and hosts/<class>/default.nix imports the files directly.
{
  appliance = ./appliance.nix;
  pi = ./pi.nix;
  workstation = ./workstation.nix;
}
