//! hearth-core: the domain (configuration, models and embedding, blobs, extraction, chunking, the PostgreSQL
//! store). hearthd stays thin and goes through [`library::Library`], the one way into documents, jobs and search;
//! clients speak HTTP with `hearth-api`'s types and do not link this crate. hearth-firstboot has its own small
//! crate: it runs before everything else and must not link the embedding runtime.

pub mod auth;
pub mod blob;
pub mod chunk;
pub mod concepts;
pub mod config;
pub mod database;
pub mod digest;
pub mod embed;
pub mod extract;
pub mod fusion;
pub mod library;
pub mod metrics;
pub mod model;
pub mod reasoning;
pub mod schema;
pub mod store;
