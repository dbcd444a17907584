# shim-of: nixos/modules/services/hardware/nvidia-container-toolkit/default.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
{
  config,
  lib,
  ...
}: let
  cfg = config.hardware.nvidia-container-toolkit;
in {
  options.hardware.nvidia-container-toolkit = {
    enable = lib.mkOption {
      type = lib.types.bool;
      default = false;
    };
    suppressNvidiaDriverAssertion = lib.mkOption {
      type = lib.types.bool;
      default = false;
    };
  };
  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion =
          config.hardware.nvidia.datacenter.enable
          || lib.elem "nvidia" config.services.xserver.videoDrivers
          || cfg.suppressNvidiaDriverAssertion;
        message = ''`nvidia-container-toolkit` requires nvidia drivers: set `hardware.nvidia.datacenter.enable`, add "nvidia" to `services.xserver.videoDrivers`, or set `hardware.nvidia-container-toolkit.suppressNvidiaDriverAssertion` if the driver is provided by another NixOS module (e.g. from NixOS-WSL)'';
      }
    ];
    hardware.graphics.enable = lib.mkIf (!config.hardware.nvidia.datacenter.enable) true;
  };
}
