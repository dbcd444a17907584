# shim-of: module.nix @ nix-community/disko@de5708739256238fb912c62f03988815db89ec9a
# shim-of: lib/types/disk.nix @ nix-community/disko@de5708739256238fb912c62f03988815db89ec9a
# shim-of: lib/types/gpt.nix @ nix-community/disko@de5708739256238fb912c62f03988815db89ec9a
# shim-of: lib/types/filesystem.nix @ nix-community/disko@de5708739256238fb912c62f03988815db89ec9a
# disko at the flake's pinned revision: disks with a GPT of partitions holding file systems (the content types
# hearth's layouts use), and, unless enableConfig is off, the fileSystems it derives from them (plain) with
# by-partlabel devices. disko's content types are tagged by `type`; any other tag fails here.
{
  config,
  lib,
  ...
}: let
  inherit (lib) mkOption types;
  cfg = config.disko;

  absolutePathname = lib.mkOptionType {
    name = "absolute pathname";
    check = x: lib.isString x && builtins.substring 0 1 x == "/";
    merge = lib.mergeOneOption;
  };
  hooks = lib.genAttrs ["preCreateHook" "postCreateHook" "preMountHook" "postMountHook" "preUnmountHook" "postUnmountHook"] (_:
    mkOption {
      type = types.lines;
      default = "";
    });

  filesystem = device: {
    options =
      hooks
      // {
        type = mkOption {type = types.enum ["filesystem"];};
        device = mkOption {
          type = types.str;
          default = device;
        };
        format = mkOption {type = types.str;};
        mountpoint = mkOption {
          type = types.nullOr absolutePathname;
          default = null;
        };
        mountOptions = mkOption {
          type = types.listOf types.str;
          default = ["defaults"];
        };
        extraArgs = mkOption {
          type = types.listOf types.str;
          default = [];
        };
      };
  };

  partition = disk: {
    name,
    config,
    ...
  }: {
    options = {
      type = mkOption {
        type = types.either (types.strMatching "[A-Fa-f0-9]{4}") (types.strMatching "[A-Fa-f0-9]{8}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{12}");
        default = "8300";
      };
      size = mkOption {
        type = types.either (types.enum ["100%"]) (types.strMatching "[0-9]+[KMGTP]?");
        default = "0";
      };
      attributes = mkOption {
        type = types.listOf types.int;
        default = [];
      };
      label = mkOption {
        type = types.str;
        default = "disk-${disk}-${name}";
      };
      device = mkOption {
        type = types.str;
        default = "/dev/disk/by-partlabel/${config.label}";
      };
      content = mkOption {
        type = types.nullOr (types.submodule (filesystem config.device));
        default = null;
      };
    };
  };

  gpt = disk: {
    options = {
      type = mkOption {type = types.enum ["gpt"];};
      partitions = mkOption {
        type = types.attrsOf (types.submodule (partition disk));
        default = {};
      };
    };
  };

  diskType = {name, ...}: {
    options = {
      type = mkOption {
        type = types.enum ["disk"];
        default = "disk";
      };
      device = mkOption {type = absolutePathname;};
      content = mkOption {
        type = types.nullOr (types.submodule (gpt name));
        default = null;
      };
    };
  };

  fileSystemsOf = disk:
    lib.concatMap (part:
      lib.optional (part.content != null && part.content.mountpoint != null) {
        ${part.content.mountpoint} = {
          inherit (part.content) device;
          fsType = part.content.format;
          options = part.content.mountOptions;
        };
      }) (lib.attrValues (disk.content.partitions or {}));
in {
  options.disko = {
    devices.disk = mkOption {
      type = types.attrsOf (types.submodule diskType);
      default = {};
    };
    rootMountPoint = mkOption {
      type = types.str;
      default = "/mnt";
    };
    enableConfig = mkOption {
      type = types.bool;
      default = true;
    };
  };
  config.fileSystems = lib.mkIf cfg.enableConfig (lib.mkMerge (lib.concatMap fileSystemsOf (lib.attrValues cfg.devices.disk)));
}
