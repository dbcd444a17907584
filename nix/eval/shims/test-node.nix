# shim-of: nixos/modules/virtualisation/qemu-vm.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# shim-of: nixos/modules/testing/test-instrumentation.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# shim-of: nixos/modules/misc/nixpkgs/read-only.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# shim-of: nixos/lib/testing/nodes.nix @ recent copy found by content (containers era; the index names no repository)
# shim-of: nixos/lib/testing/nixos-test-base.nix @ NixOS/nixpkgs@1e156f9e0481e1ede7e00b82171c336a14381228
# shim-of: nixos/lib/testing/network.nix @ JohnRTitor/nixpkgs@3c0b0d795be8fa009d9c4decb828733ebafdd7ec
# What pkgs.testers.runNixOSTest adds to every node: the VM's own file systems, swap and boot device at
# mkVMOverride (10), the guest agent, test instrumentation, the node name as host name (mkDefault), and a
# read-only package set: a node that sets nixpkgs.hostPlatform or nixpkgs.config fails, as it does in nixpkgs.
{
  config,
  lib,
  ...
}: let
  inherit (lib) mkOption types;
  cfg = config.nixpkgs;
in {
  disabledModules = [./nixos/nixpkgs.nix];

  imports = [./images/disk-size-option.nix];

  options = {
    nixpkgs = {
      config = mkOption {
        internal = true;
        type = types.unique {message = "nixpkgs.config is set to read-only";} types.anything;
      };
      hostPlatform = mkOption {
        internal = true;
        readOnly = true;
      };
      pkgs = mkOption {type = types.pkgs;};
    };
    virtualisation = {
      memorySize = mkOption {
        type = types.ints.positive;
        default = 1024;
      };
      cores = mkOption {
        type = types.ints.positive;
        default = 1;
      };
    };
    system.switch.enable = mkOption {
      type = types.bool;
      default = true;
    };
  };

  config = {
    _module.args.pkgs = builtins.seq cfg.config (builtins.seq cfg.hostPlatform cfg.pkgs);
    nixpkgs.config = cfg.pkgs.config;
    nixpkgs.hostPlatform = cfg.pkgs.stdenv.hostPlatform;

    # qemu-vm.nix
    boot.loader.grub.device = lib.mkVMOverride "/dev/disk/by-id/virtio-root";
    fileSystems = lib.mkVMOverride {
      "/" = {
        device = "/dev/disk/by-label/nixos";
        fsType = "ext4";
      };
    };
    swapDevices = lib.mkVMOverride [];
    services.qemuGuest.enable = true;
    virtualisation.diskSizeAutoSupported = false;

    # test-instrumentation.nix
    boot.consoleLogLevel = 7;
    services.journald.extraConfig = ''
      ForwardToConsole=yes
      TTYPath=/dev/ttyS0
      MaxLevelConsole=debug
    '';
    system.stateVersion = lib.mkOverride 1200 lib.trivial.release;

    # nixos-test-base.nix
    system.nixos.label = lib.mkForce "test";
    system.nixos.versionSuffix = lib.mkForce "test";
    system.switch.enable = lib.mkDefault (config.isSpecialisation || config.specialisation != {});
  };
}
