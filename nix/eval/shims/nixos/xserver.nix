# shim-of: nixos/modules/services/x11/xserver.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# Listing "nvidia" in videoDrivers is what enables the NVIDIA module; the X server itself stays off.
{lib, ...}: {
  options.services.xserver = {
    enable = lib.mkOption {
      type = lib.types.bool;
      default = false;
    };
    videoDrivers = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = ["modesetting" "fbdev"];
    };
  };
}
