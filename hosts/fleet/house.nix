# An example house: two Raspberry Pis and the NVIDIA workstation on one LAN, declared once. hosts/default.nix
# builds `nixosConfigurations.fleet-<member>` for each member from its host class (hosts/<class>) and this
# description (`services.hearth.fleet`, with `name` set to the member): the Pis embed on the workstation's hearthd,
# and the originals of all three replicate across one Garage cluster, each box in a bucket of its own.
#
# For a house of your own: run `hearth-firstboot fleet-secrets --out DIR --node pi-kitchen --node pi-study
# --node workstation` once, copy the files to each box (docs/install.md, "Growing to several boxes"), and put the
# node ids it prints into `garageId` below. The ids here are those of the TEST-ONLY keys in
# tests/fleet/secrets.nix, whose secret halves are public: replace them before installing a box.
{
  # The host class each member is built from.
  classes = {
    pi-kitchen = "pi";
    pi-study = "pi";
    workstation = "workstation";
  };

  # services.hearth.fleet of every member.
  fleet = {
    # The workstation embeds for the Pis and gives the Garage layout its roles: it is the box that is on most.
    embedder = "workstation";
    layoutKeeper = "workstation";
    # Every original on all three boxes: any one of them may be down (or its disk dead) and nothing is lost,
    # and the other two still read and write.
    replicationFactor = 3;
    # One model for the whole house (vectors of different models never mix): fp32 nomic, which the
    # workstation's GPU embeds fast. The Pis load it too, for their own queries and for while the workstation is
    # away: about 0.6 GB more than the quantized model, which fits a 4 GB Pi with zram behind it; choose
    # "nomic-embed-text-v1.5-quantized" for the whole house to keep the Pis' memory at the pi class's budget.
    model = "nomic-embed-text-v1.5";
    members = {
      # Fixed addresses (DHCP reservations on the router). Each member is its own Garage zone (`zone`, by
      # default its name).
      pi-kitchen = {
        address = "192.168.1.21";
        garageId = "a5b06f907475fc9fc8710e66bb61cfc5e712024ae06dc80a28c501f68da87d17";
        capacity = 200 * 1000 * 1000 * 1000;
      };
      pi-study = {
        address = "192.168.1.22";
        garageId = "6ce9f0fda72b70eed2677102f9f12be641de0ffc48746c049fc12bd24da3b009";
        capacity = 200 * 1000 * 1000 * 1000;
      };
      workstation = {
        address = "192.168.1.20";
        garageId = "8fffde75f926134ce4a6afc94e02e3d8ffd0a5d2ceb1388ddbf70b0529294d6e";
        capacity = 1000 * 1000 * 1000 * 1000;
      };
    };
  };
}
