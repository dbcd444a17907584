# shim-of: nixos/modules/system/boot/loader/grub/grub.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# GRUB is on unless something turns it off (systemd-boot does, with mkDefault), and an enabled GRUB without a
# device fails the build with nixpkgs' assertion: the usual way an image or host ends up unbootable.
{
  config,
  lib,
  ...
}: let
  inherit (lib) mkOption types;
  grub = config.boot.loader.grub;
in {
  options.boot.loader.grub = {
    enable = mkOption {
      type = types.bool;
      default = !config.boot.isContainer;
    };
    device = mkOption {
      type = types.str;
      default = "";
    };
    devices = mkOption {
      type = types.listOf types.str;
      default = [];
    };
    mirroredBoots = mkOption {
      type = types.listOf (types.submodule {
        options = {
          devices = mkOption {
            type = types.listOf types.str;
            default = [];
          };
          path = mkOption {type = types.str;};
        };
      });
      default = [];
    };
  };

  config = lib.mkIf grub.enable {
    system.build.installBootLoader = "install-grub.sh";
    boot.loader.grub.devices = lib.mkIf (grub.device != "") [grub.device];
    boot.loader.grub.mirroredBoots = lib.mkIf (grub.devices != []) [
      {
        inherit (grub) devices;
        path = "/boot";
      }
    ];
    assertions = [
      {
        assertion = grub.mirroredBoots != [];
        message =
          "You must set the option ‘boot.loader.grub.devices’ or "
          + "'boot.loader.grub.mirroredBoots' to make the system bootable.";
      }
    ];
  };
}
