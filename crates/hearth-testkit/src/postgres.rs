//! A private PostgreSQL cluster with pgvector: initdb in a temporary directory, the postmaster run as the kit's own
//! child listening only on a unix socket inside that directory, stopped and removed on drop (also when a test
//! panics) and killed with the test process (see `tied_command`).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rustix::process::Signal;
use tempfile::TempDir;

use crate::process::{self, UNPRIVILEGED_GID, UNPRIVILEGED_UID, run};
use crate::{Deps, KitError};

/// The database every test database is cloned from; it already has `CREATE EXTENSION vector`, which must run as
/// superuser (pgvector is not a trusted extension).
const TEMPLATE_DB: &str = "hearth_template";
const SUPERUSER: &str = "postgres";
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

static NEXT_DB: AtomicU32 = AtomicU32::new(0);

#[derive(Debug)]
pub struct TestPostgres {
    bin: PathBuf,
    port: u16,
    run_as_unprivileged: bool,
    server: Option<Child>,
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
            server: None,
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
        self.server.as_ref().map(Child::id)
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

    /// A login role that must give `password` (scram-sha-256) over the socket, where everyone else is trusted: a
    /// server that needs a password, for tests of how hearth supplies one. Returns the role's URL for `database`
    /// (without the password).
    pub fn add_password_role(&self, role: &str, password: &str, database: &str) -> Result<String, KitError> {
        self.psql(
            "postgres",
            &format!(
                "CREATE ROLE {role} LOGIN PASSWORD '{password}'; GRANT ALL ON DATABASE {database} TO {role}"
            ),
        )?;
        let hba = self.data_dir().join("pg_hba.conf");
        let rules = std::fs::read_to_string(&hba).map_err(KitError::io("reading pg_hba.conf"))?;
        // The first matching line decides: this one before initdb's `trust` lines.
        std::fs::write(&hba, format!("local all {role} scram-sha-256\n{rules}"))
            .map_err(KitError::io("writing pg_hba.conf"))?;
        self.psql("postgres", "SELECT pg_reload_conf()")?;
        Ok(format!(
            "postgres://{role}@localhost/{database}?host={}&port={}",
            self.socket_dir().display(),
            self.port
        ))
    }

    /// Runs SQL through the real `psql`, as the superuser.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, KitError> {
        run(Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", SUPERUSER])
            .arg("-h")
            .arg(self.socket_dir())
            .args(["-p", &self.port.to_string(), "-d", database, "-c", sql]))
    }

    /// Stops the server the way a power cut would (immediate shutdown: no checkpoint), for crash tests.
    pub fn crash(&mut self) -> Result<(), KitError> {
        self.stop_with(Signal::QUIT)
    }

    /// Stops the server cleanly (fast shutdown).
    pub fn stop(&mut self) -> Result<(), KitError> {
        self.stop_with(Signal::INT)
    }

    /// Starts a stopped server again on the same directory and socket.
    pub fn restart(&mut self) -> Result<(), KitError> {
        self.stop()?;
        self.start_server()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn initdb(&self) -> Result<(), KitError> {
        let mut command = Command::new(self.bin.join("initdb"));
        if self.run_as_unprivileged {
            command.uid(UNPRIVILEGED_UID).gid(UNPRIVILEGED_GID);
        }
        run(command.arg("-D").arg(self.data_dir()).args([
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
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file())
            .map_err(KitError::io("opening postgres.log"))?;
        let log_err = log.try_clone().map_err(KitError::io("opening postgres.log"))?;
        // fsync stays at its default so crash tests exercise the same write-ahead path as production.
        let child = process::tied_command(&self.bin.join("postgres"), self.run_as_unprivileged)
            .arg("-D")
            .arg(self.data_dir())
            .arg("-k")
            .arg(self.socket_dir())
            .args(["-p", &self.port.to_string()])
            .args([
                "-c",
                "listen_addresses=",
                "-c",
                "max_connections=60",
                "-c",
                "shared_buffers=32MB",
            ])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(KitError::io("starting postgres"))?;
        self.server = Some(child);
        let mut exited = false;
        let ready = process::wait_until(START_TIMEOUT, || {
            if let Some(server) = self.server.as_mut()
                && matches!(server.try_wait(), Ok(Some(_)))
            {
                exited = true;
                return true;
            }
            Command::new(self.bin.join("pg_isready"))
                .arg("-h")
                .arg(self.socket_dir())
                .args(["-p", &self.port.to_string(), "-q", "-t", "1"])
                .status()
                .is_ok_and(|status| status.success())
        });
        if !ready || exited {
            let _ = self.stop_with(Signal::KILL);
            return Err(KitError::NotReady {
                service: "PostgreSQL",
                seconds: START_TIMEOUT.as_secs(),
                log_tail: process::log_tail(&self.log_file(), 20),
            });
        }
        Ok(())
    }

    fn stop_with(&mut self, signal: Signal) -> Result<(), KitError> {
        let Some(mut server) = self.server.take() else {
            return Ok(());
        };
        if !process::signal_and_wait(&mut server, signal, STOP_TIMEOUT) {
            return Err(KitError::NotReady {
                service: "PostgreSQL shutdown",
                seconds: STOP_TIMEOUT.as_secs(),
                log_tail: process::log_tail(&self.log_file(), 20),
            });
        }
        Ok(())
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // Immediate: the data is thrown away anyway. Best effort, so a failing test never double-panics.
        let _ = self.stop_with(Signal::QUIT);
    }
}
