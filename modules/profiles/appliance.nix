# The x86_64 appliance: a VM (qcow2 or OVA) or a mini-PC installed with nixos-anywhere. "Flash, boot, use":
# DHCP, found as hearth.local, the root file system grows to the disk it was given, hearth listens on the LAN
# (the first-boot API token is required there), and the model follows the memory the box is sized for.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.hearth.appliance;
  hearth = config.services.hearth;
  # nomic fp32 needs ~0.6 GB per loaded session (two with the query lane); below 8 GiB the quantized model
  # leaves room for PostgreSQL's cache and Garage.
  roomy = cfg.memoryMiB >= 8192;
in {
  imports = [
    ../default.nix
    ./lan-name.nix
  ];

  options.hearth.appliance = {
    memoryMiB = lib.mkOption {
      type = lib.types.ints.positive;
      default = 4096;
      example = 16384;
      description = ''
        Memory the appliance is sized for, in MiB. Chooses the embedding model (fp32 nomic from 8 GiB, the
        quantized one below) and the memory of the VirtualBox appliance (OVA).
      '';
    };

    autoUpgrade = {
      enable = lib.mkEnableOption ''
        unattended, health-gated upgrades from a flake: `hearth upgrade` builds, switches, waits for hearthd to be
        ready and switches back by itself (restoring the database from the dump taken before a migration) when
        it is not'';
      flake = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "github:example/hearth-site#appliance";
        description = ''
          Flake reference of this machine's configuration, for example your fork of hearth with the lock file
          you want to follow. Required when `autoUpgrade.enable` is set.
        '';
      };
      dates = lib.mkOption {
        type = lib.types.str;
        default = "04:00";
        description = "When to upgrade (systemd calendar expression).";
      };
      allowReboot = lib.mkOption {
        type = lib.types.bool;
        default = false;
        description = "Reboot when the kernel, initrd or kernel modules changed.";
      };
    };
  };

  config = lib.mkMerge [
    {
      hearth.substrate.enable = true;

      services.hearth = {
        enable = true;
        model = lib.mkDefault (
          if roomy
          then "nomic-embed-text-v1.5"
          else "nomic-embed-text-v1.5-quantized"
        );
        listen = lib.mkDefault "0.0.0.0:8080";
        openFirewall = lib.mkDefault true;
      };

      # The guest agent only starts when the hypervisor offers its virtio port, so it costs nothing on metal.
      services.qemuGuest.enable = true;

      # A bigger virtual disk (or a bigger SSD image) becomes a bigger root file system on the next boot.
      boot.growPartition = lib.mkDefault true;
      fileSystems."/".autoResize = lib.mkDefault true;

      # Image variants built from this configuration (`system.build.images.<variant>`, see nix/images.nix).
      # disko describes the installed disk; an image brings its own partitions, so disko stays out of it.
      image.modules = {
        qemu-efi = {
          disko.enableConfig = false;
          virtualisation.diskSize = lib.mkDefault (32 * 1024);
          image.baseName = "hearth-appliance-${config.system.nixos.label}";
        };
        virtualbox = {
          disko.enableConfig = false;
          virtualisation.diskSize = lib.mkDefault (32 * 1024);
          image.baseName = "hearth-appliance-${config.system.nixos.label}";
          virtualbox = {
            vmName = "hearth";
            memorySize = cfg.memoryMiB;
          };
          # VirtualBox boots the OVA with BIOS: GRUB on the legacy partition table the builder makes.
          boot.loader.systemd-boot.enable = lib.mkForce false;
          boot.loader.efi.canTouchEfiVariables = lib.mkForce false;
          boot.loader.grub.enable = lib.mkForce true;
          # The builder adds a plaintext swap file; the substrate's zram replaces it.
          swapDevices = lib.mkForce [];
        };
      };
    }

    (lib.mkIf cfg.autoUpgrade.enable {
      assertions = [
        {
          assertion = cfg.autoUpgrade.flake != null;
          message = "hearth.appliance.autoUpgrade.enable needs hearth.appliance.autoUpgrade.flake.";
        }
      ];
      # Not system.autoUpgrade (nixos-rebuild switch): nothing there goes back when the new hearthd does not
      # come up. `hearth upgrade` does, and records each step for /v1/capabilities.
      systemd.services.hearth-upgrade = {
        description = "hearth: health-gated upgrade from ${toString cfg.autoUpgrade.flake}";
        # The unit is replaced by the switch it runs: it must not be stopped or restarted in the middle.
        restartIfChanged = false;
        unitConfig.X-StopOnRemoval = false;
        after = ["network-online.target"];
        wants = ["network-online.target"];
        path = [
          # nix for `nix build` and nix-env (the system's own nix, unless nix.package was changed).
          pkgs.nix
          config.systemd.package
          pkgs.util-linux
          pkgs.gitMinimal
        ];
        environment.HEARTH_HEARTHD = lib.getExe hearth.package;
        serviceConfig.Type = "oneshot";
        script =
          ''
            ${lib.getExe hearth.cliPackage} upgrade --flake ${lib.escapeShellArg (toString cfg.autoUpgrade.flake)} \
              --restore-as hearth --ready-timeout 900
          ''
          + lib.optionalString cfg.autoUpgrade.allowReboot ''
            booted="$(readlink /run/booted-system/{initrd,kernel,kernel-modules})"
            built="$(readlink /nix/var/nix/profiles/system/{initrd,kernel,kernel-modules})"
            if [ "$booted" != "$built" ]; then
              echo "hearth upgrade: the kernel changed; rebooting into it"
              systemctl reboot
            fi
          '';
      };
      systemd.timers.hearth-upgrade = {
        wantedBy = ["timers.target"];
        timerConfig = {
          OnCalendar = cfg.autoUpgrade.dates;
          RandomizedDelaySec = "45min";
          Persistent = true;
        };
      };
    })
  ];
}
