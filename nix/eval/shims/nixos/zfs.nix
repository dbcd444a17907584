# shim-of: nixos/modules/tasks/filesystems/zfs.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
{
  lib,
  pkgs,
  ...
}: {
  options.boot.zfs.package = lib.mkOption {
    type = lib.types.package;
    default = pkgs.zfs;
  };
}
