# shim-of: nixos/modules/system/activation/top-level.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# shim-of: nixos/modules/system/build.nix @ NixOS/nixpkgs@9b77da4324c967c2227fecdb00519727b72b84b0
# The system derivation fails on failed assertions and shows the warnings (lib.asserts.checkAssertWarn, the
# text nixpkgs prints). Here it is a stand-in whose path depends on every specialisation's system, as the real
# one links them in.
{
  config,
  lib,
  pkgs,
  ...
}: let
  # systemd-lib's toOption.
  toOption = x:
    if x == true
    then "true"
    else if x == false
    then "false"
    else toString x;
in {
  imports = [
    {
      # Each boot loader's module defines it: two enabled loaders are an evaluation error.
      options.system.build.installBootLoader = lib.mkOption {
        internal = true;
        default = "echo 'Warning: do not know how to make this configuration bootable; please enable a boot loader.' 1>&2; true";
        type = lib.types.unique {
          message = ''
            Only one bootloader can be enabled at a time. This requirement has not
            been checked until NixOS 22.05. Earlier versions defaulted to the last
            definition. Change your configuration to enable only one bootloader.
          '';
        } (lib.types.either lib.types.str lib.types.package);
      };
    }
  ];

  options.system.build = lib.mkOption {
    default = {};
    type = lib.types.submoduleWith {modules = [{freeformType = with lib.types; lazyAttrsOf (uniq unspecified);}];};
  };
  config.system.build.toplevel = lib.asserts.checkAssertWarn config.assertions config.warnings (
    pkgs.runCommand "nixos-system-${config.networking.hostName}-${config.system.nixos.label}" {
      # What the real system is built from, as far as the shims know it: its path changes with any of these, and
      # instantiating it forces every package in it (an unfree one the configuration does not allow fails).
      kernel = config.boot.kernelPackages.kernel;
      bootLoader = config.system.build.installBootLoader;
      inherit (config.boot) kernelParams;
      initrdModules = config.boot.initrd.availableKernelModules;
      packages = config.environment.systemPackages;
      etc = lib.mapAttrs (_: file: file.source) (lib.filterAttrs (_: file: file.enable) config.environment.etc);
      # Rendered as systemd-lib renders unit files: every value must become text (an attribute set cannot).
      units = lib.mapAttrs (_: unit: {
        settings = lib.mapAttrs (_: value:
          if lib.isList value
          then map toOption value
          else toOption value) (unit.unitConfig // unit.serviceConfig);
        environment = lib.mapAttrsToList (name: value: "${name}=${toString value}") (
          lib.filterAttrs (_: value: value != null) unit.environment
        );
        inherit (unit) wantedBy requiredBy;
      }) (lib.filterAttrs (_: unit: unit.enable) config.systemd.services);
      fileSystems = lib.mapAttrs (_: fs: {inherit (fs) device fsType options;}) config.fileSystems;
      specialisations = lib.mapAttrs (_: child: child.configuration.system.build.toplevel) config.specialisation;
    } ""
  );
}
