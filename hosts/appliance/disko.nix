# The disk layout of this host class: GPT, an EFI system partition and an ext4 root (hosts/layouts/gpt-ext4.nix).
# Change it here for this class only.
{imports = [../layouts/gpt-ext4.nix];}
