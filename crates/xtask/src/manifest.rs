//! The pinned dependency manifest, `crates/xtask/deps.toml`.

use std::collections::BTreeMap;

use serde::Deserialize;

pub const TEXT: &str = include_str!("../deps.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub pip: PipTags,
    pub wheels: BTreeMap<String, Wheel>,
    pub postgres: Extracted,
    pub onnxruntime: Extracted,
    pub models: BTreeMap<String, Model>,
    pub crates: BTreeMap<String, Crate>,
    pub debian: BTreeMap<String, DebianPackage>,
    pub python: BTreeMap<String, PythonEnv>,
    pub npm: BTreeMap<String, NpmPackages>,
    pub nix: PrivateNix,
}

/// Node packages installed with `npm ci` from a committed `package-lock.json` (whose `integrity` fields pin every
/// tarball's sha512) into the cache, never into the checkout.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpmPackages {
    /// The directory holding `package.json` and `package-lock.json`, relative to the workspace root.
    pub lock_dir: String,
    pub group: String,
    /// Variable the env file records the `node_modules` directory under.
    pub env: String,
}

/// A Nix newer than the host's, from another Debian release, unpacked into the cache.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateNix {
    /// The oldest Nix found on PATH that is used instead.
    pub minimum: String,
    pub mirror: String,
    pub suite: String,
    pub package: String,
    pub version: String,
    /// Of the package's .deb, by architecture (`x86_64`, `aarch64`).
    pub sha256: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonEnv {
    /// Hash-pinned requirements, relative to crates/xtask.
    pub requirements: String,
    pub group: String,
    /// Variable the env file records the interpreter under.
    pub env: String,
    /// For a lock that pins an sdist: what building it needs, installed first so the build runs without pip's
    /// isolation (which would fetch unpinned build tools).
    #[serde(default)]
    pub build_requirements: Option<String>,
    /// Environment of the sdist's build (CMake flags).
    #[serde(default)]
    pub build_env: BTreeMap<String, String>,
    /// What the first build takes on 2 cores, said while it runs.
    #[serde(default)]
    pub build_minutes: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipTags {
    pub python_version: String,
    pub abi: String,
    pub platform: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wheel {
    pub version: String,
    /// By architecture (`x86_64`, `aarch64`), or `any` for pure-Python wheels.
    pub sha256: BTreeMap<String, String>,
}

/// Parts of one wheel unpacked into one directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extracted {
    pub wheel: String,
    /// Member names or directory prefixes (ending in `/`) to keep.
    pub members: Vec<String>,
    pub bin: Option<String>,
    pub library: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub files: BTreeMap<String, ModelFileSource>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFileSource {
    pub wheel: String,
    pub member: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crate {
    pub version: String,
    pub group: String,
    pub unless_on_path: Option<String>,
    /// How long the first build takes on 2 cores, said before it starts so a long build does not look hung.
    pub build_minutes: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebianPackage {
    /// A command on PATH, or an absolute path the package installs.
    pub provides: String,
    pub group: String,
}

pub fn load() -> anyhow::Result<Manifest> {
    toml::from_str(TEXT).map_err(|e| anyhow::anyhow!("crates/xtask/deps.toml is invalid: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_parses_and_pins_every_wheel_it_uses() {
        let manifest = load().expect("parses");
        let mut used = vec![&manifest.postgres.wheel, &manifest.onnxruntime.wheel];
        for model in manifest.models.values() {
            used.extend(model.files.values().map(|f| &f.wheel));
        }
        for wheel in used {
            let pinned = manifest
                .wheels
                .get(wheel)
                .unwrap_or_else(|| panic!("{wheel} is not pinned"));
            for hash in pinned.sha256.values() {
                assert_eq!(hash.len(), 64, "{wheel}: {hash} is not a sha256");
                assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{wheel}: {hash}");
            }
        }
    }

    #[test]
    fn every_model_has_a_bundled_manifest_listing_the_same_files() {
        let manifest = load().expect("parses");
        for (name, model) in &manifest.models {
            let bundled = hearth_core::model::ModelManifest::bundled(name)
                .unwrap_or_else(|| panic!("no bundled manifest for {name}"));
            let mut listed: Vec<&String> = bundled.files.iter().map(|f| &f.path).collect();
            listed.sort();
            let sourced: Vec<&String> = model.files.keys().collect();
            assert_eq!(listed, sourced, "{name}");
        }
    }
}
