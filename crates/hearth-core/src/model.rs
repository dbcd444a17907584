//! Embedding models are directories described by a manifest (`manifest.json`): what the model is, how to pool
//! and prefix, and the sha256 of every file. Opening a model directory verifies every hash; nothing is ever
//! downloaded.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::sha256_file;

/// The manifest's file name inside a model directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Manifests shipped with hearth, by directory name. The bootstrap and the Nix model derivations write these
/// next to the files they fetch.
pub const BUNDLED_MANIFESTS: &[(&str, &str)] = &[
    (
        "all-minilm-l6-v2-int8",
        include_str!("../models/all-minilm-l6-v2-int8.json"),
    ),
    (
        "nomic-embed-text-v1.5",
        include_str!("../models/nomic-embed-text-v1.5.json"),
    ),
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    Mean,
    Cls,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Quantization {
    /// Full-precision weights.
    None,
    /// Weights int8, activations quantized per batch at run time: results depend slightly on batch composition.
    DynamicInt8,
}

impl Quantization {
    /// The name manifests and `/v1/capabilities` use.
    pub fn label(&self) -> &'static str {
        match self {
            Quantization::None => "none",
            Quantization::DynamicInt8 => "dynamic-int8",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Path relative to the model directory.
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    /// Upstream model id, e.g. `nomic-ai/nomic-embed-text-v1.5`.
    pub id: String,
    /// Which export of that model (precision, format).
    pub variant: String,
    /// Upstream revision (e.g. a Hugging Face commit) the file hashes were taken from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    pub dims: usize,
    pub pooling: Pooling,
    pub normalize: bool,
    /// The longest input, in tokens, the model was trained for.
    pub max_tokens: usize,
    pub query_prefix: String,
    pub document_prefix: String,
    /// Output sizes the model was trained to be truncated to (Matryoshka); empty when it was not.
    pub matryoshka_dims: Vec<usize>,
    pub quantization: Quantization,
    pub files: Vec<ModelFile>,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "model manifest {path} is missing: point the model directory at a directory with a manifest.json"
    )]
    ManifestMissing { path: PathBuf },
    #[error("model manifest {path} is not valid: {source}")]
    ManifestInvalid {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("model file {path} is missing")]
    FileMissing { path: PathBuf },
    #[error("model file {path} has sha256 {actual}, but the manifest expects {expected}")]
    HashMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("model manifest names {path}, which is outside the model directory")]
    PathEscapes { path: String },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ModelManifest {
    pub fn from_json(path: &Path, text: &str) -> Result<Self, ModelError> {
        serde_json::from_str(text).map_err(|source| ModelError::ManifestInvalid {
            path: path.to_owned(),
            source,
        })
    }

    pub fn bundled(name: &str) -> Option<Self> {
        let (_, text) = BUNDLED_MANIFESTS.iter().find(|(n, _)| *n == name)?;
        serde_json::from_str(text).ok()
    }
}

/// A model directory whose every file matched its manifest when it was opened.
#[derive(Debug, Clone)]
pub struct VerifiedModel {
    pub dir: PathBuf,
    pub manifest: ModelManifest,
}

impl VerifiedModel {
    /// Reads `dir/manifest.json` and checks the sha256 of every file it lists.
    pub fn open(dir: &Path) -> Result<Self, ModelError> {
        let manifest_path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&manifest_path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ModelError::ManifestMissing {
                    path: manifest_path.clone(),
                }
            } else {
                ModelError::Io {
                    path: manifest_path.clone(),
                    source,
                }
            }
        })?;
        let manifest = ModelManifest::from_json(&manifest_path, &text)?;
        verify_files(dir, &manifest)?;
        Ok(Self {
            dir: dir.to_owned(),
            manifest,
        })
    }

    pub fn file(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }
}

