//! The secrets directory: one file per secret, created only where missing, each written atomically and durably.
//!
//! Every write goes to a temporary name in the same directory (O_EXCL, mode 0400 from the first byte), is fsynced,
//! renamed into place without replacing anything, and the directory is fsynced. A crash at any point leaves either
//! no file or a complete one; leftover temporary files are removed by the next run.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};
use rustix::io::Errno;
use zeroize::Zeroizing;

use crate::secrets::{self, RandomError, Secret, SecretSpec};

/// Bumped whenever [`secrets::SECRETS`] changes, so that an upgraded system whose sentinel predates the new table
/// runs first boot again and mints only what is new. `tests::the_sentinel_version_tracks_the_secret_table`
/// fails until it is bumped.
pub const SECRET_SET_VERSION: u32 = 2;

const TEMP_MARKER: &str = ".tmp-";

/// The console note [`SecretsDir::write_console_issue`] writes.
pub const CONSOLE_ISSUE: &str = "console.issue";

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the secrets directory {path} {problem}")]
    UnsafeDirectory { path: PathBuf, problem: String },
    #[error(
        "refusing to go on: {} existing secret(s) cannot be used (nothing was regenerated, since services may \
         already depend on them):\n{}\nfix the file(s) or regenerate explicitly with `--repair <name>`",
        .0.len(), .0.iter().map(|(name, problem)| format!("  {name}: {problem}")).collect::<Vec<_>>().join("\n")
    )]
    BadSecrets(Vec<(String, String)>),
    #[error("unknown secret '{name}'; the secrets are: {known}")]
    UnknownSecret { name: String, known: String },
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error(
        "--seal needs `systemd-creds` (systemd 250 or later), which is not on PATH; run without --seal and \
         services read the 0400 files through LoadCredential="
    )]
    SealUnavailable,
    #[error("systemd-creds could not seal {name}: {detail}")]
    SealFailed { name: String, detail: String },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> MintError {
    let path = path.to_owned();
    move |source| MintError::Io { action, path, source }
}

fn errno(action: &'static str, path: &Path) -> impl FnOnce(Errno) -> MintError {
    let wrap = io_error(action, path);
    move |e| wrap(e.into())
}

/// What a run did, or found, for one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretState {
    Missing,
    Present { fingerprint: String, mode: u32 },
    Unusable { problem: String },
    Created { fingerprint: String },
    Repaired { old: Option<String>, new: String },
}

#[derive(Debug)]
pub struct MintReport {
    pub secrets: Vec<(&'static SecretSpec, SecretState)>,
    pub sentinel: PathBuf,
    pub sentinel_written: bool,
    pub sealed: Vec<&'static str>,
}

impl MintReport {
    pub fn changed_anything(&self) -> bool {
        self.sentinel_written
            || !self.sealed.is_empty()
            || self
                .secrets
                .iter()
                .any(|(_, state)| matches!(state, SecretState::Created { .. } | SecretState::Repaired { .. }))
    }
}

#[derive(Debug, Clone, Default)]
pub struct MintOptions {
    pub postgres_over_tcp: bool,
    /// Secrets to regenerate even though they exist.
    pub repair: Vec<String>,
    /// Also write `systemd-creds`-encrypted copies under `sealed/`.
    pub seal: bool,
}

#[derive(Debug)]
pub struct SecretsDir {
    path: PathBuf,
}

impl SecretsDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn sentinel_path(&self, postgres_over_tcp: bool) -> PathBuf {
        let suffix = if postgres_over_tcp { "-tcp" } else { "" };
        self.path.join(format!(".minted-v{SECRET_SET_VERSION}{suffix}"))
    }

    /// Reads a secret that exists and passes every check.
    pub fn read(&self, name: &str) -> Result<Secret, MintError> {
        let spec = known(name)?;
        let dir = self.open_existing()?;
        match self.inspect_one(&dir, spec)? {
            (SecretState::Present { .. }, Some(secret)) => Ok(secret),
            (SecretState::Missing, _) => Err(MintError::BadSecrets(vec![(
                name.into(),
                "does not exist: run `hearth-firstboot mint`".into(),
            )])),
            (SecretState::Unusable { problem }, _) => {
                Err(MintError::BadSecrets(vec![(name.into(), problem)]))
            }
            _ => unreachable_state(name),
        }
    }

