//! The test kit: real PostgreSQL + pgvector, real Garage and the real test model, each started privately in a
//! temporary directory so parallel tests never share state. Every integration test and `cargo xtask demo` use it.
//!
//! The binaries come from `cargo xtask deps`, which records their paths in an env file in the cache directory.
//! A missing dependency is an error that says to run that command, never a skipped test.

pub mod api;
pub mod corpus;
mod deps;
mod garage;
mod garage_cluster;
mod hearthd;
mod llama;
mod postgres;
mod process;

pub use api::{Api, Reply};
pub use deps::{Deps, ENV_FILE, cache_dir, chromium, node_modules, test_python};
pub use garage::TestGarage;
pub use garage_cluster::{ClusterSecrets, TestGarageCluster};
pub use hearthd::TestHearthd;
pub use llama::{LLAMA_MODEL, TestLlama, llama_python};
pub use postgres::TestPostgres;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error("{what} is not available ({var} unset and not in {env_file}): run `cargo xtask deps`")]
    MissingDependency {
        what: &'static str,
        var: &'static str,
        env_file: PathBuf,
    },
    #[error("{what} at {path} does not exist: run `cargo xtask deps` again")]
    MissingFile { what: &'static str, path: PathBuf },
    #[error("cannot find a cache directory: set HEARTH_CACHE_DIR (or HOME)")]
    NoCacheDir,
    #[error("{action} failed: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed ({status}): {output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
    #[error("{service} did not become ready within {seconds}s; its log ends with:\n{log_tail}")]
    NotReady {
        service: &'static str,
        seconds: u64,
        log_tail: String,
    },
}

impl KitError {
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> KitError {
        let action = action.into();
        move |source| KitError::Io { action, source }
    }
}

/// A private, writable copy of the test model directory, for tests that damage it.
pub fn test_model_copy() -> Result<tempfile::TempDir, KitError> {
    let source = Deps::load()?.test_model_dir;
    let copy = tempfile::Builder::new()
        .prefix("hearth-model-")
        .tempdir()
        .map_err(KitError::io("creating a model copy"))?;
    let entries =
        std::fs::read_dir(&source).map_err(KitError::io(format!("reading {}", source.display())))?;
    for entry in entries {
        let path = entry.map_err(KitError::io("reading the model directory"))?.path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, copy.path().join(name))
                .map_err(KitError::io(format!("copying {}", path.display())))?;
        }
    }
    Ok(copy)
}
