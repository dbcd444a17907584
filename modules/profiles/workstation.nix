# The NVIDIA workstation class (x86_64): the open NVIDIA kernel module, onnxruntime built with CUDA, hearthd on the
# CUDA execution provider (when the GPU or the provider is missing it does not embed at all and /readyz says why,
# rather than quietly falling back to the CPU), a LAN listener behind the first-boot token, and an optional GPU container for a reasoning
# engine that hearth appliances on the LAN can use.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.hearth.workstation;
  engine = cfg.reasoningEngine;

  # Unfree packages this class needs, by name: the driver and the CUDA/cuDNN libraries onnxruntime links.
  # Anything else unfree still fails evaluation. By prefix rather than an exact list: which redistributables a
  # CUDA build pulls in changes between cudaPackages versions (libnvvm, libnvptxcompiler, libcusolver, ...), and
  # a name missing here fails the whole evaluation.
  unfreePrefixes = ["nvidia-" "cuda_" "cuda-" "cudnn" "libcu" "libnv" "libnpp"];
  isAllowedUnfree = pkg: let
    name = lib.getName pkg;
  in
    lib.any (prefix: lib.hasPrefix prefix name) unfreePrefixes;

  # The devices CUDA opens. A second GPU adds /dev/nvidia1.
  nvidiaDevices = ["/dev/nvidiactl" "/dev/nvidia0" "/dev/nvidia-uvm" "/dev/nvidia-uvm-tools"];
in {
  imports = [../default.nix];

  options.hearth.workstation = {
    cuda.enable =
      lib.mkEnableOption "embedding on the NVIDIA GPU (onnxruntime's CUDA execution provider)"
      // {
        default = true;
      };

    reasoningEngine = {
      enable = lib.mkEnableOption "an OpenAI-compatible reasoning engine in a GPU container (podman + CDI)";
      image = lib.mkOption {
        type = lib.types.str;
        example = "docker.io/vllm/vllm-openai:v0.11.0";
        description = "Container image of the engine, pinned by tag or digest.";
      };
      port = lib.mkOption {
        type = lib.types.port;
        default = 8000;
        description = "Port the engine listens on, inside the container and on the host.";
      };
      address = lib.mkOption {
        type = lib.types.str;
        default = "127.0.0.1";
        example = "0.0.0.0";
        description = "Host address the port is published on; `0.0.0.0` serves the LAN (see `openFirewall`).";
      };
      openFirewall = lib.mkEnableOption "the engine's port in the firewall";
      extraOptions = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [];
        example = ["--shm-size=8g"];
        description = "Further `podman run` options.";
      };
      cmd = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [];
        example = ["--model" "Qwen/Qwen2.5-7B-Instruct"];
        description = "Arguments passed to the engine.";
      };
    };
  };

  config = lib.mkMerge [
    {
      hearth.substrate.enable = true;

      nixpkgs.config.allowUnfreePredicate = isAllowedUnfree;

      # Headless: listing the driver here enables it without starting an X server.
      services.xserver.videoDrivers = ["nvidia"];
      hardware.nvidia = {
        # Current drivers require an explicit choice; the open module supports Turing (RTX 20xx) and newer.
        open = true;
        modesetting.enable = lib.mkDefault true;
      };
      hardware.graphics.enable = true;

      services.hearth = {
        enable = true;
        model = lib.mkDefault "nomic-embed-text-v1.5";
        listen = lib.mkDefault "0.0.0.0:8080";
        openFirewall = lib.mkDefault true;
        settings = {
          embedding.max_batch_tokens = lib.mkDefault 16384;
          ingest.workers = lib.mkDefault 4;
        };
      };
    }

    (lib.mkIf cfg.cuda.enable {
      services.hearth = {
        onnxruntimePackage = lib.mkDefault (pkgs.onnxruntime.override {cudaSupport = true;});
        settings.embedding.execution_provider = "cuda";
      };

      # The service's sandbox hides /dev and /proc/driver and forbids W+X memory; CUDA needs all three
      # (device nodes, the driver's /proc files, and the JIT for kernels not compiled for this GPU).
      systemd.services.hearthd = {
        environment.LD_LIBRARY_PATH = "${pkgs.addDriverRunpath.driverLink}/lib";
        serviceConfig = {
          PrivateDevices = lib.mkForce false;
          DeviceAllow = map (device: "${device} rw") nvidiaDevices;
          ProcSubset = lib.mkForce "all";
          MemoryDenyWriteExecute = lib.mkForce false;
        };
      };
    })

    (lib.mkIf engine.enable {
      hardware.nvidia-container-toolkit.enable = true;
      virtualisation.podman.enable = true;
      virtualisation.oci-containers = {
        backend = "podman";
        containers.hearth-reasoning = {
          inherit (engine) image cmd;
          ports = ["${engine.address}:${toString engine.port}:${toString engine.port}"];
          extraOptions = ["--device=nvidia.com/gpu=all"] ++ engine.extraOptions;
        };
      };
      networking.firewall.allowedTCPPorts = lib.mkIf engine.openFirewall [engine.port];
    })
  ];
}
