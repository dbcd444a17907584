# The NVIDIA workstation. Installed like the appliance:
#   nixos-anywhere --flake .#workstation \
#     --generate-hardware-config nixos-facter ./hosts/workstation/facter.json root@<ip>
# (or nixos-generate-config ./hosts/workstation/hardware-configuration.nix). A real workstation needs one of the
# two: the drivers below only cover the common disk controllers.
{lib, ...}: {
  imports =
    [
      ../../modules/profiles/workstation.nix
      ../x86_64-efi.nix
      ./disko.nix
    ]
    ++ lib.optional (builtins.pathExists ./hardware-configuration.nix) ./hardware-configuration.nix;

  config = lib.mkMerge [
    {
      networking.hostName = lib.mkDefault "hearth-gpu";
      networking.useDHCP = lib.mkDefault true;
      # onnxruntime with CUDA and the NVIDIA driver are unfree: the public binary cache has neither, and the
      # CUDA onnxruntime compiles for hours. `nix flake check` evaluates this host; build it on purpose.
      hearth.flakeCheck.build = false;
    }
    (lib.optionalAttrs (builtins.pathExists ./facter.json) {
      hardware.facter.reportPath = ./facter.json;
    })
  ];
}
