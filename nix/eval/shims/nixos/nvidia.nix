# shim-of: nixos/modules/hardware/video/nvidia.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# Enabled by "nvidia" in services.xserver.videoDrivers; `open` has no default from driver 560 on and must be
# chosen. The driver package (unfree) comes from the kernel's package set, and the assertions that depend on the
# choices hearth makes are here.
{
  config,
  lib,
  ...
}: let
  inherit (lib) mkOption types;
  cfg = config.hardware.nvidia;
  nvidiaEnabled = lib.elem "nvidia" config.services.xserver.videoDrivers;
  nvidia_x11 =
    if cfg.enabled
    then cfg.package
    else null;
  useOpenModules = cfg.open == true;
  # nixpkgs reads `nvidia_x11.version` in two defaults, which fail to evaluate while the driver is off. The gate
  # lists every option's definitions (forcing defaults), so here those defaults fall back to nixpkgs' value for a
  # driver >= 560 when there is none; nothing reads them on a machine without the driver.
  driverVersion =
    if nvidia_x11 == null
    then "560"
    else nvidia_x11.version;
in {
  options.hardware.nvidia = {
    enabled = mkOption {
      type = types.bool;
      readOnly = true;
      default = nvidiaEnabled || cfg.datacenter.enable;
    };
    datacenter.enable = lib.mkEnableOption "Data Center drivers for NVIDIA cards on a NVLink topology";
    package = mkOption {
      type = types.package;
      default = config.boot.kernelPackages.nvidiaPackages.stable;
    };
    open = mkOption {
      type = types.nullOr types.bool;
      default =
        if lib.versionOlder driverVersion "560"
        then false
        else null;
    };
    modesetting.enable = lib.mkEnableOption "kernel modesetting when using the NVIDIA proprietary driver" // {default = lib.versionAtLeast cfg.package.version "535";};
    gsp.enable = lib.mkEnableOption "the GPU System Processor (GSP) on the video card" // {default = useOpenModules || lib.versionAtLeast driverVersion "555";};
  };

  config = lib.mkIf cfg.enabled {
    assertions = [
      {
        assertion = !(nvidiaEnabled && cfg.datacenter.enable);
        message = "You cannot configure both X11 and Data Center drivers at the same time.";
      }
      {
        assertion = cfg.open != null || cfg.datacenter.enable;
        message = ''
          You must configure `hardware.nvidia.open` on NVIDIA driver versions >= 560.
          It is suggested to use the open source kernel modules on Turing or later GPUs (RTX series, GTX 16xx), and the closed source modules otherwise.
        '';
      }
      {
        assertion = !cfg.open || (nvidia_x11.open != null);
        message = ''
          The selected NVIDIA package does not provide open kernel modules.
          Set hardware.nvidia.open = false or choose a package branch with open module support.
        '';
      }
      {
        assertion = cfg.gsp.enable -> (cfg.package ? firmware);
        message = "This version of NVIDIA driver does not provide a GSP firmware.";
      }
      {
        assertion = useOpenModules -> cfg.gsp.enable;
        message = "The GSP cannot be disabled when using the opensource kernel driver.";
      }
    ];
    boot.kernelModules = lib.optionals useOpenModules ["nvidia_uvm"];
    environment.systemPackages = [nvidia_x11.bin];
    services.acpid.enable = lib.mkIf nvidiaEnabled true;
  };
}
