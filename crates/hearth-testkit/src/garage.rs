//! A private single-node Garage: sqlite metadata (as production: LMDB corrupts on unclean shutdown), a one-node
//! layout, one bucket and one key with read/write/owner on it. Killed and removed on drop.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{self, run};
use crate::{Deps, KitError};

const START_TIMEOUT: Duration = Duration::from_secs(30);
const START_ATTEMPTS: usize = 3;

/// Credentials and endpoints of a running test Garage.
#[derive(Debug)]
pub struct TestGarage {
    child: Child,
    bin: PathBuf,
    /// `http://127.0.0.1:<port>` of the S3 API (path-style).
    pub s3_endpoint: String,
    /// `http://127.0.0.1:<port>` of the admin API.
    pub admin_endpoint: String,
    pub admin_token: String,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    // Dropped last: the directory goes only after the process is gone.
    dir: TempDir,
}

impl TestGarage {
    /// Starts Garage and provisions layout, key and bucket.
    pub fn start() -> Result<Self, KitError> {
        let deps = Deps::load()?;
        Self::start_with(&deps.garage_bin)
    }

    /// Starts Garage without a layout, key or bucket: what first boot finds on a fresh appliance.
    pub fn start_unprovisioned() -> Result<Self, KitError> {
        let deps = Deps::load()?;
        Self::spawn_with_retries(&deps.garage_bin, &Secrets::Generated)
    }

    /// Starts Garage unprovisioned, reading its RPC secret, admin token and metrics token from the files
    /// `hearth-firstboot mint` wrote in `secrets_dir` (`*_file` settings, as the NixOS module does through
    /// credentials). The kit knows no S3 key: provisioning is first boot's job.
    pub fn start_with_minted_secrets(secrets_dir: &Path) -> Result<Self, KitError> {
        let deps = Deps::load()?;
        Self::spawn_with_retries(&deps.garage_bin, &Secrets::Files(secrets_dir.to_owned()))
    }

    pub fn start_with(bin: &Path) -> Result<Self, KitError> {
        Self::spawn_with_retries(bin, &Secrets::Generated)?.provision()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The temporary directory holding Garage's config, metadata and data (removed when this value drops).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file, for running the `garage` CLI against this node.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("garage.toml")
    }

    /// Runs the real `garage` CLI against this node.
    pub fn cli(&self, args: &[&str]) -> Result<String, KitError> {
        run(Command::new(&self.bin)
            .arg("-c")
            .arg(self.config_path())
            .args(args))
    }

