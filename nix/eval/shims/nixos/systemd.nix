# shim-of: nixos/modules/system/boot/systemd.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# shim-of: nixos/lib/systemd-unit-options.nix @ jonasc-ant/nixpkgs@b699b3608bd4facf984d9ba7f040608bedfa46b6
# shim-of: nixos/lib/systemd-lib.nix @ SuperSandro2000/nixpkgs@de102c66a9d68a0685e605151f75a1831ba18cf8
# shim-of: nixos/lib/systemd-types.nix @ NixOS/nixpkgs@2faec4eca3b0717c3e754e5858e006cd14d288c1
# `systemd.services` and `systemd.targets` with the unit options hearth and the shimmed modules use, nixpkgs'
# `unitOption` merge (lists concatenate, anything else must be equal), its Type=/Restart= value check, the
# definitions every unit gets (unitConfig from the ordering lists, the default PATH, script → ExecStart), and the
# warnings and assertion of systemd.nix that can fire for a hearth unit.
{
  config,
  lib,
  pkgs,
  ...
}: let
  inherit (lib) concatMap isList mkOption toList types;

  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge = loc: defs:
      if lib.any (def: isList def.value) defs
      then concatMap (def: toList def.value) defs
      else lib.mergeEqualOption loc defs;
  };

  unitNameType = types.strMatching "[a-zA-Z0-9@%:_.\\\\-]+[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)";
  unitList = mkOption {
    type = types.listOf unitNameType;
    default = [];
  };

  # systemd-lib's checkUnitConfig "Service" with its two value checks.
  checkService = attrs: let
    oneOf = field: values:
      lib.optional (attrs ? ${field} && !(lib.elem (unwrap attrs.${field}) values))
      "Systemd Service field `${field}' cannot have value `${toString (unwrap attrs.${field})}'.";
    unwrap = value:
      if value ? _type && lib.elem value._type ["override" "if"]
      then value.content
      else value;
    errors =
      oneOf "Type" ["exec" "simple" "forking" "oneshot" "dbus" "notify" "notify-reload" "idle"]
      ++ oneOf "Restart" ["no" "on-success" "on-failure" "on-abnormal" "on-abort" "always"];
  in
    if errors == []
    then true
    else builtins.trace (lib.concatStringsSep "\n" errors) false;

  commonUnitOptions = {
    config,
    options,
    ...
  }: {
    options = {
      enable = mkOption {
        type = types.bool;
        default = true;
      };
      name = mkOption {type = types.str;};
      description = mkOption {
        type = types.singleLineStr;
        default = "";
      };
      requiredBy = unitList;
      wantedBy = unitList;
      requires = unitList;
      wants = unitList;
      after = unitList;
      before = unitList;
      bindsTo = unitList;
      partOf = unitList;
      conflicts = unitList;
      unitConfig = mkOption {
        type = types.attrsOf unitOption;
        default = {};
      };
      startLimitBurst = mkOption {type = types.int;};
      startLimitIntervalSec = mkOption {type = types.int;};
      restartTriggers = mkOption {
        type = types.listOf types.unspecified;
        default = [];
      };
    };
    # systemd-lib's unitConfig: the ordering lists become space-separated unit options, at plain priority.
    config.unitConfig =
      lib.mapAttrs' (option: key: lib.nameValuePair key (toString config.${option})) (
        lib.filterAttrs (option: _: config.${option} != []) {
          requires = "Requires";
          wants = "Wants";
          after = "After";
          before = "Before";
          bindsTo = "BindsTo";
          partOf = "PartOf";
          conflicts = "Conflicts";
        }
      )
      // lib.optionalAttrs (config.description != "") {Description = config.description;}
      // lib.optionalAttrs options.startLimitBurst.isDefined {StartLimitBurst = toString config.startLimitBurst;}
      // lib.optionalAttrs options.startLimitIntervalSec.isDefined {
        StartLimitIntervalSec = toString config.startLimitIntervalSec;
      };
  };

  jobScript = name: text: "${pkgs.writeShellScriptBin name text}/bin/${name}";

  serviceOptions = {
    name,
    config,
    ...
  }: {
    options = {
      environment = mkOption {
        type = with types; attrsOf (nullOr (oneOf [str path package]));
        default = {};
      };
      path = mkOption {
        type = with types; listOf (oneOf [package str]);
        default = [];
      };
      enableDefaultPath = mkOption {
        type = types.bool;
        default = true;
      };
      serviceConfig = mkOption {
        type = types.addCheck (types.attrsOf unitOption) checkService;
        default = {};
      };
      script = mkOption {
        type = types.lines;
        default = "";
      };
      preStart = mkOption {
        type = types.lines;
        default = "";
      };
      postStart = mkOption {
        type = types.lines;
        default = "";
      };
      restartIfChanged = mkOption {
        type = types.bool;
        default = true;
      };
    };
    config = lib.mkMerge [
      {
        name = "${name}.service";
        environment.PATH = lib.mkIf (config.path != []) "${lib.makeBinPath config.path}:${lib.makeSearchPathOutput "bin" "sbin" config.path}";
        path = lib.mkIf config.enableDefaultPath (lib.mkAfter [
          pkgs.coreutils
          pkgs.findutils
          pkgs.gnugrep
          pkgs.gnused
          systemdCfg.package
        ]);
      }
      (lib.mkIf (config.preStart != "") {serviceConfig.ExecStartPre = [(jobScript "${name}-pre-start" config.preStart)];})
      (lib.mkIf (config.script != "") {serviceConfig.ExecStart = jobScript "${name}-start" config.script;})
      (lib.mkIf (config.postStart != "") {serviceConfig.ExecStartPost = [(jobScript "${name}-post-start" config.postStart)];})
    ];
  };

  targetConfig = {name, ...}: {config.name = "${name}.target";};

  # systemd-unit-options.nix's timerOptions: the [Timer] section, free-form like serviceConfig.
  timerOptions = {name, ...}: {
    options.timerConfig = mkOption {
      type = types.attrsOf unitOption;
      default = {};
    };
    config.name = "${name}.timer";
  };

  systemdCfg = config.systemd;

  # systemd.nix's warnings over every service.
  serviceWarnings = lib.concatLists (lib.mapAttrsToList (name: service: let
    type = service.serviceConfig.Type or "";
    restart = service.serviceConfig.Restart or "";
  in
    lib.optional (type == "oneshot" && (restart == "always" || restart == "on-success"))
    "Service '${name}.service' with 'Type=oneshot' cannot have 'Restart=always' or 'Restart=on-success'"
    ++ lib.optional (
      lib.elem "network-online.target" service.after
      && !(lib.any (list: lib.elem "network-online.target" list) [service.wants service.requires service.bindsTo])
    ) "${name}.service is ordered after 'network-online.target' but doesn't depend on it")
  systemdCfg.services);
in {
  options.systemd = {
    package = lib.mkPackageOption pkgs "systemd" {};
    services = mkOption {
      type = types.attrsOf (types.submodule [commonUnitOptions serviceOptions]);
      default = {};
    };
    targets = mkOption {
      type = types.attrsOf (types.submodule [commonUnitOptions targetConfig]);
      default = {};
    };
    timers = mkOption {
      type = types.attrsOf (types.submodule [commonUnitOptions timerOptions]);
      default = {};
    };
  };

  config = {
    assertions =
      lib.mapAttrsToList (name: service: {
        assertion = !(lib.elem "network-interfaces.target" (service.after ++ service.wants));
        message = "Service '${name}.service' is using the deprecated target network-interfaces.target, which no longer exists. Using network.target is recommended instead.";
      })
      systemdCfg.services;
    warnings = serviceWarnings;
  };
}
