//! The real hearthd binary on a free loopback port, configured through `HEARTH_*` variables.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use rustix::process::Signal;

use crate::process::{self};
use crate::{Deps, KitError};

const START_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct TestHearthd {
    child: Child,
    /// `http://127.0.0.1:<port>`
    pub url: String,
    log: tempfile::NamedTempFile,
    /// Where this hearthd keeps originals unless the caller set `HEARTH_BLOBS__PATH`.
    pub blob_dir: std::path::PathBuf,
    _blobs: tempfile::TempDir,
    /// Where this hearthd writes its database dumps unless the caller set `HEARTH_BACKUP__DIR`.
    pub backup_dir: std::path::PathBuf,
    _backups: tempfile::TempDir,
}

impl TestHearthd {
    /// Starts `bin serve` against `database_url` with the test model, plus `extra` `HEARTH_*` settings (`HEARTH_LISTEN`
    /// among them pins the address; else a free loopback port), and waits
    /// until it listens (the model may still be loading: poll `/readyz` for that).
    pub fn start(bin: &Path, database_url: &str, extra: &[(&str, &str)]) -> Result<Self, KitError> {
        let deps = Deps::load()?;
        // A caller may pin the address (a restart that must come back where its clients look for it).
        let listen = match extra.iter().find(|(key, _)| *key == "HEARTH_LISTEN") {
            Some((_, address)) => (*address).to_owned(),
            None => format!("127.0.0.1:{}", process::free_port()?),
        };
        let log = tempfile::NamedTempFile::new().map_err(KitError::io("creating the hearthd log"))?;
        let blobs = tempfile::Builder::new()
            .prefix("hearth-blobs-")
            .tempdir()
            .map_err(KitError::io("creating the blob directory"))?;
        let blob_dir = extra
            .iter()
            .find(|(key, _)| *key == "HEARTH_BLOBS__PATH")
            .map_or_else(|| blobs.path().to_owned(), |(_, value)| value.into());
        let backups = tempfile::Builder::new()
            .prefix("hearth-backups-")
            .tempdir()
            .map_err(KitError::io("creating the backup directory"))?;
        let backup_dir = extra
            .iter()
            .find(|(key, _)| *key == "HEARTH_BACKUP__DIR")
            .map_or_else(|| backups.path().join("backups"), |(_, value)| value.into());
        let stdout = log.reopen().map_err(KitError::io("opening the hearthd log"))?;
        let stderr = log.reopen().map_err(KitError::io("opening the hearthd log"))?;
        let mut command = process::tied_command(bin, false);
        command
            .arg("serve")
            .env("HEARTH_LISTEN", &listen)
            .env("HEARTH_DATABASE__URL", database_url)
            .env("HEARTH_EMBEDDING__MODEL_DIR", &deps.test_model_dir)
            .env("HEARTH_EMBEDDING__ONNXRUNTIME", &deps.ort_dylib)
            .env("HEARTH_LOG", "info")
            .env("HEARTH_BLOBS__PATH", blobs.path())
            .env("HEARTH_BACKUP__DIR", backups.path().join("backups"))
            .env("HEARTH_BACKUP__POSTGRES_BIN", &deps.postgres_bin)
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let child = command
            .spawn()
            .map_err(KitError::io(format!("starting {}", bin.display())))?;
        let mut hearthd = Self {
            child,
            url: format!("http://{listen}"),
            log,
            blob_dir,
            _blobs: blobs,
            backup_dir,
            _backups: backups,
        };
        let mut exited = false;
        let listening = process::wait_until(START_TIMEOUT, || {
            if matches!(hearthd.child.try_wait(), Ok(Some(_))) {
                exited = true;
                return true;
            }
            TcpStream::connect(listen.as_str()).is_ok()
        });
        if !listening || exited {
            return Err(KitError::NotReady {
                service: "hearthd",
                seconds: START_TIMEOUT.as_secs(),
                log_tail: hearthd.log_text(),
            });
        }
        Ok(hearthd)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything hearthd has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// SIGKILL, as a power cut or the OOM killer would: no shutdown code runs.
    pub fn kill(&mut self) {
        process::signal_and_wait(&mut self.child, Signal::KILL, Duration::from_secs(5));
    }

    /// SIGTERM and wait; returns whether it exited within the timeout.
    pub fn terminate(&mut self) -> bool {
        process::signal_and_wait(&mut self.child, Signal::TERM, Duration::from_secs(10))
    }
}

impl Drop for TestHearthd {
    fn drop(&mut self) {
        process::signal_and_wait(&mut self.child, Signal::KILL, Duration::from_secs(5));
    }
}
