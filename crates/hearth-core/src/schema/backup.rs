//! Dumps of hearth's database: taken before every migration (and by hand), checked before anything relies on
//! them, and restored in one transaction. Originals are content-addressed and never rewritten, so the database's
//! dump is all a restore needs.
//!
//! A dump is `pg_dump --format=custom` written beside a JSON manifest (schema versions, hearth's version, the
//! NixOS generation, size, sha256). It is written to a hidden partial file, fsynced, listed by `pg_restore
//! --list` and only then renamed into place; the oldest beyond `backup.keep` are removed after a new one is in.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio::process::Command;

/// The `[backup]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// Where dumps and their manifests go (created 0700).
    pub dir: PathBuf,
    /// Dumps kept; older ones are removed once a new one is verified.
    pub keep: usize,
    /// Directory holding `pg_dump`, `pg_restore` and `psql` of the server's major version or newer; unset:
    /// found on PATH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_bin: Option<PathBuf>,
    /// Bytes that must stay free on the backups' filesystem after a dump (PostgreSQL needs room for the
    /// migration's WAL); short of it, hearthd does not migrate and says so in `/readyz`.
    pub reserve_bytes: u64,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("/var/lib/hearth/backups"),
            keep: 3,
            postgres_bin: None,
            reserve_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Why a dump was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupReason {
    BeforeMigrate,
    Manual,
    BeforeRestore,
}

/// The manifest beside each dump (`<dump>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    /// The dump's file name, in the backups directory.
    pub file: String,
    pub reason: BackupReason,
    /// The schema version the dump holds.
    pub schema: i64,
    /// For a dump before a migration: the version the migration was to bring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrating_to: Option<i64>,
    pub hearth_version: String,
    /// The NixOS generation that took it (`/run/current-system`'s store path name), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub created_at: DateTime<Utc>,
    pub bytes: u64,
    pub sha256: String,
}

impl BackupManifest {
    pub fn path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.file)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "not enough space for a backup in {dir}: it needs about {needed} MiB plus backup.reserve_bytes ({reserve} \
         MiB) free, and {free} MiB are; free some space there (or lower backup.keep) — hearthd checks again every \
         15 s"
    )]
    NoSpace {
        dir: PathBuf,
        needed: u64,
        reserve: u64,
        free: u64,
    },
    #[error("cannot use the backups directory {dir}: {source}")]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot run {program}: {source} (set backup.postgres_bin to the directory with PostgreSQL's client tools)"
    )]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    Tool {
        program: String,
        status: String,
        stderr: String,
    },
    #[error("the dump {0} does not hold hearth's schema (pg_restore --list shows no _sqlx_migrations)")]
    NotHearths(PathBuf),
    #[error("the dump {file} does not match its manifest (sha256 {actual}, the manifest says {expected})")]
    Corrupt {
        file: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("cannot read the backup manifest {path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error(
        "refusing to restore while other sessions use the database ({sessions}): stop hearthd first \
         (systemctl stop hearthd) and close them"
    )]
    InUse { sessions: String },
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("database settings: {0}")]
    Database(#[from] crate::database::DatabaseConfigError),
}

const MIB: u64 = 1024 * 1024;

