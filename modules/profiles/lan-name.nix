# The appliance and the Pi on a home LAN: an address from DHCP and the name hearth.local, announced over mDNS, so
# nobody has to look up an IP address.
{lib, ...}: {
  networking.hostName = lib.mkDefault "hearth";
  networking.useDHCP = lib.mkDefault true;
  services.avahi = {
    enable = true;
    nssmdns4 = true;
    openFirewall = true;
    publish = {
      enable = true;
      addresses = true;
    };
  };
}