    /// The state of every needed secret, without changing anything.
    pub fn inspect(
        &self,
        postgres_over_tcp: bool,
    ) -> Result<Vec<(&'static SecretSpec, SecretState)>, MintError> {
        let dir = match self.open_existing() {
            Ok(dir) => dir,
            Err(MintError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(secrets::needed(postgres_over_tcp)
                    .map(|spec| (spec, SecretState::Missing))
                    .collect());
            }
            Err(error) => return Err(error),
        };
        secrets::needed(postgres_over_tcp)
            .map(|spec| Ok((spec, self.inspect_one(&dir, spec)?.0)))
            .collect()
    }

    /// Creates every missing secret, regenerates those named in `repair`, and fails, changing nothing, when an
    /// existing one is unusable.
    pub fn mint(&self, options: &MintOptions) -> Result<MintReport, MintError> {
        for name in &options.repair {
            known(name)?;
        }
        if options.seal && which("systemd-creds").is_none() {
            return Err(MintError::SealUnavailable);
        }
        let dir = self.open_or_create()?;
        self.remove_leftover_temporaries()?;

        let needed: Vec<&'static SecretSpec> = secrets::needed(options.postgres_over_tcp)
            .chain(options.repair.iter().filter_map(|name| secrets::spec(name)))
            .fold(Vec::new(), |mut all, spec| {
                if !all.iter().any(|s: &&SecretSpec| s.name == spec.name) {
                    all.push(spec);
                }
                all
            });
        let mut found = Vec::new();
        let mut bad = Vec::new();
        for spec in needed {
            let (state, _) = self.inspect_one(&dir, spec)?;
            if let SecretState::Unusable { problem } = &state
                && !options.repair.iter().any(|name| name == spec.name)
            {
                bad.push((spec.name.to_owned(), problem.clone()));
            }
            found.push((spec, state));
        }
        if !bad.is_empty() {
            return Err(MintError::BadSecrets(bad));
        }

        let mut report = Vec::new();
        for (spec, state) in found {
            let repair = options.repair.iter().any(|name| name == spec.name);
            let state = match state {
                SecretState::Missing => {
                    let secret = spec.generate()?;
                    let fingerprint = secret.fingerprint();
                    match self.write(&dir, spec.name, secret.expose(), Replace::Never)? {
                        Written::Yes => SecretState::Created { fingerprint },
                        // Another run created it first: keep theirs.
                        Written::AlreadyThere => self.inspect_one(&dir, spec)?.0,
                    }
                }
                SecretState::Present { fingerprint, .. } if repair => {
                    self.regenerate(&dir, spec, Some(fingerprint))?
                }
                SecretState::Unusable { .. } if repair => self.regenerate(&dir, spec, None)?,
                other => other,
            };
            report.push((spec, state));
        }

        crash_point("before-sentinel");
        let sentinel = self.sentinel_path(options.postgres_over_tcp);
        let sentinel_written = if sentinel.exists() {
            false
        } else {
            let names: Vec<&str> = report.iter().map(|(spec, _)| spec.name).collect();
            let body = format!(
                "minted by hearth-firstboot {}; secrets: {}\n",
                env!("CARGO_PKG_VERSION"),
                names.join(" ")
            );
            let file_name = sentinel.file_name().and_then(|n| n.to_str()).unwrap_or(".minted");
            matches!(
                self.write(&dir, file_name, body.as_bytes(), Replace::Never)?,
                Written::Yes
            )
        };

        let sealed = if options.seal {
            self.seal(
                report
                    .iter()
                    .map(|(spec, state)| (spec.name, matches!(state, SecretState::Repaired { .. }))),
            )?
        } else {
            Vec::new()
        };
        Ok(MintReport {
            secrets: report,
            sentinel,
            sentinel_written,
            sealed,
        })
    }

