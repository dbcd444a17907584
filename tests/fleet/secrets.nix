# TEST-ONLY fleet secrets, for tests/fleet.nix and nothing else. They are public (in this repository and in the
# Nix store of every machine that builds the test): never put them on a real box. A real fleet's come from
# `hearth-firstboot fleet-secrets --out DIR --node NAME ...`, run once by the operator (docs/install.md).
#
# Each node key is what fleet-secrets writes as NAME.garage-node-key, here as hexadecimal: 64 bytes, an ed25519
# secret key as libsodium writes it (the 32-byte seed, then the 32-byte public key), which is Garage's
# metadata_dir/node_key. The node's Garage id is its public half (the last 64 hex digits). They were generated
# for this file with Python's `cryptography` (Ed25519PrivateKey.generate(), raw seed and raw public key); the
# example house (hosts/fleet/house.nix) uses the same ids.
{
  garage-rpc-secret = "8af4b8e7996ef5e9f3f497db02f7efc4065e24a89f073bf0d973251293b44463";
  fleet-token = "4bALgV6lCe8bElCepq1-vTEl5lXP9wmRLUNU9TfanSI";
  garageNodeKeys = {
    pi-kitchen = "5a723606781fd3392c52ee2a72ac13390b81fca31913fe413c36f845adb436b9a5b06f907475fc9fc8710e66bb61cfc5e712024ae06dc80a28c501f68da87d17";
    pi-study = "1f654e43c64b3a07f4b073dff8425a927574dd43fcaee54f3776fef73d504b486ce9f0fda72b70eed2677102f9f12be641de0ffc48746c049fc12bd24da3b009";
    workstation = "443dd36fb742151bd9e9b189b4c2d5c8f6e7c0dcff11aeac7388e55c4db49d0c8fffde75f926134ce4a6afc94e02e3d8ffd0a5d2ceb1388ddbf70b0529294d6e";
  };
}
