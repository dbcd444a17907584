# One concrete NixOS configuration per host class, installable with nixos-anywhere (disk layout from disko) and the
# source of the images in nix/images.nix. The flake calls this with its inputs:
#   nixosConfigurations = import ./hosts { inherit inputs self; };
{inputs, ...}: let
  inherit (inputs.nixpkgs) lib;

  # What every installed host needs and the profiles leave to the site: remote administration by key only.
  # Put public keys (one per line) in hosts/authorized_keys and `git add` it; without it only the console logs in.
  access = {
    services.openssh = {
      enable = true;
      settings = {
        PasswordAuthentication = false;
        KbdInteractiveAuthentication = false;
        PermitRootLogin = "prohibit-password";
      };
    };
    users.users.root.openssh.authorizedKeys.keyFiles =
      lib.optional (builtins.pathExists ./authorized_keys) ./authorized_keys;
  };

  # The release these configurations were first written for. It sets defaults that keep existing state readable
  # (database formats, paths), so an installed machine keeps it across upgrades: never bump it in place.
  release = {system.stateVersion = "26.05";};

  host = name:
    lib.nixosSystem {
      modules = [
        inputs.disko.nixosModules.disko
        access
        release
        ./${name}
      ];
    };
in
  lib.genAttrs ["appliance" "pi" "workstation"] host
