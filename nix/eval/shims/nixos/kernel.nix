# shim-of: nixos/modules/system/boot/kernel.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
# kernelPackages is applied through `.extend` (a package set, not a kernel); module lists are attribute sets of
# booleans coerced from lists, and the module adds its default initrd modules.
{
  lib,
  pkgs,
  ...
}: let
  inherit (lib) mkOption types;
  attrNamesToTrue = types.coercedTo (types.listOf types.str) (enabledList: lib.genAttrs enabledList (_attrName: true)) (types.attrsOf types.bool);
  moduleList = mkOption {
    type = attrNamesToTrue;
    default = {};
    apply = mods: lib.attrNames (lib.filterAttrs (_: v: v) mods);
  };
in {
  options.boot = {
    kernelParams = mkOption {
      type = types.listOf (types.strMatching ''([^"[:space:]]|"[^"]*")+''
        // {
          description = "string, with spaces inside double quotes";
          name = "kernelParam";
        });
      default = [];
    };
    kernelPackages = mkOption {
      type = types.raw;
      default = pkgs.linuxPackages;
      apply = kernelPackages: kernelPackages.extend (_self: super: {kernel = super.kernel.override (_: {});});
    };
    kernelModules = moduleList;
    initrd.availableKernelModules = moduleList;
    initrd.kernelModules = moduleList;
  };
  config = {
    boot.initrd.availableKernelModules = ["ahci" "sata_nv" "sata_via" "sata_sis" "sata_uli" "ata_piix" "pata_marvell" "nvme" "sd_mod" "sr_mod" "mmc_block" "uhci_hcd" "ehci_hcd" "ehci_pci" "ohci_hcd" "ohci_pci" "xhci_hcd" "xhci_pci" "usbhid" "hid_generic" "hid_lenovo" "hid_apple" "hid_roccat" "hid_logitech_hidpp" "hid_logitech_dj" "hid_microsoft" "hid_cherry" "hid_corsair"];
    boot.initrd.kernelModules = ["dm_mod"];
    boot.kernelModules = ["loop" "atkbd"];
  };
}
