//! Where `cargo xtask deps` put things. The process environment wins over the env file so CI, Nix checks and
//! developers can point at their own copies.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::KitError;

/// Name of the file, inside the cache directory, where `cargo xtask deps` records what it installed.
pub const ENV_FILE: &str = "env";

/// The cache directory: `$HEARTH_CACHE_DIR`; else, for root, `/var/cache/hearth` (root's home is not traversable
/// by the unprivileged user PostgreSQL must run as); else `$XDG_CACHE_HOME/hearth` or `~/.cache/hearth`.
pub fn cache_dir() -> Result<PathBuf, KitError> {
    if let Some(dir) = std::env::var_os("HEARTH_CACHE_DIR").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if rustix::process::geteuid().is_root() {
        return Ok(PathBuf::from("/var/cache/hearth"));
    }
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("hearth"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .ok_or(KitError::NoCacheDir)?;
    Ok(PathBuf::from(home).join(".cache").join("hearth"))
}

/// A Python 3.11 interpreter with the packages the tests drive hearth with (the official `openai` client).
pub fn test_python() -> Result<PathBuf, KitError> {
    recorded("HEARTH_TEST_PYTHON", "the test Python environment")
}

/// The browser tests' `node_modules` (playwright-core, axe-core), installed by `cargo xtask deps`.
pub fn node_modules() -> Result<PathBuf, KitError> {
    recorded("HEARTH_NODE_MODULES", "the browser tests' Node packages")
}

/// The Chromium the browser tests drive: `HEARTH_CHROMIUM` (the Nix checks set it), else Debian's, which
/// `cargo xtask deps` installs.
pub fn chromium() -> Result<PathBuf, KitError> {
    let path = std::env::var_os("HEARTH_CHROMIUM")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if !path.exists() {
        return Err(KitError::MissingFile {
            what: "Chromium (`cargo xtask deps` installs Debian's chromium)",
            path,
        });
    }
    Ok(path)
}

/// A path from the environment, else from the env file `cargo xtask deps` writes, that must exist.
pub(crate) fn recorded(var: &'static str, what: &'static str) -> Result<PathBuf, KitError> {
    let env_file = cache_dir()?.join(ENV_FILE);
    let path = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| read_env_file(&env_file).get(var).map(PathBuf::from))
        .ok_or_else(|| KitError::MissingDependency {
            what,
            var,
            env_file: env_file.clone(),
        })?;
    if !path.exists() {
        return Err(KitError::MissingFile { what, path });
    }
    Ok(path)
}

/// Paths of the real dependencies.
#[derive(Debug, Clone)]
pub struct Deps {
    /// PostgreSQL's `bin/` directory (initdb, pg_ctl, postgres, psql), with pgvector installed.
    pub postgres_bin: PathBuf,
    /// `libonnxruntime.so`, as fastembed's `ort-load-dynamic` expects in `ORT_DYLIB_PATH`.
    pub ort_dylib: PathBuf,
    /// The test model directory (with `manifest.json`).
    pub test_model_dir: PathBuf,
    /// The `garage` binary.
    pub garage_bin: PathBuf,
}

impl Deps {
    pub const POSTGRES_BIN: &'static str = "HEARTH_POSTGRES_BIN";
    pub const ORT_DYLIB: &'static str = "ORT_DYLIB_PATH";
    pub const TEST_MODEL_DIR: &'static str = "HEARTH_TEST_MODEL_DIR";
    pub const GARAGE_BIN: &'static str = "HEARTH_GARAGE_BIN";

    /// Resolves every dependency from the environment, then the env file; each must exist.
    pub fn load() -> Result<Self, KitError> {
        Self::resolve(&cache_dir()?, |var| std::env::var_os(var))
    }

    fn resolve(cache_dir: &Path, env: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<Self, KitError> {
        let env_file = cache_dir.join(ENV_FILE);
        let recorded = read_env_file(&env_file);
        let lookup = |var: &'static str, what: &'static str| -> Result<PathBuf, KitError> {
            let path = env(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| recorded.get(var).map(PathBuf::from))
                .ok_or_else(|| KitError::MissingDependency {
                    what,
                    var,
                    env_file: env_file.clone(),
                })?;
            if !path.exists() {
                return Err(KitError::MissingFile { what, path });
            }
            Ok(path)
        };
        Ok(Self {
            postgres_bin: lookup(Self::POSTGRES_BIN, "PostgreSQL")?,
            ort_dylib: lookup(Self::ORT_DYLIB, "onnxruntime")?,
            test_model_dir: lookup(Self::TEST_MODEL_DIR, "the test model")?,
            garage_bin: lookup(Self::GARAGE_BIN, "Garage")?,
        })
    }

    /// The `KEY=VALUE` lines of the env file.
    pub fn to_env_lines(&self) -> String {
        [
            (Self::POSTGRES_BIN, &self.postgres_bin),
            (Self::ORT_DYLIB, &self.ort_dylib),
            (Self::TEST_MODEL_DIR, &self.test_model_dir),
            (Self::GARAGE_BIN, &self.garage_bin),
        ]
        .iter()
        .map(|(key, path)| format!("{key}={}\n", path.display()))
        .collect()
    }
}

fn read_env_file(path: &Path) -> BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_dependency_says_how_to_install_it() {
        let cache = tempfile::tempdir().expect("tempdir");
        let err = Deps::resolve(cache.path(), |_| None).expect_err("nothing installed");
        let message = err.to_string();
        assert!(message.contains("cargo xtask deps"), "{message}");
        assert!(message.contains("HEARTH_POSTGRES_BIN"), "{message}");
    }

    #[test]
    fn env_file_is_read_and_environment_wins() {
        let cache = tempfile::tempdir().expect("tempdir");
        let existing = cache.path().to_owned();
        let deps = Deps {
            postgres_bin: existing.join("pg"),
            ort_dylib: existing.join("ort"),
            test_model_dir: existing.join("model"),
            garage_bin: existing.join("garage"),
        };
        for path in [
            &deps.postgres_bin,
            &deps.ort_dylib,
            &deps.test_model_dir,
            &deps.garage_bin,
        ] {
            std::fs::create_dir(path).expect("mkdir");
        }
        std::fs::write(cache.path().join(ENV_FILE), deps.to_env_lines()).expect("write env");
        let override_dir = existing.join("other-garage");
        std::fs::create_dir(&override_dir).expect("mkdir");

        let resolved = Deps::resolve(cache.path(), |var| {
            (var == Deps::GARAGE_BIN).then(|| override_dir.clone().into_os_string())
        })
        .expect("resolves");
        assert_eq!(resolved.postgres_bin, deps.postgres_bin);
        assert_eq!(resolved.garage_bin, override_dir);
    }

    #[test]
    fn recorded_path_that_vanished_is_an_error() {
        let cache = tempfile::tempdir().expect("tempdir");
        let gone = cache.path().join("gone");
        let env = format!("{}={}\n", Deps::POSTGRES_BIN, gone.display());
        std::fs::write(cache.path().join(ENV_FILE), env).expect("write env");
        let err = Deps::resolve(cache.path(), |_| None).expect_err("vanished");
        assert!(
            matches!(err, KitError::MissingFile { ref path, .. } if *path == gone),
            "{err}"
        );
    }
}
