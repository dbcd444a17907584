# A hearth node for the VM tests (tests/*.nix): the full stack (PostgreSQL, Garage, first boot, substrate) with
# the small test model instead of nomic, and enough memory for all of it.
{pkgs, ...}: {
  services.hearth = {
    enable = true;
    model = "all-minilm-l6-v2-int8";
  };
  virtualisation = {
    memorySize = 2048;
    cores = 2;
  };
  environment.systemPackages = [pkgs.curl];
}
