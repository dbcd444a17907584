# shim-of: nixos/modules/system/boot/systemd/journald.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
{lib, ...}: {
  options.services.journald = {
    storage = lib.mkOption {
      type = lib.types.enum ["persistent" "volatile" "auto" "none"];
      default = "persistent";
    };
    extraConfig = lib.mkOption {
      type = lib.types.lines;
      default = "";
    };
  };
}
