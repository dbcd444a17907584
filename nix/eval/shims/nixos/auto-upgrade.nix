# shim-of: nixos/modules/tasks/auto-upgrade.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
{
  config,
  lib,
  ...
}: let
  inherit (lib) mkOption types;
  cfg = config.system.autoUpgrade;
  option = type: default: mkOption {inherit type default;};
in {
  options.system.autoUpgrade = {
    enable = option types.bool false;
    flake = option (types.nullOr types.str) null;
    channel = option (types.nullOr types.str) null;
    dates = option types.str "04:40";
    allowReboot = option types.bool false;
    randomizedDelaySec = option types.str "0";
    persistent = option types.bool true;
    upgrade = option types.bool true;
    flags = option (types.listOf types.str) [];
  };
  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = !((cfg.channel != null) && (cfg.flake != null));
        message = "The options 'system.autoUpgrade.channel' and 'system.autoUpgrade.flake' cannot both be set.";
      }
    ];
    system.autoUpgrade.flags =
      if cfg.flake == null
      then ["--no-build-output"]
      else ["--refresh" "--flake ${cfg.flake}"];
    systemd.services.nixos-upgrade = {
      description = "NixOS Upgrade";
      restartIfChanged = false;
      after = ["network-online.target"];
      wants = ["network-online.target"];
      serviceConfig.Type = "oneshot";
    };
  };
}
