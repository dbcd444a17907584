# shim-of: nixos/modules/config/users-groups.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# The user and group options hearth and the shimmed modules set, and the assertions that check them: a primary
# group that exists, exactly one of isSystemUser/isNormalUser, a group set at all.
{
  config,
  lib,
  ...
}: let
  inherit (lib) mkOption types;

  userOpts = {name, ...}: {
    options = {
      name = mkOption {
        type = types.passwdEntry types.str;
        apply = x: assert (builtins.stringLength x < 32 || abort "Username '${x}' is longer than 31 characters which is not allowed!"); x;
      };
      description = mkOption {
        type = types.passwdEntry types.str;
        default = "";
      };
      uid = mkOption {
        type = with types; nullOr int;
        default = null;
      };
      isSystemUser = mkOption {
        type = types.bool;
        default = false;
      };
      isNormalUser = mkOption {
        type = types.bool;
        default = false;
      };
      group = mkOption {
        type = types.str;
        default = "";
        apply = x: assert (builtins.stringLength x < 32 || abort "Group name '${x}' is longer than 31 characters which is not allowed!"); x;
      };
      home = mkOption {
        type = types.passwdEntry types.path;
        default = "/var/empty";
      };
      useDefaultShell = mkOption {
        type = types.bool;
        default = false;
      };
    };
    config.name = lib.mkDefault name;
  };

  groupOpts = {name, ...}: {
    options = {
      name = mkOption {type = types.passwdEntry types.str;};
      gid = mkOption {
        type = with types; nullOr int;
        default = null;
      };
      members = mkOption {
        type = types.listOf (types.passwdEntry types.str);
        default = [];
      };
    };
    config.name = lib.mkDefault name;
  };

  users = lib.filter (user: user != null) (lib.attrValues config.users.users);
  unique = ids: let
    given = lib.filter (id: id != null) ids;
  in
    lib.length given == lib.length (lib.unique given);
  isEffectivelySystemUser = user: user.isSystemUser || (user.uid != null && user.uid < 1000 && !user.isNormalUser);
  withoutGroup = lib.filter (user: user.group != "" && !(config.users.groups ? ${user.group})) users;
in {
  options.users = {
    users = mkOption {
      type = types.attrsOf (types.submodule userOpts);
      default = {};
    };
    groups = mkOption {
      type = types.attrsOf (types.submodule groupOpts);
      default = {};
    };
  };

  config = {
    users.users = {
      root = {
        uid = 0;
        group = "root";
        home = "/root";
      };
      nobody = {
        uid = 65534;
        isSystemUser = true;
        group = "nogroup";
      };
    };
    # config.ids.gids (nixos/modules/misc/ids.nix) of the groups users-groups.nix always defines that hearth's
    # configurations can meet.
    users.groups = {
      root.gid = 0;
      wheel.gid = 1;
      users.gid = 100;
      nogroup.gid = 65534;
    };

    assertions =
      [
        {
          assertion =
            unique (map (user: user.uid) users)
            && unique (map (group: group.gid) (lib.attrValues config.users.groups));
          message = "UIDs and GIDs must be unique!";
        }
        {
          assertion = withoutGroup == [];
          message = ''
            The following users have a primary group that is undefined: ${lib.concatMapStringsSep " " (user: user.name) withoutGroup}
            Hint: Add this to your NixOS configuration:
              ${lib.concatStringsSep "\n  " (map (user: "users.groups.${user.group} = {};") withoutGroup)}
          '';
        }
      ]
      ++ lib.concatMap (user: [
        {
          assertion = lib.xor (isEffectivelySystemUser user) user.isNormalUser;
          message = "Exactly one of users.users.${user.name}.isSystemUser and users.users.${user.name}.isNormalUser must be set.";
        }
        {
          assertion = user.group != "";
          message = ''
            users.users.${user.name}.group is unset. This used to default to
            nogroup, but this is unsafe. For example you can create a group
            for this user with:
            users.users.${user.name}.group = "${user.name}";
            users.groups.${user.name} = {};
          '';
        }
      ])
      users;
  };
}
