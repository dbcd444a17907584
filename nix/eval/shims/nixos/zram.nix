# shim-of: nixos/modules/config/zram.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
{lib, ...}: {
  options.zramSwap = {
    enable = lib.mkOption {
      type = lib.types.bool;
      default = false;
    };
    algorithm = lib.mkOption {
      type = with lib.types; either (enum ["842" "lzo" "lzo-rle" "lz4" "lz4hc" "zstd"]) str;
      default = "zstd";
    };
    memoryPercent = lib.mkOption {
      type = lib.types.ints.positive;
      default = 50;
    };
  };
}
