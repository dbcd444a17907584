# The OS underneath hearth ("OS and base image" invariants): no plaintext swap, IOMMU on x86, a persistent and
# bounded journal, the firewall on. The other invariants live with the units they concern: data directories
# are never world-readable (hearthd's StateDirectory 0700 under a 0711 /var/lib/hearth, secrets 0700, Garage's
# DynamicUser state under /var/lib/private, PostgreSQL's 0750 data directory) and every hearth service restarts
# on failure with a start limit. Host classes (modules/profiles) add what differs between machines.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.hearth.substrate;
in {
  options.hearth.substrate = {
    enable = lib.mkEnableOption "hearth's OS substrate (swap, IOMMU, journal, firewall invariants)";
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = lib.all (swap: swap.randomEncryption.enable) config.swapDevices;
        message = ''
          hearth.substrate: disk swap must be encrypted with a random key (swapDevices.*.randomEncryption.enable),
          or memory with documents and keys could reach the disk in plain text. Offenders:
          ${lib.concatMapStringsSep ", " (swap: swap.device) (lib.filter (swap: !swap.randomEncryption.enable) config.swapDevices)}
        '';
      }
      {
        assertion = config.networking.firewall.enable;
        message = "hearth.substrate: the firewall must stay on (networking.firewall.enable).";
      }
    ];

    # Swap in compressed memory; never on a plain disk.
    zramSwap = {
      enable = lib.mkDefault true;
      algorithm = lib.mkDefault "zstd";
      memoryPercent = lib.mkDefault 50;
    };

    # DMA from devices only through the IOMMU, strict invalidation, none before the kernel takes over.
    boot.kernelParams = lib.optionals pkgs.stdenv.hostPlatform.isx86_64 [
      "intel_iommu=on"
      "iommu.passthrough=0"
      "iommu.strict=1"
      "efi=disable_early_pci_dma"
    ];

    services.journald = {
      storage = lib.mkDefault "persistent";
      # Bounded, so a log storm cannot fill a small SD card. A plain definition (extraConfig is `lines`), so that
      # it is merged with other modules' journald settings instead of being dropped by the first one (a mkDefault
      # here loses to any plain definition, e.g. the test driver's console forwarding).
      extraConfig = ''
        SystemMaxUse=512M
      '';
    };

    networking.firewall.enable = lib.mkDefault true;
  };
}
