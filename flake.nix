{
  description = "hearth: a private, local-first knowledge appliance on NixOS";

  inputs = {
    nixpkgs.url = "github:nixos/nixpkgs/nixos-26.05";
    # Disk layouts of the host classes (hosts/*/disko.nix), for nixos-anywhere.
    disko = {
      url = "github:nix-community/disko/latest";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs = inputs: import ./nix/outputs.nix inputs;
}
