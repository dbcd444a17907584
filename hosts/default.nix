# One concrete NixOS configuration per host class, installable with nixos-anywhere (disk layout from disko) and the
# source of the images in nix/images.nix, and one per member of the example fleet, `fleet-<name>`
# (hosts/fleet/house.nix). The flake calls this with its inputs and its own hearth module (which sets the flake's
# source revision, so each host's hearthd is the flake's `packages.<system>.hearthd`):
#   nixosConfigurations = import ./hosts { inherit inputs; hearthModule = self.nixosModules.default; };
{
  inputs,
  hearthModule,
  ...
}: let
  inherit (inputs.nixpkgs) lib;

  # What every installed host needs and the profiles leave to the site: remote administration by key only.
  # Put public keys (one per line) in hosts/authorized_keys and `git add` it; without it only the console logs in.
  access = {
    _file = ./default.nix;
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
  release = {
    _file = ./default.nix;
    system.stateVersion = "26.05";
  };

  # How `nix flake check` treats a host (nix/checks.nix): build its system, or only evaluate it.
  flakeCheck = {
    _file = ./default.nix;
    options.hearth.flakeCheck.build = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = ''
        Whether `nix flake check` builds this host's system (`nixos-<name>`) or only evaluates it
        (`eval-nixos-<name>`): a host whose closure is not in the public binary cache and takes hours to
        compile is evaluated there and built on purpose, with `nix build .#nixosConfigurations.<name>.config.system.build.toplevel`.
      '';
    };
  };

  host = class: extraModules:
    lib.nixosSystem {
      modules =
        [
          inputs.disko.nixosModules.disko
          hearthModule
          access
          release
          flakeCheck
          ./${class}
        ]
        ++ extraModules;
    };

  # The example fleet (hosts/fleet/house.nix): `fleet-<member>`, each member built from its host class and the
  # house's one description, with its own name.
  house = import ./fleet/house.nix;
  member = name: class:
    host class [
      {
        _file = ./fleet/house.nix;
        services.hearth.fleet =
          house.fleet
          // {
            enable = true;
            inherit name;
          };
      }
    ];
in
  lib.genAttrs ["appliance" "pi" "workstation"] (class: host class [])
  // lib.mapAttrs' (name: class: lib.nameValuePair "fleet-${name}" (member name class)) house.classes
