//! Originals: the exact bytes of every document, keyed by their sha256, in an object store — a local directory by
//! default, S3 (Garage) on the appliance. A put returns only once the bytes are durable.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use serde::{Deserialize, Serialize};

/// Which kind of store holds the originals.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A directory on this machine.
    Local,
    /// An S3 bucket, path-style (Garage on the appliance).
    S3,
}

/// Where originals live. One flat table, so that a file or environment can switch the backend by one key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BlobConfig {
    pub backend: Backend,
    /// Local backend: the directory.
    pub path: PathBuf,
    /// S3 backend: `http://host:port` of the S3 API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    /// S3 key pair, read from files: these, else the `s3-access-key-id` / `s3-secret-key` systemd credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_file: Option<PathBuf>,
}

impl Default for BlobConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Local,
            path: PathBuf::from("/var/lib/hearth/blobs"),
            endpoint: None,
            region: "garage".into(),
            bucket: "hearth".into(),
            access_key_id_file: None,
            secret_access_key_file: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob store: {0}")]
    Store(#[from] object_store::Error),
    #[error("blob store: {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("blob store: {0}")]
    Config(String),
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// Set for the local backend, whose writes must be fsynced by us (object_store renames without syncing).
    local_root: Option<PathBuf>,
    describe: String,
}

impl BlobStore {
    pub fn open(config: &BlobConfig, credentials_dir: Option<&Path>) -> Result<Self, BlobError> {
        match config.backend {
            Backend::Local => {
                let path = &config.path;
                // 0700: the originals are nobody else's business (an existing directory keeps its mode).
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(path)
                    .map_err(|source| BlobError::Io {
                        action: "creating",
                        path: path.clone(),
                        source,
                    })?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(path)?;
                Ok(Self {
                    store: Arc::new(store),
                    local_root: Some(path.clone()),
                    describe: format!("local directory {}", path.display()),
                })
            }
            Backend::S3 => {
                let endpoint = config.endpoint.as_deref().ok_or_else(|| {
                    BlobError::Config(
                        "blobs.backend = \"s3\" needs blobs.endpoint (e.g. http://127.0.0.1:3900)".into(),
                    )
                })?;
                let read = |explicit: &Option<PathBuf>,
                            key: &str,
                            credential: &str|
                 -> Result<String, BlobError> {
                    let path = explicit
                        .clone()
                        .or_else(|| credentials_dir.map(|dir| dir.join(credential)))
                        .ok_or_else(|| {
                            BlobError::Config(format!(
                                "the S3 backend needs its key: set blobs.{key} or pass the `{credential}` credential"
                            ))
                        })?;
                    let text = std::fs::read_to_string(&path).map_err(|source| BlobError::Io {
                        action: "reading",
                        path: path.clone(),
                        source,
                    })?;
                    Ok(text.trim_end().to_owned())
                };
                let store = object_store::aws::AmazonS3Builder::new()
                    .with_endpoint(endpoint)
                    .with_region(&config.region)
                    .with_bucket_name(&config.bucket)
                    .with_access_key_id(read(
                        &config.access_key_id_file,
                        "access_key_id_file",
                        "s3-access-key-id",
                    )?)
                    .with_secret_access_key(read(
                        &config.secret_access_key_file,
                        "secret_access_key_file",
                        "s3-secret-key",
                    )?)
                    .with_allow_http(true)
                    .with_virtual_hosted_style_request(false)
                    .build()?;
                Ok(Self {
                    store: Arc::new(store),
                    local_root: None,
                    describe: format!("S3 bucket '{}' at {endpoint}", config.bucket),
                })
            }
        }
    }

    pub fn describe(&self) -> &str {
        &self.describe
    }

    fn location(sha256: &str) -> ObjectPath {
        ObjectPath::from(format!("sha256/{}/{sha256}", &sha256[..2]))
    }

    /// Stores `bytes` under their hash; returns once they are durable. Storing the same bytes again is harmless.
    pub async fn put(&self, sha256: &str, bytes: Bytes) -> Result<(), BlobError> {
        let location = Self::location(sha256);
        self.store.put(&location, PutPayload::from(bytes)).await?;
        if let Some(root) = &self.local_root {
            let file = root.join(location.as_ref());
            let root = root.clone();
            tokio::task::spawn_blocking(move || sync_file_and_parents(&file, &root))
                .await
                .map_err(|e| BlobError::Config(format!("fsync task failed: {e}")))??;
        }
        Ok(())
    }

    pub async fn get(&self, sha256: &str) -> Result<Bytes, BlobError> {
        Ok(self.store.get(&Self::location(sha256)).await?.bytes().await?)
    }

    /// Deletes the blob; a blob that is already gone is not an error.
    pub async fn delete(&self, sha256: &str) -> Result<(), BlobError> {
        match self.store.delete(&Self::location(sha256)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Write, read back and delete a probe object: what `/readyz` reports for the blob store.
    pub async fn probe(&self) -> Result<(), BlobError> {
        let location = ObjectPath::from(format!("probe/{}", uuid::Uuid::new_v4()));
        let payload = Bytes::from_static(b"hearth readiness probe");
        self.store
            .put(&location, PutPayload::from(payload.clone()))
            .await?;
        let read = self.store.get(&location).await?.bytes().await?;
        self.store.delete(&location).await?;
        if read != payload {
            return Err(BlobError::Config("the probe object read back differently".into()));
        }
        Ok(())
    }
}

fn sync_file_and_parents(file: &Path, root: &Path) -> Result<(), BlobError> {
    let sync = |path: &Path| {
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|source| BlobError::Io {
                action: "syncing",
                path: path.to_owned(),
                source,
            })
    };
    sync(file)?;
    // The new directory entries (the file, and directories object_store may have created) are durable only once
    // their parents are synced.
    let mut dir = file.parent();
    while let Some(path) = dir {
        sync(path)?;
        if path == root {
            break;
        }
        dir = path.parent();
    }
    Ok(())
}
