//! A private PostgreSQL cluster with pgvector: initdb in a temporary directory, listening only on a unix socket
//! inside it, stopped and removed on drop (also when a test panics).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{self, UNPRIVILEGED_GID, UNPRIVILEGED_UID, run};
use crate::{Deps, KitError};

/// The database every test database is cloned from; it already has `CREATE EXTENSION vector`, which must run as
/// superuser (pgvector is not a trusted extension).
const TEMPLATE_DB: &str = "hearth_template";
const SUPERUSER: &str = "postgres";
const START_TIMEOUT: Duration = Duration::from_secs(60);

static NEXT_DB: AtomicU32 = AtomicU32::new(0);

#[derive(Debug)]
pub struct TestPostgres {
    bin: PathBuf,
    port: u16,
    run_as_unprivileged: bool,
    running: bool,
    // Dropped last: the directory goes only after the server has stopped.
    dir: TempDir,
}

impl TestPostgres {
    /// initdb + start + a template database with pgvector.
    pub fn start() -> Result<Self, KitError> {
        let deps = Deps::load()?;
        Self::start_with(&deps.postgres_bin)
    }

    pub fn start_with(bin: &Path) -> Result<Self, KitError> {
        let dir = tempfile::Builder::new()
            .prefix("hearth-pg-")
            .tempdir()
            .map_err(KitError::io("creating a temporary directory for PostgreSQL"))?;
        let run_as_unprivileged = process::running_as_root();
        if run_as_unprivileged {
            std::os::unix::fs::chown(dir.path(), Some(UNPRIVILEGED_UID), Some(UNPRIVILEGED_GID))
                .map_err(KitError::io("handing the PostgreSQL directory to nobody"))?;
        }
        // Only the unix socket is used, so the port merely names the socket file; a free TCP port keeps the
        // option of TCP open without a clash.
        let mut postgres = Self {
            bin: bin.to_owned(),
            port: process::free_port()?,
            run_as_unprivileged,
            running: false,
            dir,
        };
        postgres.initdb()?;
        postgres.start_server()?;
        postgres.psql(
            "postgres",
            &format!("CREATE DATABASE {TEMPLATE_DB} IS_TEMPLATE true"),
        )?;
        postgres.psql(TEMPLATE_DB, "CREATE EXTENSION vector")?;
        Ok(postgres)
    }

    /// Directory holding the server's unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's process id while the server runs.
    pub fn server_pid(&self) -> Option<u32> {
        let pid_file = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        pid_file.lines().next()?.trim().parse().ok()
    }

    /// A connection URL for `database` over the unix socket, as the superuser.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@localhost/{database}?host={}&port={}",
            self.socket_dir().display(),
            self.port
        )
    }

    /// A fresh database cloned from the pgvector template; returns its connection URL.
    pub fn create_database(&self) -> Result<String, KitError> {
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}"),
        )?;
        Ok(self.url(&name))
    }

    /// Runs SQL through the real `psql`, as the superuser.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, KitError> {
        run(Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", SUPERUSER])
            .arg("-h")
            .arg(self.socket_dir())
            .args(["-p", &self.port.to_string(), "-d", database, "-c", sql]))
    }

    /// Stops the server the way a power cut would (`immediate`: no checkpoint), for crash tests.
    pub fn crash(&mut self) -> Result<(), KitError> {
        self.pg_ctl_stop("immediate")
    }

    /// Stops the server cleanly.
    pub fn stop(&mut self) -> Result<(), KitError> {
        self.pg_ctl_stop("fast")
    }

    /// Starts a stopped server again on the same directory and socket.
    pub fn restart(&mut self) -> Result<(), KitError> {
        if self.running {
            self.stop()?;
        }
        self.start_server()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        if self.run_as_unprivileged {
            command.uid(UNPRIVILEGED_UID).gid(UNPRIVILEGED_GID);
        }
        // Never pick up a developer's own PG* settings.
        for var in ["PGHOST", "PGPORT", "PGDATA", "PGUSER", "PGDATABASE", "PGOPTIONS"] {
            command.env_remove(var);
        }
        command
    }

    fn initdb(&self) -> Result<(), KitError> {
        run(self.command("initdb").arg("-D").arg(self.data_dir()).args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ]))?;
        Ok(())
    }

    fn start_server(&mut self) -> Result<(), KitError> {
        // fsync stays at its default so crash tests exercise the same write-ahead path as production.
        let options = format!(
            "-c listen_addresses='' -k {} -p {} -c max_connections=60 -c shared_buffers=32MB",
            self.socket_dir().display(),
            self.port
        );
        let started = run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_file())
            .args([
                "-w",
                "-t",
                &START_TIMEOUT.as_secs().to_string(),
                "-o",
                &options,
                "start",
            ]));
        if let Err(error) = started {
            return Err(KitError::NotReady {
                service: "PostgreSQL",
                seconds: START_TIMEOUT.as_secs(),
                log_tail: format!("{error}\n{}", process::log_tail(&self.log_file(), 20)),
            });
        }
        self.running = true;
        Ok(())
    }

    fn pg_ctl_stop(&mut self, mode: &str) -> Result<(), KitError> {
        if !self.running {
            return Ok(());
        }
        run(self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-w", "-m", mode, "stop"]))?;
        self.running = false;
        Ok(())
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // Best effort: a failure here must not turn a passing test into a double panic.
        let _ = self.pg_ctl_stop("immediate");
    }
}