/// hearth's dumps: where they go, how to reach the database with PostgreSQL's tools.
#[derive(Debug, Clone)]
pub struct Backups {
    config: BackupConfig,
    libpq_env: Vec<(&'static str, String)>,
}

impl Backups {
    pub fn new(config: BackupConfig, libpq_env: Vec<(&'static str, String)>) -> Self {
        Self { config, libpq_env }
    }

    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Every dump with a manifest, newest first; manifests that cannot be read are skipped (and logged).
    pub fn list(&self) -> Vec<BackupManifest> {
        list(&self.config.dir)
    }

    /// Fails with [`BackupError::NoSpace`] unless a dump of about `estimate` bytes plus the reserve fits.
    pub fn check_space(&self, estimate: u64) -> Result<(), BackupError> {
        self.ensure_dir()?;
        let free = free_bytes(&self.config.dir).map_err(|source| BackupError::Dir {
            dir: self.config.dir.clone(),
            source,
        })?;
        if free < estimate.saturating_add(self.config.reserve_bytes) {
            return Err(BackupError::NoSpace {
                dir: self.config.dir.clone(),
                needed: estimate.div_ceil(MIB),
                reserve: self.config.reserve_bytes / MIB,
                free: free / MIB,
            });
        }
        Ok(())
    }

    /// A verified dump of the database as it is now, holding schema `schema`; then the oldest beyond
    /// `backup.keep` go.
    pub async fn dump(
        &self,
        pool: &PgPool,
        reason: BackupReason,
        schema: i64,
        migrating_to: Option<i64>,
    ) -> Result<BackupManifest, BackupError> {
        let manifest = self.dump_unpruned(pool, reason, schema, migrating_to).await?;
        self.prune();
        Ok(manifest)
    }

    /// [`Backups::dump`] without removing old dumps: a restore's safety dump must not remove the one restored.
    async fn dump_unpruned(
        &self,
        pool: &PgPool,
        reason: BackupReason,
        schema: i64,
        migrating_to: Option<i64>,
    ) -> Result<BackupManifest, BackupError> {
        self.remove_partials();
        let estimate = crate::store::schema::database_bytes(pool).await?.max(0) as u64;
        self.check_space(estimate)?;
        let created_at = Utc::now();
        let system = current_system();
        let manifest = BackupManifest {
            file: file_name(created_at, reason, schema, migrating_to, system.as_deref()),
            reason,
            schema,
            migrating_to,
            hearth_version: env!("CARGO_PKG_VERSION").to_owned(),
            system,
            created_at,
            bytes: 0,
            sha256: String::new(),
        };
        let partial = self.config.dir.join(format!(".{}.partial", manifest.file));
        let sealed = match self.write_dump(&partial).await {
            Ok(()) => self.seal(&partial, manifest),
            Err(error) => Err(error),
        };
        if sealed.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        sealed
    }

    /// Partial dumps and restore scripts a stop or a crash left behind.
    fn remove_partials(&self) {
        let Ok(entries) = std::fs::read_dir(&self.config.dir) else {
            return;
        };
        for path in entries.filter_map(Result::ok).map(|entry| entry.path()) {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with(".hearth-") && (name.ends_with(".partial") || name.ends_with(".sql")) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    async fn write_dump(&self, partial: &Path) -> Result<(), BackupError> {
        let mut command = self.tool("pg_dump");
        command
            .args(["--format=custom", "--no-password", "--file"])
            .arg(partial);
        run(command, "pg_dump").await?;
        std::fs::set_permissions(partial, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .and_then(|()| std::fs::File::open(partial)?.sync_all())
            .map_err(|source| self.dir_error(source))?;
        self.verify(partial).await
    }

    /// The dump is listed by `pg_restore` and holds hearth's migration table.
    pub async fn verify(&self, dump: &Path) -> Result<(), BackupError> {
        let listing = self.list_contents(dump).await?;
        if !listing.contains("_sqlx_migrations") {
            return Err(BackupError::NotHearths(dump.to_owned()));
        }
        Ok(())
    }

    async fn list_contents(&self, dump: &Path) -> Result<String, BackupError> {
        let mut command = self.tool("pg_restore");
        command.arg("--list").arg(dump);
        run(command, "pg_restore --list").await
    }

    /// The dump moved into place, its size and digest in the manifest, the manifest written beside it.
    fn seal(&self, partial: &Path, mut manifest: BackupManifest) -> Result<BackupManifest, BackupError> {
        let (bytes, sha256) = digest(partial).map_err(|source| self.dir_error(source))?;
        manifest.bytes = bytes;
        manifest.sha256 = sha256;
        let path = manifest.path(&self.config.dir);
        std::fs::rename(partial, &path).map_err(|source| self.dir_error(source))?;
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Manifest {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_atomically(&manifest_path(&path), &json).map_err(|source| self.dir_error(source))?;
        Ok(manifest)
    }

    /// Removes the oldest dumps beyond `backup.keep`; a dump that cannot be removed is logged and kept.
    fn prune(&self) {
        for old in self.list().into_iter().skip(self.config.keep) {
            let path = old.path(&self.config.dir);
            for file in [manifest_path(&path), path.clone()] {
                if let Err(error) = std::fs::remove_file(&file) {
                    tracing::warn!(%error, file = %file.display(), "cannot remove an old backup");
                }
            }
            tracing::info!(file = %path.display(), "removed an old backup (backup.keep)");
        }
    }

    /// Restores `dump` into the database in one transaction: everything hearth made is dropped and the dump's
    /// statements run; any error rolls all of it back. Refuses while other sessions use the database, and takes a
    /// dump of the present state first, so a restore can itself be undone.
    pub async fn restore(&self, pool: &PgPool, dump: &Path) -> Result<RestoreReport, BackupError> {
        let manifest = read_manifest(dump)?;
        if let Some(manifest) = &manifest {
            check_digest(dump, manifest)?;
        }
        self.verify(dump).await?;
        let sessions = sessions_after_settling(pool).await?;
        if !sessions.is_empty() {
            let sessions = sessions
                .iter()
                .map(|(pid, app, role)| format!("pid {pid} {app:?} as {role}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(BackupError::InUse { sessions });
        }
        let (applied, _) = crate::store::schema_version(pool).await?;
        let safety = match applied {
            Some(schema) => Some(
                self.dump_unpruned(pool, BackupReason::BeforeRestore, schema, None)
                    .await?,
            ),
            None => None,
        };
        let script = self.restore_script(pool, dump).await?;
        let mut command = self.tool("psql");
        command
            .args([
                "-X",
                "-q",
                "--no-password",
                "--single-transaction",
                "-v",
                "ON_ERROR_STOP=1",
                "-f",
            ])
            .arg(script.drops.path())
            .arg("-f")
            .arg(script.statements.path());
        run(command, "psql (the restore's transaction)").await?;
        let (restored, _) = crate::store::schema_version(pool).await?;
        Ok(RestoreReport {
            restored_schema: restored,
            replaced_schema: applied,
            safety,
        })
    }

    /// The drops, then the dump's statements without the extension's (pgvector stays; creating or commenting
    /// on it needs a superuser).
    async fn restore_script(&self, pool: &PgPool, dump: &Path) -> Result<RestoreScript, BackupError> {
        let listing = self.list_contents(dump).await?;
        let kept: String = listing
            .lines()
            .filter(|line| !line.contains(" EXTENSION "))
            .map(|line| format!("{line}\n"))
            .collect();
        let list = tempfile::NamedTempFile::new().map_err(|source| self.dir_error(source))?;
        std::fs::write(list.path(), kept).map_err(|source| self.dir_error(source))?;
        let script = tempfile::NamedTempFile::new().map_err(|source| self.dir_error(source))?;
        let mut drops = crate::store::schema::drop_statements(pool).await?.join("\n");
        drops.push('\n');
        std::fs::write(script.path(), drops).map_err(|source| self.dir_error(source))?;
        // The dump's statements go to a file beside the dumps (the dump's size, uncompressed), not into memory.
        let statements = tempfile::Builder::new()
            .prefix(".hearth-restore-")
            .suffix(".sql")
            .tempfile_in(&self.config.dir)
            .map_err(|source| self.dir_error(source))?;
        let mut command = self.tool("pg_restore");
        command
            .arg("--use-list")
            .arg(list.path())
            .arg("--file")
            .arg(statements.path())
            .arg(dump);
        run(command, "pg_restore").await?;
        Ok(RestoreScript {
            drops: script,
            statements,
        })
    }

    fn tool(&self, name: &str) -> Command {
        let program = self
            .config
            .postgres_bin
            .as_ref()
            .map_or_else(|| PathBuf::from(name), |dir| dir.join(name));
        let mut command = Command::new(program);
        command
            .envs(self.libpq_env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    fn ensure_dir(&self) -> Result<(), BackupError> {
        let dir = &self.config.dir;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| self.dir_error(source))
    }

    fn dir_error(&self, source: std::io::Error) -> BackupError {
        BackupError::Dir {
            dir: self.config.dir.clone(),
            source,
        }
    }
}

use std::os::unix::fs::DirBuilderExt;

/// A restore's two scripts: the drops, then the dump's statements.
struct RestoreScript {
    drops: tempfile::NamedTempFile,
    statements: tempfile::NamedTempFile,
}

/// Other sessions on the database, waiting up to 10 s for those still closing (a hearthd just stopped).
async fn sessions_after_settling(pool: &PgPool) -> Result<Vec<(i32, String, String)>, BackupError> {
    let mut waited = 0;
    loop {
        let sessions = crate::store::schema::other_sessions(pool).await?;
        if sessions.is_empty() || waited >= 10 {
            return Ok(sessions);
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        waited += 1;
    }
}

/// The tools' view of hearth's database, and one connection of the given name (not `hearthd`'s, so a restore
/// does not take itself for a running hearthd).
async fn connect(
    config: &crate::config::Config,
    credentials_dir: Option<&Path>,
) -> Result<(Backups, PgPool), BackupError> {
    let env = crate::database::libpq_env(&config.database, credentials_dir)?;
    let options = crate::database::connect_options(&config.database, credentials_dir)?
        .application_name("hearth-maintenance");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(crate::store::StoreError::from)?;
    Ok((Backups::new(config.backup.clone(), env), pool))
}

/// `hearthd backup`: a verified dump of the database as it is now.
pub async fn dump_now(
    config: &crate::config::Config,
    credentials_dir: Option<&Path>,
) -> Result<(PathBuf, BackupManifest), BackupError> {
    let (backups, pool) = connect(config, credentials_dir).await?;
    let (applied, _) = crate::store::schema_version(&pool).await?;
    let manifest = backups
        .dump(&pool, BackupReason::Manual, applied.unwrap_or(0), None)
        .await?;
    Ok((manifest.path(backups.dir()), manifest))
}

/// `hearthd restore <dump>`: see [`Backups::restore`].
pub async fn restore_now(
    config: &crate::config::Config,
    credentials_dir: Option<&Path>,
    dump: &Path,
) -> Result<RestoreReport, BackupError> {
    let (backups, pool) = connect(config, credentials_dir).await?;
    backups.restore(&pool, dump).await
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub restored_schema: Option<i64>,
    pub replaced_schema: Option<i64>,
    /// The dump of what the restore replaced.
    pub safety: Option<BackupManifest>,
}

/// Runs a tool to the end; its stdout on success, its stderr's tail in the error.
async fn run(mut command: Command, what: &str) -> Result<String, BackupError> {
    let program = PathBuf::from(command.as_std().get_program());
    let output = command
        .output()
        .await
        .map_err(|source| BackupError::Spawn { program, source })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String = stderr
            .lines()
            .rev()
            .take(6)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" | ");
        return Err(BackupError::Tool {
            program: what.to_owned(),
            status: output.status.to_string(),
            stderr: tail,
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Every manifest in `dir`, newest first.
pub fn list(dir: &Path) -> Vec<BackupManifest> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<BackupManifest> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json") && is_dump_name(path))
        .filter_map(|path| match read_manifest_file(&path) {
            Ok(manifest) => Some(manifest),
            Err(error) => {
                tracing::warn!(%error, "skipping a backup manifest");
                None
            }
        })
        .filter(|manifest| dir.join(&manifest.file).is_file())
        .collect();
    found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.file.cmp(&a.file)));
    found
}

fn is_dump_name(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with("hearth-") && name.ends_with(".dump.json"))
}

fn manifest_path(dump: &Path) -> PathBuf {
    let mut name = dump.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// The manifest beside `dump`, if there is one.
pub fn read_manifest(dump: &Path) -> Result<Option<BackupManifest>, BackupError> {
    let path = manifest_path(dump);
    if !path.exists() {
        return Ok(None);
    }
    read_manifest_file(&path).map(Some)
}

fn read_manifest_file(path: &Path) -> Result<BackupManifest, BackupError> {
    let text = std::fs::read(path).map_err(|e| BackupError::Manifest {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    serde_json::from_slice(&text).map_err(|e| BackupError::Manifest {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn check_digest(dump: &Path, manifest: &BackupManifest) -> Result<(), BackupError> {
    let (_, actual) = digest(dump).map_err(|source| BackupError::Dir {
        dir: dump.to_owned(),
        source,
    })?;
    if actual != manifest.sha256 {
        return Err(BackupError::Corrupt {
            file: dump.to_owned(),
            expected: manifest.sha256.clone(),
            actual,
        });
    }
    Ok(())
}

fn digest(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher)?;
    Ok((bytes, hex::encode(hasher.finalize())))
}

/// `hearth-20261202T171000Z-schema7-to8-<generation hash>.dump`: sortable by time, and saying what it holds.
fn file_name(
    at: DateTime<Utc>,
    reason: BackupReason,
    schema: i64,
    migrating_to: Option<i64>,
    system: Option<&str>,
) -> String {
    let what = match (reason, migrating_to) {
        (_, Some(to)) => format!("schema{schema}-to{to}"),
        (BackupReason::BeforeRestore, None) => format!("schema{schema}-before-restore"),
        (_, None) => format!("schema{schema}-manual"),
    };
    let generation = system
        .and_then(|name| name.split('-').next())
        .map(|hash| format!("-{}", &hash[..hash.len().min(8)]))
        .unwrap_or_default();
    format!(
        "hearth-{}-{what}{generation}.dump",
        at.format("%Y%m%dT%H%M%S%.3fZ")
    )
}

/// The running NixOS generation's store path name, off NixOS none.
pub fn current_system() -> Option<String> {
    let target = std::fs::read_link("/run/current-system").ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let stat = rustix::fs::statvfs(dir)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Writes `bytes` to `path` through a synced temporary file and a rename, then syncs the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut temp, bytes)?;
    temp.as_file().sync_all()?;
    std::fs::set_permissions(temp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    temp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dumps_name_says_when_what_and_which_generation() {
        let at = DateTime::parse_from_rfc3339("2026-12-02T17:10:00.25Z")
            .expect("time")
            .to_utc();
        let name = file_name(
            at,
            BackupReason::BeforeMigrate,
            7,
            Some(8),
            Some("abcdef0123456789-nixos-system-hearth-26.11"),
        );
        assert_eq!(name, "hearth-20261202T171000.250Z-schema7-to8-abcdef01.dump");
        assert_eq!(
            file_name(at, BackupReason::Manual, 8, None, None),
            "hearth-20261202T171000.250Z-schema8-manual.dump"
        );
        assert!(is_dump_name(&manifest_path(Path::new(&format!("/b/{name}")))));
    }
}
