//! First boot of a hearth appliance: mint every per-instance secret (nothing secret is ever in an image or the
//! Nix store) and provision Garage. The binary is a thin CLI over this library.

pub mod fleet;
pub mod garage;
pub mod secrets;
pub mod secrets_dir;
