# shim-of: nixos/modules/tasks/filesystems.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# fileSystems keyed by mount point, the file system types a system supports (a list or booleans), and the
# assertion a file system fails when it cannot grow.
{
  config,
  lib,
  ...
}: let
  inherit (lib) mkOption types;
  attrNamesToTrue = types.coercedTo (types.listOf types.str) (enabledList: lib.genAttrs enabledList (_: true)) (types.attrsOf types.bool);
  nonEmptyStr = types.addCheck types.str (s: builtins.match "[ \t\n]*" s == null);
  nonEmptyWithoutTrailingSlash = types.addCheck nonEmptyStr (s: builtins.match ".+/" s == null);
  fileSystems = lib.attrValues config.fileSystems;
  resizable = ["ext3" "ext4" "btrfs" "xfs"];

  fileSystemOpts = {
    name,
    config,
    ...
  }: {
    options = {
      enable = lib.mkEnableOption "the filesystem mount" // {default = true;};
      mountPoint = mkOption {
        type = nonEmptyWithoutTrailingSlash;
        default = name;
      };
      device = mkOption {
        type = types.nullOr nonEmptyStr;
        default = null;
      };
      fsType = mkOption {type = nonEmptyStr;};
      options = mkOption {
        type = types.nonEmptyListOf nonEmptyStr;
        default = ["defaults"];
      };
      autoResize = mkOption {
        type = types.bool;
        default = false;
      };
      neededForBoot = mkOption {
        type = types.bool;
        default = false;
      };
      label = mkOption {
        type = types.nullOr nonEmptyStr;
        default = null;
      };
    };
    config = {
      device = lib.mkIf (config.label != null) (lib.mkDefault "/dev/disk/by-label/${config.label}");
      options = lib.mkIf config.autoResize ["x-systemd.growfs"];
    };
  };
in {
  options = {
    fileSystems = mkOption {
      type = types.attrsOf (types.submodule fileSystemOpts);
      default = {};
      apply = lib.filterAttrs (_: fs: fs.enable);
    };
    boot.supportedFilesystems = mkOption {
      type = attrNamesToTrue;
      default = {};
    };
  };

  config = {
    # What /etc/fstab is made of (makeFstabEntries): an entry without a device cannot be written.
    environment.etc.fstab.text = lib.concatMapStrings (fs:
      (
        if fs.device != null
        then fs.device
        else throw "No device specified for mount point ‘${fs.mountPoint}’."
      )
      + " ${fs.mountPoint} ${fs.fsType} ${lib.concatStringsSep "," fs.options}\n")
    fileSystems;
    boot.supportedFilesystems = map (fs: fs.fsType) fileSystems;
    assertions =
      map (fs: {
        assertion = fs.autoResize -> lib.elem fs.fsType resizable;
        message = "Mountpoint '${fs.mountPoint}': 'autoResize = true' is not supported for 'fsType = \"${fs.fsType}\"'${lib.optionalString (fs.fsType == "auto") " that you set"}";
      })
      fileSystems
      ++ map (fs: {
        assertion = fs.label != null -> fs.device == "/dev/disk/by-label/${fs.label}";
        message = ''
          The filesystem with mount point ${fs.mountPoint} has its label and device set to inconsistent values:
            label: ${toString fs.label}
            device: ${toString fs.device}
          'filesystems.<name>.label' and 'filesystems.<name>.device' are mutually exclusive. Please set only one.
        '';
      })
      fileSystems;
  };
}
