# shim-of: nixos/modules/system/boot/stage-1.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# shim-of: nixos/modules/system/boot/systemd/initrd.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# Both files assert a root file system (with the same words); the systemd initrd is the default.
{
  config,
  lib,
  ...
}: {
  options.boot = {
    consoleLogLevel = lib.mkOption {
      type = lib.types.int;
      default = 4;
    };
    initrd = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = !config.boot.isContainer;
      };
      systemd.enable = lib.mkEnableOption "systemd in initrd" // {default = true;};
    };
  };
  config.assertions = lib.optional config.boot.initrd.enable {
    assertion = lib.any (fs: fs.mountPoint == "/") (lib.attrValues config.fileSystems);
    message = "The ‘fileSystems’ option does not specify your root file system.";
  };
}
