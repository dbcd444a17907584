# shim-of: nixos/modules/virtualisation/disk-size-option.nix @ Swarsel/nixpkgs@4aa6836a648ca76c68866decf0c8965e36ec2a3b
{
  config,
  lib,
  ...
}: {
  options.virtualisation = {
    diskSize = lib.mkOption {
      type = lib.types.either (lib.types.enum ["auto"]) lib.types.ints.positive;
      default =
        if config.virtualisation.diskSizeAutoSupported
        then "auto"
        else 1024;
    };
    diskSizeAutoSupported = lib.mkOption {
      type = lib.types.bool;
      internal = true;
      default = true;
    };
  };
  config.assertions = [
    {
      assertion = config.virtualisation.diskSize != "auto" || config.virtualisation.diskSizeAutoSupported;
      message = "Setting virtualisation.diskSize to `auto` is not supported by the current image build or vm runner; use an explicit size.";
    }
  ];
}
