//! hearth's domain library. Binaries (hearthd, the `hearth` CLI, hearth-firstboot) stay thin and call into this.

pub mod config;
pub mod digest;
pub mod embed;
pub mod model;
