//! A private Garage cluster on loopback: `n` nodes sharing one RPC secret, each in its own zone, laid out with
//! the given replication factor, plus one bucket and key (as a fleet's boxes share one cluster). Nodes can be
//! killed and started again on the same ports and directories, to see the cluster lose one and catch it up.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{self, run};
use crate::{Deps, KitError};

const START_TIMEOUT: Duration = Duration::from_secs(30);
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(60);

/// Secrets a fleet's operator minted (`hearth-firstboot fleet-secrets`) and one box minted (the admin token), for a
/// cluster that first boot is to lay out.
#[derive(Debug, Clone)]
pub struct ClusterSecrets {
    pub rpc_secret_file: PathBuf,
    pub admin_token_file: PathBuf,
    /// One node key (64 bytes: seed, then public key) per node, installed as Garage's `metadata_dir/node_key`.
    pub node_keys: Vec<PathBuf>,
}

#[derive(Debug)]
pub struct TestGarageCluster {
    bin: PathBuf,
    nodes: Vec<ClusterNode>,
    pub replication_factor: usize,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(Debug)]
struct ClusterNode {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>` of this node's S3 API.
    s3_endpoint: String,
    admin_endpoint: String,
    rpc_addr: String,
    // Dropped last: the directory goes only after the process is gone.
    dir: TempDir,
}

impl ClusterNode {
    fn config_path(&self) -> PathBuf {
        self.dir.path().join("garage.toml")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("garage.log")
    }
}

impl TestGarageCluster {
    /// Starts `nodes` nodes, connects them, lays them out (one zone each, equal capacity) with
    /// `replication_factor`, and creates the bucket and key.
    pub fn start(nodes: usize, replication_factor: usize) -> Result<Self, KitError> {
        let deps = Deps::load()?;
        let rpc_secret = process::random_hex(32)?;
        let mut cluster = Self {
            bin: deps.garage_bin.clone(),
            nodes: Vec::new(),
            replication_factor,
            region: "garage".into(),
            bucket: "hearth".into(),
            access_key_id: format!("GK{}", process::random_hex(12)?),
            secret_access_key: process::random_hex(32)?,
        };
        let secrets = format!(
            "rpc_secret = \"{rpc_secret}\"\n\n[admin]\nadmin_token = \"{}\"",
            process::random_hex(32)?
        );
        for _ in 0..nodes {
            let node = write_node(&secrets, replication_factor)?;
            cluster.nodes.push(node);
            cluster.launch(cluster.nodes.len() - 1)?;
        }
        cluster.connect()?;
        cluster.lay_out()?;
        cluster.provision()?;
        Ok(cluster)
    }

    /// Starts one node per node key, with the fleet's RPC secret and the given admin token, and connects them:
    /// no layout, key or bucket (what a fleet's first boot finds).
    pub fn start_unprovisioned(
        replication_factor: usize,
        secrets: &ClusterSecrets,
    ) -> Result<Self, KitError> {
        let deps = Deps::load()?;
        let mut cluster = Self {
            bin: deps.garage_bin.clone(),
            nodes: Vec::new(),
            replication_factor,
            region: "garage".into(),
            bucket: String::new(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
        };
        let settings = format!(
            "rpc_secret_file = \"{}\"\n\n[admin]\nadmin_token_file = \"{}\"",
            secrets.rpc_secret_file.display(),
            secrets.admin_token_file.display()
        );
        for key_file in &secrets.node_keys {
            let node = write_node(&settings, replication_factor)?;
            install_node_key(key_file, &node.dir.path().join("meta"))?;
            cluster.nodes.push(node);
            cluster.launch(cluster.nodes.len() - 1)?;
        }
        cluster.connect()?;
        Ok(cluster)
    }

    /// `http://127.0.0.1:<port>` of node `index`'s admin API.
    pub fn admin_endpoint(&self, index: usize) -> &str {
        &self.nodes[index].admin_endpoint
    }

