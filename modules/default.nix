# Every hearth module except the host-class profiles (modules/profiles, imported by hosts/). Enabling
# services.hearth also turns on the OS substrate unless a configuration says otherwise.
{
  config,
  lib,
  ...
}: {
  imports = [
    ./hearth.nix
    ./postgres.nix
    ./garage.nix
    ./firstboot.nix
    ./fleet.nix
    ./substrate.nix
  ];

  config.hearth.substrate.enable = lib.mkDefault config.services.hearth.enable;
}
