# The flake's outputs; flake.nix only declares inputs and calls this.
inputs: let
  inherit (inputs) self nixpkgs;
  inherit (nixpkgs) lib;

  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];
  forAllSystems = f:
    lib.genAttrs systems (system:
      f {
        inherit system;
        pkgs = nixpkgs.legacyPackages.${system};
      });

  revision = self.rev or self.dirtyRev or "unknown";
  hearthFor = pkgs: import ./packages.nix {inherit pkgs revision;};

  # The flake's modules build hearth from the flake's own source revision, so a host's hearthd is the same
  # derivation as `packages.<system>.hearthd` (built once, and reporting its revision in /v1/capabilities).
  withRevision = modules: {
    _file = ./outputs.nix;
    imports = modules;
    services.hearth.revision = lib.mkDefault revision;
  };
  imagesFor = system: import ./images.nix {inherit self system lib;};
in {
  packages = forAllSystems ({
    system,
    pkgs,
  }: let
    hearth = hearthFor pkgs;
  in
    {
      inherit (hearth) hearthd hearth hearth-firstboot;
      default = pkgs.symlinkJoin {
        name = "hearth-${hearth.workspaceBuild.version}";
        paths = [
          hearth.hearthd
          hearth.hearth
          hearth.hearth-firstboot
        ];
        meta = hearth.hearthd.meta // {mainProgram = "hearth";};
      };
      model-nomic-embed-text-v1_5 = hearth.models.nomic-embed-text-v1_5;
      model-nomic-embed-text-v1_5-quantized = hearth.models.nomic-embed-text-v1_5-quantized;
      model-all-minilm-l6-v2-int8 = hearth.models.all-minilm-l6-v2-int8;
    }
    // imagesFor system);

  nixosModules = {
    default = withRevision [../modules/default.nix];
    hearth = withRevision [../modules/hearth.nix];
    # The others extend services.hearth, so each brings the hearth module with it (imports of the same file
    # are deduplicated by the module system). Garage runs on secrets first boot mints, so it brings first boot
    # too (`services.hearth.firstboot.enable = false` when the site provides them).
    postgres = withRevision [../modules/hearth.nix ../modules/postgres.nix];
    garage = withRevision [../modules/hearth.nix ../modules/garage.nix ../modules/firstboot.nix];
    firstboot = withRevision [../modules/hearth.nix ../modules/firstboot.nix];
    # A fleet member runs Garage as one node of the fleet's cluster.
    fleet = withRevision [../modules/hearth.nix ../modules/garage.nix ../modules/firstboot.nix ../modules/fleet.nix];
    substrate = ../modules/substrate.nix;
  };

  nixosConfigurations = import ../hosts {
    inherit inputs;
    hearthModule = self.nixosModules.default;
  };

  checks = forAllSystems ({
    system,
    pkgs,
  }:
    import ./checks.nix {
      inherit self system pkgs;
      hearth = hearthFor pkgs;
      images = imagesFor system;
    });

  devShells = forAllSystems ({pkgs, ...}: {
    default = import ./devshell.nix {
      inherit pkgs;
      hearth = hearthFor pkgs;
    };
  });

  formatter = forAllSystems ({pkgs, ...}: pkgs.alejandra);

  apps = forAllSystems ({pkgs, ...}: {
    demo = import ./demo.nix {
      inherit pkgs;
      hearth = hearthFor pkgs;
    };
  });
}