    /// Node `index`'s Garage id, as Garage reads it from its key.
    pub fn node_id(&self, index: usize) -> Result<String, KitError> {
        let id = self.cli(index, &["node", "id", "-q"])?;
        Ok(id.trim().split('@').next().unwrap_or_default().to_owned())
    }

    /// `http://127.0.0.1:<port>` of node `index`'s S3 API.
    pub fn s3_endpoint(&self, index: usize) -> &str {
        &self.nodes[index].s3_endpoint
    }

    /// Node `index`'s data directory (its blocks).
    pub fn data_dir(&self, index: usize) -> PathBuf {
        self.nodes[index].dir.path().join("data")
    }

    /// Kills node `index` (SIGKILL: a box losing power) and keeps its directory.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            process::signal_and_wait(&mut child, rustix::process::Signal::KILL, Duration::from_secs(10));
        }
    }

    /// Starts node `index` again with its directory and ports, and waits until every node sees the others.
    pub fn restart(&mut self, index: usize) -> Result<(), KitError> {
        self.launch(index)?;
        self.wait_until_all_up()
    }

    /// Runs the `garage` CLI against node `index`.
    pub fn cli(&self, index: usize, args: &[&str]) -> Result<String, KitError> {
        run(Command::new(&self.bin)
            .arg("-c")
            .arg(self.nodes[index].config_path())
            .args(args))
    }

    /// The block files node `index` holds (relative names), to compare nodes after a catch-up.
    pub fn block_files(&self, index: usize) -> Vec<String> {
        let root = self.data_dir(index);
        let mut found = Vec::new();
        collect_files(&root, &root, &mut found);
        found.sort();
        found
    }

    fn launch(&mut self, index: usize) -> Result<(), KitError> {
        let node = &mut self.nodes[index];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.log_path())
            .map_err(KitError::io("opening garage.log"))?;
        let log_err = log.try_clone().map_err(KitError::io("opening garage.log"))?;
        let child = process::tied_command(&self.bin, false)
            .arg("-c")
            .arg(node.config_path())
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(KitError::io(format!("starting {}", self.bin.display())))?;
        node.child = Some(child);
        let ready = process::wait_until(START_TIMEOUT, || self.cli(index, &["status"]).is_ok());
        if !ready {
            return Err(self.not_ready(index, START_TIMEOUT));
        }
        Ok(())
    }

    fn ids(&self) -> Result<Vec<String>, KitError> {
        (0..self.nodes.len()).map(|index| self.node_id(index)).collect()
    }

    fn connect(&self) -> Result<(), KitError> {
        for (index, id) in self.ids()?.iter().enumerate().skip(1) {
            let peer = format!("{id}@{}", self.nodes[index].rpc_addr);
            self.cli(0, &["node", "connect", &peer])?;
        }
        self.wait_until_all_up()
    }

    fn lay_out(&self) -> Result<(), KitError> {
        for (index, id) in self.ids()?.iter().enumerate() {
            let zone = format!("zone{index}");
            self.cli(0, &["layout", "assign", "-z", &zone, "-c", "1G", id])?;
        }
        self.cli(0, &["layout", "apply", "--version", "1"])?;
        let healthy = process::wait_until(HEALTHY_TIMEOUT, || {
            self.cli(0, &["status"])
                .is_ok_and(|status| !status.contains("NO ROLE") && !status.contains("pending"))
                && self.cli(0, &["bucket", "list"]).is_ok()
        });
        if !healthy {
            return Err(self.not_ready(0, HEALTHY_TIMEOUT));
        }
        Ok(())
    }

    /// Every node reports every other as up (`garage status` lists no failed node).
    fn wait_until_all_up(&self) -> Result<(), KitError> {
        let count = self.nodes.len();
        let up = process::wait_until(HEALTHY_TIMEOUT, || {
            (0..count).all(|index| {
                self.cli(index, &["status"]).is_ok_and(|status| {
                    !status.to_ascii_lowercase().contains("failed")
                        && status.lines().filter(|line| line.contains("127.0.0.1:")).count() >= count
                })
            })
        });
        if !up {
            return Err(self.not_ready(0, HEALTHY_TIMEOUT));
        }
        Ok(())
    }

    fn provision(&self) -> Result<(), KitError> {
        crate::garage::create_key_and_bucket(
            |args| self.cli(0, args),
            &self.access_key_id,
            &self.secret_access_key,
            &self.bucket,
        )
    }

    fn not_ready(&self, index: usize, waited: Duration) -> KitError {
        let status = self
            .cli(index, &["status"])
            .unwrap_or_else(|error| error.to_string());
        KitError::NotReady {
            service: "Garage cluster",
            seconds: waited.as_secs(),
            log_tail: format!(
                "{status}\n{}",
                process::log_tail(&self.nodes[index].log_path(), 20)
            ),
        }
    }
}

