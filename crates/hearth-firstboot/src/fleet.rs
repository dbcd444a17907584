//! The secrets a fleet of boxes shares, minted once by the operator (`hearth-firstboot fleet-secrets`): the Garage
//! cluster's RPC secret, the bearer token the boxes present to each other, and one Garage node key per box. Node
//! keys are minted here rather than by each Garage so that every box's node id is known before any box boots: the
//! flake names its peers (`bootstrap_peers`) and the layout keeper lays out every node without a second round.
//!
//! Files are written 0400, never replaced: minting again keeps what exists and prints the same node ids.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;

use crate::secrets::{Secret, random_bytes};

/// The cluster's RPC secret: what `services.hearth.garage.cluster.rpcSecretFile` points at on every box.
pub const RPC_SECRET_FILE: &str = "garage-rpc-secret";
/// The token boxes present to each other (the `fleet-token` and `embedding-remote-token` credentials).
pub const FLEET_TOKEN_FILE: &str = "fleet-token";
/// A box's Garage node key: `<name>.garage-node-key`, 64 bytes (seed then public key, libsodium's layout, which
/// Garage reads from `metadata_dir/node_key`).
pub const NODE_KEY_SUFFIX: &str = ".garage-node-key";

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("node name {0:?} is not usable: use letters, digits and dashes (the host name)")]
    BadName(String),
    #[error("node {0} is named twice")]
    Duplicate(String),
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path} is not a Garage node key: it has {len} bytes, 64 expected")]
    BadNodeKey { path: PathBuf, len: usize },
    #[error(transparent)]
    Random(#[from] crate::secrets::RandomError),
}

/// What one file holds now and whether this run wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minted {
    pub file: PathBuf,
    pub written: bool,
    /// The node's Garage id (hex of the public key), for node keys; the fingerprint otherwise.
    pub shown: String,
}

/// Mints what is missing in `dir` for `nodes`; returns the shared files, then one entry per node.
pub fn mint(dir: &Path, nodes: &[String]) -> Result<Vec<Minted>, FleetError> {
    check_names(nodes)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |error: std::io::Error| FleetError::Io {
            path,
            message: error.to_string(),
        }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    let mut minted = vec![
        shared(dir, RPC_SECRET_FILE, || {
            Ok(hex::encode(random_bytes(32)?.as_slice()).into_bytes())
        })?,
        shared(dir, FLEET_TOKEN_FILE, || {
            use base64::Engine as _;
            Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(random_bytes(32)?.as_slice())
                .into_bytes())
        })?,
    ];
    for node in nodes {
        minted.push(node_key(dir, node)?);
    }
    Ok(minted)
}

fn check_names(nodes: &[String]) -> Result<(), FleetError> {
    let mut seen = std::collections::BTreeSet::new();
    for node in nodes {
        let fine = !node.is_empty()
            && node.len() <= 63
            && node.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !node.starts_with('-');
        if !fine {
            return Err(FleetError::BadName(node.clone()));
        }
        if !seen.insert(node) {
            return Err(FleetError::Duplicate(node.clone()));
        }
    }
    Ok(())
}

fn shared(
    dir: &Path,
    name: &str,
    generate: impl FnOnce() -> Result<Vec<u8>, FleetError>,
) -> Result<Minted, FleetError> {
    let path = dir.join(name);
    let (bytes, written) = match read(&path)? {
        Some(bytes) => (bytes, false),
        None => {
            let bytes = generate()?;
            write_new(&path, &bytes)?;
            (bytes, true)
        }
    };
    Ok(Minted {
        file: path,
        written,
        shown: format!("fp={}", Secret::new(bytes).fingerprint()),
    })
}

fn node_key(dir: &Path, node: &str) -> Result<Minted, FleetError> {
    let path = dir.join(format!("{node}{NODE_KEY_SUFFIX}"));
    let (key, written) = match read(&path)? {
        Some(bytes) => (bytes, false),
        None => {
            let seed = random_bytes(32)?;
            let mut seed_array = zeroize::Zeroizing::new([0u8; 32]);
            seed_array.copy_from_slice(&seed);
            let key = SigningKey::from_bytes(&seed_array);
            let bytes = key.to_keypair_bytes().to_vec();
            write_new(&path, &bytes)?;
            (bytes, true)
        }
    };
    let id = node_id(&path, &key)?;
    Ok(Minted {
        file: path,
        written,
        shown: id,
    })
}

/// The Garage node id of a 64-byte node key: its public half, checked against its seed.
pub fn node_id(path: &Path, key: &[u8]) -> Result<String, FleetError> {
    let bad = || FleetError::BadNodeKey {
        path: path.to_owned(),
        len: key.len(),
    };
    let pair: &[u8; 64] = key.try_into().map_err(|_| bad())?;
    let signing = SigningKey::from_keypair_bytes(pair).map_err(|_| bad())?;
    Ok(hex::encode(signing.verifying_key().to_bytes()))
}

fn read(path: &Path) -> Result<Option<Vec<u8>>, FleetError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(FleetError::Io {
            path: path.to_owned(),
            message: error.to_string(),
        }),
    }
}

/// Writes a new 0400 file whole or not at all: a temporary file, synced, then linked to its name (which fails
/// rather than replace a file minted meanwhile).
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), FleetError> {
    let io = |error: std::io::Error| FleetError::Io {
        path: path.to_owned(),
        message: error.to_string(),
    };
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(&temporary)
        .map_err(io)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
    let _ = std::fs::remove_file(&temporary);
    linked.map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    #[test]
    fn minting_twice_keeps_every_file_and_the_node_ids() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fleet = dir.path().join("fleet");
        let nodes = vec!["pi-kitchen".to_owned(), "workstation".to_owned()];
        let first = mint(&fleet, &nodes).expect("mint");
        assert!(first.iter().all(|m| m.written), "{first:?}");
        assert_eq!(first.len(), 4);
        let key = std::fs::read(&first[2].file).expect("node key");
        assert_eq!(key.len(), 64);
        assert_eq!(
            first[2].shown,
            hex::encode(&key[32..]),
            "the id is the key's public half"
        );
        assert_eq!(
            std::fs::metadata(&first[2].file).expect("stat").mode() & 0o777,
            0o400
        );
        assert_eq!(std::fs::metadata(&fleet).expect("stat").mode() & 0o777, 0o700);
        assert_eq!(
            std::fs::read(&first[0].file).expect("rpc").len(),
            64,
            "32 bytes in hex"
        );
        let again = mint(&fleet, &nodes).expect("mint again");
        assert!(again.iter().all(|m| !m.written), "{again:?}");
        let shown = |m: &[Minted]| m.iter().map(|m| m.shown.clone()).collect::<Vec<_>>();
        assert_eq!(shown(&first), shown(&again));
        assert_ne!(first[2].shown, first[3].shown, "each node its own key");
    }

    #[test]
    fn bad_names_duplicates_and_corrupt_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            mint(dir.path(), &["a/b".into()]),
            Err(FleetError::BadName(_))
        ));
        assert!(matches!(
            mint(dir.path(), &["a".into(), "a".into()]),
            Err(FleetError::Duplicate(_))
        ));
        std::fs::write(dir.path().join("x.garage-node-key"), [7u8; 10]).expect("write");
        assert!(matches!(
            mint(dir.path(), &["x".into()]),
            Err(FleetError::BadNodeKey { len: 10, .. })
        ));
    }
}
