//! hearth's domain library. Binaries (hearthd, the `hearth` CLI) stay thin and call into this. hearth-firstboot
//! has its own small library: it runs before everything else and must not link the embedding runtime.

pub mod auth;
pub mod blob;
pub mod chunk;
pub mod config;
pub mod database;
pub mod digest;
pub mod doctor;
pub mod embed;
pub mod extract;
pub mod fusion;
pub mod library;
pub mod metrics;
pub mod model;
pub mod store;