/// Checks every file the manifest lists against its sha256.
pub fn verify_files(dir: &Path, manifest: &ModelManifest) -> Result<(), ModelError> {
    for file in &manifest.files {
        let relative = Path::new(&file.path);
        if relative.is_absolute()
            || relative
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(ModelError::PathEscapes {
                path: file.path.clone(),
            });
        }
        let path = dir.join(relative);
        let actual = match sha256_file(&path) {
            Ok(hash) => hash,
            Err(source) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(ModelError::FileMissing { path });
            }
            Err(source) => return Err(ModelError::Io { path, source }),
        };
        if !actual.eq_ignore_ascii_case(&file.sha256) {
            return Err(ModelError::HashMismatch {
                path,
                expected: file.sha256.clone(),
                actual,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_hex;

    fn manifest_for(files: &[(&str, &[u8])]) -> ModelManifest {
        let mut manifest = ModelManifest::bundled("all-minilm-l6-v2-int8").expect("bundled manifest parses");
        manifest.files = files
            .iter()
            .map(|(path, bytes)| ModelFile {
                path: (*path).to_owned(),
                sha256: sha256_hex(bytes),
            })
            .collect();
        manifest
    }

    fn write_model(dir: &Path, manifest: &ModelManifest, files: &[(&str, &[u8])]) {
        for (path, bytes) in files {
            std::fs::write(dir.join(path), bytes).expect("write file");
        }
        std::fs::write(
            dir.join(MANIFEST_FILE),
            serde_json::to_string(manifest).expect("serialize"),
        )
        .expect("write manifest");
    }

    #[test]
    fn every_bundled_manifest_parses() {
        for (name, _) in BUNDLED_MANIFESTS {
            let manifest = ModelManifest::bundled(name).expect("parses");
            assert!(manifest.dims > 0, "{name}");
            assert!(
                manifest
                    .matryoshka_dims
                    .iter()
                    .all(|&d| d > 0 && d < manifest.dims),
                "{name}"
            );
            for file in &manifest.files {
                assert_eq!(file.sha256.len(), 64, "{name}: {}", file.path);
                assert!(
                    file.sha256.chars().all(|c| c.is_ascii_hexdigit()),
                    "{name}: {}",
                    file.path
                );
            }
            // What the engine reads from every model directory.
            for needed in [
                "model.onnx",
                "tokenizer.json",
                "config.json",
                "special_tokens_map.json",
                "tokenizer_config.json",
            ] {
                assert!(
                    manifest.files.iter().any(|f| f.path == needed),
                    "{name} lacks {needed}"
                );
            }
        }
    }

    #[test]
    fn matching_files_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files: &[(&str, &[u8])] = &[("model.onnx", b"weights"), ("tokenizer.json", b"{}")];
        write_model(dir.path(), &manifest_for(files), files);
        let model = VerifiedModel::open(dir.path()).expect("opens");
        assert_eq!(model.manifest.files.len(), 2);
    }

    #[test]
    fn changed_file_names_path_and_both_hashes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files: &[(&str, &[u8])] = &[("model.onnx", b"weights")];
        write_model(dir.path(), &manifest_for(files), files);
        std::fs::write(dir.path().join("model.onnx"), b"tampered").expect("write");
        let err = VerifiedModel::open(dir.path()).expect_err("must fail");
        let message = err.to_string();
        assert!(message.contains("model.onnx"), "{message}");
        assert!(message.contains(&sha256_hex(b"weights")), "{message}");
        assert!(message.contains(&sha256_hex(b"tampered")), "{message}");
    }

    #[test]
    fn missing_file_and_missing_manifest_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = VerifiedModel::open(dir.path()).expect_err("no manifest");
        assert!(matches!(err, ModelError::ManifestMissing { .. }), "{err}");

        let files: &[(&str, &[u8])] = &[("model.onnx", b"weights")];
        let manifest = manifest_for(files);
        write_model(dir.path(), &manifest, &[]);
        let err = VerifiedModel::open(dir.path()).expect_err("no model file");
        assert!(
            matches!(err, ModelError::FileMissing { ref path } if path.ends_with("model.onnx")),
            "{err}"
        );
    }

    #[test]
    fn paths_outside_the_directory_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut manifest = manifest_for(&[]);
        manifest.files.push(ModelFile {
            path: "../etc/passwd".into(),
            sha256: "00".into(),
        });
        write_model(dir.path(), &manifest, &[]);
        let err = VerifiedModel::open(dir.path()).expect_err("escape");
        assert!(matches!(err, ModelError::PathEscapes { .. }), "{err}");
    }
}