    fn regenerate(
        &self,
        dir: &OwnedFd,
        spec: &'static SecretSpec,
        old: Option<String>,
    ) -> Result<SecretState, MintError> {
        let secret = spec.generate()?;
        self.write(dir, spec.name, secret.expose(), Replace::Always)?;
        Ok(SecretState::Repaired {
            old,
            new: secret.fingerprint(),
        })
    }

    fn open_existing(&self) -> Result<OwnedFd, MintError> {
        let dir = rustix::fs::open(
            &self.path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno("opening the secrets directory", &self.path))?;
        let stat = rustix::fs::fstat(&dir).map_err(errno("inspecting", &self.path))?;
        let mode = stat.st_mode & 0o7777;
        if mode & 0o077 != 0 {
            return Err(MintError::UnsafeDirectory {
                path: self.path.clone(),
                problem: format!("is accessible to group or others (mode {mode:04o}); `chmod 0700` it"),
            });
        }
        let owner = rustix::process::geteuid().as_raw();
        if stat.st_uid != owner {
            return Err(MintError::UnsafeDirectory {
                path: self.path.clone(),
                problem: format!("is owned by uid {}, not by uid {owner} running this", stat.st_uid),
            });
        }
        Ok(dir)
    }

    fn open_or_create(&self) -> Result<OwnedFd, MintError> {
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).map_err(io_error("creating", parent))?;
        }
        match rustix::fs::mkdir(&self.path, Mode::from_raw_mode(0o700)) {
            Ok(()) => {
                if let Some(parent) = self.path.parent() {
                    fsync_path(parent)?;
                }
            }
            Err(Errno::EXIST) => {}
            Err(e) => return Err(errno("creating the secrets directory", &self.path)(e)),
        }
        self.open_existing()
    }

    fn remove_leftover_temporaries(&self) -> Result<(), MintError> {
        let entries = std::fs::read_dir(&self.path).map_err(io_error("reading", &self.path))?;
        for entry in entries {
            let entry = entry.map_err(io_error("reading", &self.path))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.contains(TEMP_MARKER) {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(io_error("removing the leftover", &path))?;
            }
        }
        Ok(())
    }

    /// Reads and judges one secret. The secret is returned only when it is usable.
    fn inspect_one(
        &self,
        dir: &OwnedFd,
        spec: &SecretSpec,
    ) -> Result<(SecretState, Option<Secret>), MintError> {
        let path = self.path.join(spec.name);
        let fd = match rustix::fs::openat(
            dir,
            spec.name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok((SecretState::Missing, None)),
            Err(Errno::LOOP) => {
                return Ok((
                    SecretState::Unusable {
                        problem: "is a symbolic link; secrets must be regular files".into(),
                    },
                    None,
                ));
            }
            Err(e) => return Err(errno("opening", &path)(e)),
        };
        let stat = rustix::fs::fstat(&fd).map_err(errno("inspecting", &path))?;
        let unusable = |problem: String| Ok((SecretState::Unusable { problem }, None));
        if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
            return unusable("is not a regular file".into());
        }
        let mode = stat.st_mode & 0o7777;
        if mode & 0o077 != 0 {
            return unusable(format!(
                "is readable or writable by group/others (mode {mode:04o}); `chmod 0400` it"
            ));
        }
        let owner = rustix::process::geteuid().as_raw();
        if stat.st_uid != owner {
            return unusable(format!("is owned by uid {}, expected {owner}", stat.st_uid));
        }
        let mut bytes = Zeroizing::new(Vec::new());
        File::from(fd)
            .read_to_end(&mut bytes)
            .map_err(io_error("reading", &path))?;
        if let Some(problem) = spec.problem(&bytes) {
            return unusable(problem);
        }
        let secret = Secret::new(bytes.to_vec());
        Ok((
            SecretState::Present {
                fingerprint: secret.fingerprint(),
                mode,
            },
            Some(secret),
        ))
    }

    /// Writes the console's sign-in note (`agetty` shows `/etc/issue.d/*.issue`, which NixOS links here): the
    /// address to open and the setup code. Root-only like the secrets; rewritten on every run, so a repaired code
    /// shows at the next prompt.
    pub fn write_console_issue(&self, port: u16) -> Result<PathBuf, MintError> {
        let code = self.read("setup-code")?;
        let code = String::from_utf8_lossy(code.expose());
        // agetty replaces `\4` with the machine's IPv4 address.
        let text = format!(
            "hearth: open http://\\4:{port}/ (or http://hearth.local:{port}/) in a browser on this network\n\
             hearth: and sign in with the setup code  {code}\n\n"
        );
        let dir = self.open_existing()?;
        self.write(&dir, CONSOLE_ISSUE, text.as_bytes(), Replace::Always)?;
        Ok(self.path.join(CONSOLE_ISSUE))
    }

    fn write(&self, dir: &OwnedFd, name: &str, bytes: &[u8], replace: Replace) -> Result<Written, MintError> {
        let temp = format!(".{name}{TEMP_MARKER}{}", std::process::id());
        let temp_path = self.path.join(&temp);
        let fd = rustix::fs::openat(
            dir,
            &temp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o400),
        )
        .map_err(errno("creating", &temp_path))?;
        let mut file = File::from(fd);
        file.write_all(bytes).map_err(io_error("writing", &temp_path))?;
        file.sync_all().map_err(io_error("syncing", &temp_path))?;
        drop(file);
        crash_point(&format!("before-rename:{name}"));

        let target = self.path.join(name);
        let renamed = match replace {
            Replace::Always => rustix::fs::renameat(dir, &temp, dir, name),
            Replace::Never => rename_no_replace(dir, &temp, name),
        };
        let written = match renamed {
            Ok(()) => Written::Yes,
            Err(Errno::EXIST) => {
                rustix::fs::unlinkat(dir, &temp, AtFlags::empty()).map_err(errno("removing", &temp_path))?;
                Written::AlreadyThere
            }
            Err(e) => return Err(errno("renaming into place", &target)(e)),
        };
        crash_point(&format!("after-rename:{name}"));
        rustix::fs::fsync(dir).map_err(errno("syncing", &self.path))?;
        Ok(written)
    }

    /// Writes the sealed copy of each named secret that has none, or whose copy is older than the secret: the
    /// secret was repaired (now, `repaired`, or by an earlier run without `--seal`), and a unit loading the stale
    /// copy with `LoadCredentialEncrypted=` would get the old value.
    fn seal<'a>(&self, names: impl Iterator<Item = (&'a str, bool)>) -> Result<Vec<&'a str>, MintError> {
        let sealed_dir = SecretsDir::new(self.path.join("sealed"));
        let dir = sealed_dir.open_or_create()?;
        sealed_dir.remove_leftover_temporaries()?;
        let mut sealed = Vec::new();
        for (name, repaired) in names {
            let file_name = format!("{name}.cred");
            let target = sealed_dir.path.join(&file_name);
            let existing = match std::fs::symlink_metadata(&target) {
                Ok(metadata) => Some(metadata),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_error("inspecting", &target)(e)),
            };
            let stale = match &existing {
                None => false,
                Some(copy) => {
                    let secret = std::fs::metadata(self.path.join(name))
                        .map_err(io_error("inspecting", &self.path.join(name)))?;
                    repaired || modified(&secret) > modified(copy)
                }
            };
            if existing.is_some() && !stale {
                continue;
            }
            let temp_path = sealed_dir
                .path
                .join(format!(".{file_name}{TEMP_MARKER}{}", std::process::id()));
            // The default key choice is TPM2 when one is present, the host key otherwise.
            let output = Command::new("systemd-creds")
                .arg("encrypt")
                .arg(format!("--name={name}"))
                .arg(self.path.join(name))
                .arg(&temp_path)
                .output()
                .map_err(io_error("running systemd-creds for", &temp_path))?;
            if !output.status.success() {
                let _ = std::fs::remove_file(&temp_path);
                return Err(MintError::SealFailed {
                    name: name.into(),
                    detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
                });
            }
            rustix::fs::chmod(&temp_path, Mode::from_raw_mode(0o400)).map_err(errno("chmod", &temp_path))?;
            File::open(&temp_path)
                .and_then(|file| file.sync_all())
                .map_err(io_error("syncing", &temp_path))?;
            let temp_name = temp_path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let renamed = if stale {
                rustix::fs::renameat(&dir, temp_name, &dir, file_name.as_str())
            } else {
                rename_no_replace(&dir, temp_name, &file_name)
            };
            match renamed {
                Ok(()) => sealed.push(name),
                Err(Errno::EXIST) => {
                    let _ = std::fs::remove_file(&temp_path);
                }
                Err(e) => return Err(errno("renaming into place", &sealed_dir.path.join(&file_name))(e)),
            }
            rustix::fs::fsync(&dir).map_err(errno("syncing", &sealed_dir.path))?;
        }
        Ok(sealed)
    }
}