    fn spawn_with_retries(bin: &Path, secrets: &Secrets) -> Result<Self, KitError> {
        let mut last_error = None;
        // Ports are chosen free but can be taken by a parallel test before Garage binds them: try again.
        for _ in 0..START_ATTEMPTS {
            match Self::spawn(bin, secrets) {
                Ok(garage) => return Ok(garage),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or(KitError::NotReady {
            service: "Garage",
            seconds: 0,
            log_tail: String::new(),
        }))
    }

    fn spawn(bin: &Path, secrets: &Secrets) -> Result<Self, KitError> {
        let dir = tempfile::Builder::new()
            .prefix("hearth-garage-")
            .tempdir()
            .map_err(KitError::io("creating a temporary directory for Garage"))?;
        let (rpc_port, s3_port, admin_port) = (
            process::free_port()?,
            process::free_port()?,
            process::free_port()?,
        );
        let (admin_token, secret_settings, admin_settings) = match secrets {
            Secrets::Generated => {
                let admin_token = process::random_hex(32)?;
                let rpc = format!("rpc_secret = \"{}\"", process::random_hex(32)?);
                let admin = format!("admin_token = \"{admin_token}\"");
                (admin_token, rpc, admin)
            }
            Secrets::Files(dir) => {
                let file = |name: &str| dir.join(name).display().to_string();
                let admin_token = std::fs::read_to_string(file("garage-admin-token"))
                    .map_err(KitError::io(format!("reading {}", file("garage-admin-token"))))?;
                let rpc = format!("rpc_secret_file = \"{}\"", file("garage-rpc-secret"));
                let admin = format!(
                    "admin_token_file = \"{}\"\nmetrics_token_file = \"{}\"",
                    file("garage-admin-token"),
                    file("garage-metrics-token")
                );
                (admin_token, rpc, admin)
            }
        };
        let config = format!(
            r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "sqlite"
metadata_fsync = true
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
{secret_settings}

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3_port}"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
{admin_settings}
"#,
            dir = dir.path().display(),
        );
        let config_path = dir.path().join("garage.toml");
        let mut file = std::fs::File::create(&config_path).map_err(KitError::io("writing garage.toml"))?;
        file.write_all(config.as_bytes())
            .map_err(KitError::io("writing garage.toml"))?;
        let log_path = dir.path().join("garage.log");
        let log = std::fs::File::create(&log_path).map_err(KitError::io("creating garage.log"))?;
        let log_err = log.try_clone().map_err(KitError::io("creating garage.log"))?;
        let child = process::tied_command(bin, false)
            .arg("-c")
            .arg(&config_path)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(KitError::io(format!("starting {}", bin.display())))?;
        let mut garage = Self {
            child,
            bin: bin.to_owned(),
            s3_endpoint: format!("http://127.0.0.1:{s3_port}"),
            admin_endpoint: format!("http://127.0.0.1:{admin_port}"),
            admin_token,
            region: "garage".into(),
            bucket: String::new(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            dir,
        };
        let mut exited = false;
        let ready = process::wait_until(START_TIMEOUT, || {
            if matches!(garage.child.try_wait(), Ok(Some(_))) {
                exited = true;
                return true;
            }
            // `node id` only reads the local key file; `status` needs the RPC listener up.
            garage.cli(&["status"]).is_ok()
        });
        if !ready || exited {
            return Err(KitError::NotReady {
                service: "Garage",
                seconds: START_TIMEOUT.as_secs(),
                log_tail: process::log_tail(&log_path, 20),
            });
        }
        Ok(garage)
    }

    fn provision(mut self) -> Result<Self, KitError> {
        let node_id = self.cli(&["node", "id", "-q"])?;
        let node_id = node_id.trim().split('@').next().unwrap_or_default().to_owned();
        self.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node_id])?;
        self.cli(&["layout", "apply", "--version", "1"])?;
        self.access_key_id = format!("GK{}", process::random_hex(12)?);
        self.secret_access_key = process::random_hex(32)?;
        self.bucket = "hearth".into();
        create_key_and_bucket(
            |args| self.cli(args),
            &self.access_key_id,
            &self.secret_access_key,
            &self.bucket,
        )?;
        Ok(self)
    }
}

/// Imports the key, creates the bucket and lets the key read, write and own it, through `cli` (the `garage` CLI
/// of one node).
pub(crate) fn create_key_and_bucket(
    cli: impl Fn(&[&str]) -> Result<String, KitError>,
    key_id: &str,
    secret: &str,
    bucket: &str,
) -> Result<(), KitError> {
    cli(&["key", "import", "--yes", "-n", "hearth", key_id, secret])?;
    cli(&["bucket", "create", bucket])?;
    cli(&[
        "bucket", "allow", "--read", "--write", "--owner", bucket, "--key", key_id,
    ])?;
    Ok(())
}

#[derive(Debug)]
enum Secrets {
    /// Throwaway values written into the config.
    Generated,
    /// Minted files, referenced by path.
    Files(PathBuf),
}

impl Drop for TestGarage {
    fn drop(&mut self) {
        // Its data is thrown away with the directory, so there is nothing to shut down gracefully.
        process::signal_and_wait(
            &mut self.child,
            rustix::process::Signal::KILL,
            Duration::from_secs(10),
        );
    }
}