/// What Garage reads as its identity: the 64-byte key and its public half.
fn install_node_key(key_file: &Path, meta: &Path) -> Result<(), KitError> {
    let key = std::fs::read(key_file).map_err(KitError::io(format!("reading {}", key_file.display())))?;
    std::fs::create_dir_all(meta).map_err(KitError::io("creating Garage's metadata directory"))?;
    let public = key.get(32..).unwrap_or_default();
    std::fs::write(meta.join("node_key"), &key).map_err(KitError::io("writing node_key"))?;
    std::fs::write(meta.join("node_key.pub"), public).map_err(KitError::io("writing node_key.pub"))?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(meta.join("node_key"), std::fs::Permissions::from_mode(0o600))
        .map_err(KitError::io("chmod node_key"))
}

/// `secrets`: the RPC secret at top level, then an `[admin]` table with the admin token (the last table, so the
/// admin address is added to it).
fn write_node(secrets: &str, replication_factor: usize) -> Result<ClusterNode, KitError> {
    let dir = tempfile::Builder::new()
        .prefix("hearth-garage-node-")
        .tempdir()
        .map_err(KitError::io("creating a temporary directory for a Garage node"))?;
    let (rpc_port, s3_port, admin_port) = (
        process::free_port()?,
        process::free_port()?,
        process::free_port()?,
    );
    let rpc_addr = format!("127.0.0.1:{rpc_port}");
    let config = format!(
        r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "sqlite"
metadata_fsync = true
data_fsync = true
replication_factor = {replication_factor}
# A node that gets a block reference checks for the block after twice this (Garage's default, 300 s, would make a
# returning node fetch what it missed only ten minutes later); the NixOS module sets the same for a fleet.
rpc_timeout_msec = 5000
rpc_bind_addr = "{rpc_addr}"
rpc_public_addr = "{rpc_addr}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3_port}"
"#,
        dir = dir.path().display(),
    );
    // The secrets' top-level key must come before any table: split it off and put it first.
    let (top, admin) = secrets.split_once("\n\n[admin]\n").unwrap_or((secrets, ""));
    let config = format!("{top}\n{config}\n[admin]\n{admin}\napi_bind_addr = \"127.0.0.1:{admin_port}\"\n");
    let mut file =
        std::fs::File::create(dir.path().join("garage.toml")).map_err(KitError::io("writing garage.toml"))?;
    file.write_all(config.as_bytes())
        .map_err(KitError::io("writing garage.toml"))?;
    Ok(ClusterNode {
        child: None,
        s3_endpoint: format!("http://127.0.0.1:{s3_port}"),
        admin_endpoint: format!("http://127.0.0.1:{admin_port}"),
        rpc_addr,
        dir,
    })
}

fn collect_files(root: &Path, dir: &Path, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(root, &path, found);
        } else if let Ok(relative) = path.strip_prefix(root) {
            found.push(relative.display().to_string());
        }
    }
}

impl Drop for TestGarageCluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
    }
}