#[derive(Debug, Clone, Copy)]
enum Replace {
    Never,
    Always,
}

#[derive(Debug)]
enum Written {
    Yes,
    AlreadyThere,
}

fn known(name: &str) -> Result<&'static SecretSpec, MintError> {
    secrets::spec(name).ok_or_else(|| MintError::UnknownSecret {
        name: name.into(),
        known: secrets::SECRETS
            .iter()
            .map(|spec| spec.name)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

fn unreachable_state(name: &str) -> Result<Secret, MintError> {
    Err(MintError::BadSecrets(vec![(
        name.into(),
        "was in an unexpected state".into(),
    )]))
}

/// Renames without ever replacing an existing file. Filesystems without RENAME_NOREPLACE get link + unlink, which
/// is just as exclusive.
fn modified(metadata: &std::fs::Metadata) -> Option<std::time::SystemTime> {
    metadata.modified().ok()
}

fn rename_no_replace(dir: &impl AsFd, from: &str, to: &str) -> Result<(), Errno> {
    match rustix::fs::renameat_with(dir, from, dir, to, RenameFlags::NOREPLACE) {
        Err(Errno::INVAL | Errno::NOSYS) => {
            rustix::fs::linkat(dir, from, dir, to, AtFlags::empty())?;
            rustix::fs::unlinkat(dir, from, AtFlags::empty())
        }
        other => other,
    }
}

fn fsync_path(path: &Path) -> Result<(), MintError> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno("opening", path))?;
    rustix::fs::fsync(&fd).map_err(errno("syncing", path))
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

/// Test-only: `HEARTH_FIRSTBOOT_CRASH_AT=<point>` makes a debug build SIGKILL itself at that point, so a test can
/// prove that a crash there loses nothing. Release builds have no such hook.
fn crash_point(point: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("HEARTH_FIRSTBOOT_CRASH_AT").is_ok_and(|at| at == point) {
        let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// The table's shape for each [`SECRET_SET_VERSION`]; a change to the table needs a new entry and a bump.
    const KNOWN_TABLES: &[(u32, &str)] = &[(1, "0dc777"), (2, "acb695")];

    #[test]
    fn the_sentinel_version_tracks_the_secret_table() {
        let shape: String = secrets::SECRETS
            .iter()
            .map(|spec| format!("{}:{:?}:{:?};", spec.name, spec.format, spec.need))
            .collect();
        let fingerprint = hex::encode(&Sha256::digest(shape.as_bytes())[..3]);
        assert_eq!(
            KNOWN_TABLES
                .iter()
                .find(|(v, _)| *v == SECRET_SET_VERSION)
                .map(|(_, f)| *f),
            Some(fingerprint.as_str()),
            "the secret table changed: bump SECRET_SET_VERSION and record ({}, \"{fingerprint}\")",
            SECRET_SET_VERSION + 1
        );
    }
}
