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
    /// How often originals nothing refers to (a deleted document's, a replaced version's, an upload that died
    /// before its commit) are looked for and removed, in seconds; 0: never.
    #[serde(default = "default_sweep_interval")]
    pub sweep_interval_seconds: u64,
    /// How old such an original (or a staging file, or a readiness probe) must be before it is removed, in seconds:
    /// longer than any upload takes.
    #[serde(default = "default_sweep_grace")]
    pub sweep_grace_seconds: u64,
}

fn default_sweep_interval() -> u64 {
    600
}

fn default_sweep_grace() -> u64 {
    3600
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
            sweep_interval_seconds: default_sweep_interval(),
            sweep_grace_seconds: default_sweep_grace(),
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

    /// A store given as an object store (an in-memory or throttled one, for tests); puts need no fsync of ours.
    pub fn with_store(store: Arc<dyn ObjectStore>, describe: &str) -> Self {
        Self {
            store,
            local_root: None,
            describe: describe.to_owned(),
        }
    }

    pub fn describe(&self) -> &str {
        &self.describe
    }

    fn location(sha256: &str) -> ObjectPath {
        ObjectPath::from(format!("sha256/{}/{sha256}", &sha256[..2]))
    }

    /// Stores `bytes` under their hash; returns once they are durable. Bytes already stored are left alone: the
    /// key is their hash, and rewriting an acknowledged original would put it at risk for nothing.
    pub async fn put(&self, sha256: &str, bytes: Bytes) -> Result<(), BlobError> {
        let location = Self::location(sha256);
        if let Some(root) = &self.local_root {
            let file = root.join(location.as_ref());
            let root = root.clone();
            return tokio::task::spawn_blocking(move || write_durably(&file, &root, &bytes))
                .await
                .map_err(|e| BlobError::Config(format!("blob write task failed: {e}")))?;
        }
        match self.store.head(&location).await {
            Ok(meta) if meta.size == bytes.len() as u64 => return Ok(()),
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        self.store.put(&location, PutPayload::from(bytes)).await?;
        Ok(())
    }

    /// Every original in the store: its hash and when it was written.
    pub async fn list(&self) -> Result<Vec<(String, chrono::DateTime<chrono::Utc>)>, BlobError> {
        let mut blobs = Vec::new();
        let top = self
            .store
            .list_with_delimiter(Some(&ObjectPath::from("sha256")))
            .await?;
        for prefix in top.common_prefixes {
            for object in self.store.list_with_delimiter(Some(&prefix)).await?.objects {
                if let Some(name) = object.location.filename()
                    && name.len() == 64
                    && name.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    blobs.push((name.to_owned(), object.last_modified));
                }
            }
        }
        Ok(blobs)
    }

    /// Removes what interrupted writes and probes leave behind and nothing refers to: staging files of the local
    /// backend and readiness probe objects, older than `grace`. Returns how many went.
    pub async fn sweep_leftovers(&self, grace: std::time::Duration) -> Result<u64, BlobError> {
        let cutoff = chrono::Utc::now() - grace;
        let mut removed = 0;
        if let Ok(probes) = self
            .store
            .list_with_delimiter(Some(&ObjectPath::from("probe")))
            .await
        {
            for object in probes.objects.into_iter().filter(|o| o.last_modified < cutoff) {
                self.store.delete(&object.location).await?;
                removed += 1;
            }
        }
        if let Some(root) = &self.local_root {
            let root = root.join("sha256");
            removed += tokio::task::spawn_blocking(move || remove_staging_files(&root, grace))
                .await
                .map_err(|e| BlobError::Config(format!("blob sweep task failed: {e}")))??;
        }
        Ok(removed)
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

/// The local backend's put: the bytes go to a staging file in the target's directory, are synced, and only then
/// renamed into place (and the directories synced), so a crash leaves either no original or a whole one. An
/// existing file of the right size is the same bytes (its name is their hash), written this same way: kept.
fn write_durably(file: &Path, root: &Path, bytes: &[u8]) -> Result<(), BlobError> {
    if std::fs::metadata(file).is_ok_and(|meta| meta.len() == bytes.len() as u64) {
        return Ok(());
    }
    let io = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| BlobError::Io { action, path, source }
    };
    let dir = file
        .parent()
        .ok_or_else(|| BlobError::Config(format!("{} has no directory", file.display())))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io("creating", dir))?;
    let mut staging = tempfile::Builder::new()
        .prefix(STAGING_PREFIX)
        .tempfile_in(dir)
        .map_err(io("creating a staging file in", dir))?;
    std::io::Write::write_all(&mut staging, bytes).map_err(io("writing", staging.path()))?;
    staging
        .as_file()
        .sync_all()
        .map_err(io("syncing", staging.path()))?;
    staging.persist(file).map_err(|error| BlobError::Io {
        action: "renaming into place",
        path: file.to_owned(),
        source: error.error,
    })?;
    sync_file_and_parents(file, root)
}

/// Staging files of the local backend (ours, and object_store's `name#n`) older than `grace`.
fn remove_staging_files(root: &Path, grace: std::time::Duration) -> Result<u64, BlobError> {
    let mut removed = 0;
    let Ok(prefixes) = std::fs::read_dir(root) else {
        return Ok(0);
    };
    for prefix in prefixes.flatten() {
        let Ok(entries) = std::fs::read_dir(prefix.path()) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let staging = name.starts_with(STAGING_PREFIX) || name.contains('#');
            let old = entry
                .metadata()
                .and_then(|meta| meta.modified())
                .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age >= grace));
            if staging && old && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Names of the local backend's staging files; never a 64-hex-digit blob name.
const STAGING_PREFIX: &str = ".staging-";

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
