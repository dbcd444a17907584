# shim-of: nixos/modules/image/file-options.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
{
  config,
  lib,
  pkgs,
  ...
}: {
  options.image = {
    baseName = lib.mkOption {
      type = lib.types.str;
      default = "nixos-image-${config.system.nixos.label}-${pkgs.stdenv.hostPlatform.system}";
    };
    extension = lib.mkOption {type = lib.types.str;};
    fileName = lib.mkOption {
      type = lib.types.str;
      default = "${config.image.baseName}.${config.image.extension}";
    };
    filePath = lib.mkOption {
      type = lib.types.str;
      default = config.image.fileName;
    };
  };
}
