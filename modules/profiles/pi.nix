# The Raspberry Pi class (aarch64, Pi 4 / Pi 400 / CM4 with 4 GB): mainline kernel, U-Boot + extlinux, an SD image
# that grows to the card on first boot, the quantized model, and memory budgets that fit PostgreSQL, Garage and
# hearthd into 4 GB with zram behind them.
#
# Kernel: nixpkgs' mainline LTS (`pkgs.linuxPackages`), not the Raspberry Pi vendor kernel. Hydra builds and caches
# the mainline aarch64 kernel, so nothing is compiled, while the vendor kernel (nixos-hardware's default for the
# Pi 4) is built locally, which takes hours under binfmt emulation on an x86_64 host. nixos-hardware is therefore
# not imported: the handful of settings the board needs are below.
{
  config,
  lib,
  pkgs,
  ...
}: {
  imports = [
    ../default.nix
    ./lan-name.nix
  ];

  config = lib.mkMerge [
    {
      hearth.substrate.enable = true;

      boot.kernelPackages = lib.mkDefault pkgs.linuxPackages;
      boot.loader.grub.enable = false;
      boot.loader.generic-extlinux-compatible.enable = true;
      boot.initrd.availableKernelModules = [
        "xhci_pci"
        "usbhid"
        "usb_storage"
        "uas"
        # The PCIe bridge and the reset controller that loads the VL805 USB 3 firmware: booting from a USB SSD.
        "pcie_brcmstb"
        "reset-raspberrypi"
      ];
      hardware.deviceTree.filter = lib.mkDefault "bcm2711-rpi-*.dtb";

      # Memory budget of a 4 GB board (MiB, resident, rough):
      #   kernel, systemd, journald, sshd, avahi      ~300
      #   PostgreSQL: shared_buffers 256 + backends    ~600 (20 connections x work_mem 8 at worst, plus index builds)
      #   Garage (when enabled)                        ~200, capped at 384 by its unit
      #   hearthd: quantized nomic, two sessions       ~700 (ingest + query lane, batches of 2048 tokens)
      #   page cache for the database and blobs        the rest (~2000)
      # zram (zstd, up to half of RAM) absorbs peaks without a plaintext swap on the SD card.
      zramSwap = {
        enable = true;
        algorithm = "zstd";
        memoryPercent = 50;
      };

      services.hearth = {
        enable = true;
        model = lib.mkDefault "nomic-embed-text-v1.5-quantized";
        listen = lib.mkDefault "0.0.0.0:8080";
        openFirewall = lib.mkDefault true;
        settings = {
          # Four Cortex-A72 cores: one intra-op pool for ingest, one thread for queries.
          embedding = {
            intra_threads = lib.mkDefault 4;
            query_lane_threads = lib.mkDefault 1;
            # The quantized model's weights stay int8 in memory instead of being expanded to float32 at load.
            keep_quantized_weights = lib.mkDefault true;
            # A batch's activations are the peak of hearthd's memory and grow with its tokens (attention with
            # their square); 2,048 tokens halve them against 4,096 at the same rate per token (docs/benchmarks.md,
            # memory).
            max_batch_tokens = lib.mkDefault 2048;
          };
          ingest.workers = lib.mkDefault 1;
        };
      };

      services.postgresql.settings = {
        shared_buffers = lib.mkDefault "256MB";
        effective_cache_size = lib.mkDefault "1536MB";
        work_mem = lib.mkDefault "8MB";
        # HNSW index builds use maintenance_work_mem; more than this competes with hearthd on 4 GB.
        maintenance_work_mem = lib.mkDefault "128MB";
        max_connections = lib.mkDefault 20;
        max_parallel_workers_per_gather = lib.mkDefault 1;
        max_parallel_maintenance_workers = lib.mkDefault 1;
        wal_buffers = lib.mkDefault "8MB";
      };

      # Garage's own buffers (config keys of Garage 2.x); its unit gets a hard ceiling below.
      services.garage.settings = {
        block_ram_buffer_max = lib.mkDefault "32MiB";
        block_max_concurrent_reads = lib.mkDefault 4;
      };

      image.modules.sd-card = {
        disko.enableConfig = false;
        image.baseName = "hearth-pi-${config.system.nixos.label}";
        sdImage = {
          compressImage = true;
          expandOnBoot = true;
        };
        # The SD image module turns on every initrd driver and all redistributable firmware so that one image
        # boots any board; this image is for one board family, and that list costs hundreds of MB.
        hardware.enableAllHardware = lib.mkForce false;
        boot.supportedFilesystems.zfs = lib.mkForce false;
      };
    }

    (lib.mkIf config.services.garage.enable {
      systemd.services.garage.serviceConfig = {
        MemoryHigh = "256M";
        MemoryMax = "384M";
      };
    })
  ];
}
