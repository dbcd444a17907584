//! Provisions Garage for hearth through its admin API (v2): the layout (a single node, or the declared nodes of a
//! fleet's cluster), hearth's S3 key (imported from the minted files, so the key lives in the secrets directory and
//! not only in Garage), the bucket, and read/write/owner on it. Every step looks first and changes only what is
//! missing.
//!
//! In a cluster one box, the layout keeper, stages a role for every declared node the layout lacks and applies the
//! next version; the others wait until the layout holds every declared node. Roles are never removed or changed
//! here (taking a box out is the operator's decision: `garage layout remove`).

use std::fmt;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::secrets::Secret;
use crate::secrets_dir::MintError;

#[derive(Debug, thiserror::Error)]
pub enum GarageError {
    #[error(
        "Garage's admin API at {endpoint} did not answer within {seconds}s (last error: {last}); is garage.service \
         running, and is [admin] api_bind_addr set to that address?"
    )]
    Unreachable {
        endpoint: String,
        seconds: u64,
        last: String,
    },
    #[error(
        "Garage refused the admin token (fingerprint {fingerprint}) with {status}: Garage must be started with \
         admin_token_file pointing at the minted garage-admin-token"
    )]
    Unauthorized { fingerprint: String, status: StatusCode },
    #[error("Garage answered {method} {path} with {status}: {message}")]
    Api {
        method: Method,
        path: String,
        status: StatusCode,
        message: String,
    },
    #[error("cannot talk to Garage at {endpoint}: {source}")]
    Http {
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "Garage already has the key s3-access-key-id (fp={key_fingerprint}) with a different secret than the minted \
         s3-secret-key; refusing to \
         overwrite it. Delete that key in Garage (`garage key delete`) or repair the minted pair."
    )]
    KeyMismatch { key_fingerprint: String },
    #[error("Garage's cluster has {count} nodes; hearth-firstboot only lays out a fresh single-node cluster")]
    NotSingleNode { count: usize },
    #[error(
        "the cluster layout still lacks {missing} of the declared nodes after {seconds}s: the layout keeper lays \
         them out (its hearth-firstboot-garage runs with --apply-layout); is it up, and are the nodes connected \
         (`garage status`)?"
    )]
    LayoutNotReady { missing: usize, seconds: u64 },
    #[error(
        "the cluster layout has {count} staged change(s) hearth did not make: apply them (`garage layout apply`) or \
         revert them (`garage layout revert`) before first boot adds the declared nodes"
    )]
    StagedChanges { count: usize },
    #[error(
        "--cluster-node {0:?}: expected ID=ZONE:CAPACITY, with ID the node's 64-hex Garage id and CAPACITY in bytes"
    )]
    BadClusterNode(String),
    #[error("invalid admin endpoint '{0}': expected http://host:port")]
    BadEndpoint(String),
    #[error(transparent)]
    Secret(#[from] MintError),
}

/// How long every declared node must have been up, with the layout still empty, before the keeper writes the
/// first one: two and a half of Garage's 10 s status broadcasts, which carry a peer's layout.
const LAYOUT_SETTLE: Duration = Duration::from_secs(25);

/// The declared nodes `layout` has no role for.
fn missing_roles<'a>(cluster: &'a ClusterLayout, layout: &Layout) -> Vec<&'a ClusterNode> {
    cluster
        .nodes
        .iter()
        .filter(|node| {
            !layout
                .roles
                .iter()
                .any(|role| role.id.eq_ignore_ascii_case(&node.id))
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    pub bucket: String,
    pub key_name: String,
    pub zone: String,
    pub capacity: u64,
    pub wait: Duration,
    /// A fleet's cluster: the nodes its layout must hold; `None` for a single box.
    pub cluster: Option<ClusterLayout>,
}

/// The layout of a Garage cluster across a fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterLayout {
    pub nodes: Vec<ClusterNode>,
    /// This box is the layout keeper: it stages and applies the roles of declared nodes that are missing.
    pub apply: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// The node's Garage id: 64 hex digits.
    pub id: String,
    pub zone: String,
    pub capacity: u64,
}

impl std::str::FromStr for ClusterNode {
    type Err = GarageError;

    /// `ID=ZONE:CAPACITY`
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || GarageError::BadClusterNode(text.to_owned());
        let (id, role) = text.split_once('=').ok_or_else(bad)?;
        let (zone, capacity) = role.rsplit_once(':').ok_or_else(bad)?;
        let id = id.trim().to_ascii_lowercase();
        if id.len() != 64 || !id.chars().all(|c| c.is_ascii_hexdigit()) || zone.is_empty() {
            return Err(bad());
        }
        let capacity = capacity.parse().ok().filter(|c| *c > 0).ok_or_else(bad)?;
        Ok(Self {
            id,
            zone: zone.to_owned(),
            capacity,
        })
    }
}

/// A bucket name Garage takes (and the NixOS module's `garage.bucket` allows): 3 to 63 lowercase letters, digits,
/// dots and hyphens, starting and ending with a letter or digit. Checked before asking Garage, whose answer to a
/// bad one does not say what to change.
pub fn bucket_name(text: &str) -> Result<String, String> {
    let inner_ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if (3..=63).contains(&text.len())
        && text.chars().all(inner_ok)
        && edge_ok(text.chars().next())
        && edge_ok(text.chars().last())
    {
        Ok(text.to_owned())
    } else {
        Err("give a Garage bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending \
             with a letter or digit (a fleet box's is hearth-<name>)"
            .to_owned())
    }
}

/// One provisioning step and whether this run changed anything for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub what: String,
    pub changed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProvisionState {
    Provisioned,
    Missing(Vec<&'static str>),
    Unknown(String),
}

impl fmt::Display for ProvisionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProvisionState::Provisioned => f.write_str("provisioned (layout, key, bucket, grants)"),
            ProvisionState::Missing(what) => write!(
                f,
                "not provisioned: missing {}; run `hearth-firstboot garage`",
                what.join(", ")
            ),
            ProvisionState::Unknown(why) => write!(f, "unknown: {why}"),
        }
    }
}

#[derive(Debug)]
pub struct GarageAdmin {
    http: reqwest::Client,
    endpoint: String,
    token: Secret,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClusterStatus {
    nodes: Vec<Node>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Node {
    id: String,
    #[serde(default)]
    is_up: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Layout {
    version: u64,
    roles: Vec<Role>,
    staged_role_changes: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct Role {
    id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyInfo {
    secret_access_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BucketInfo {
    id: String,
    keys: Vec<BucketKey>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BucketKey {
    access_key_id: String,
    permissions: Permissions,
}

#[derive(Debug, Deserialize)]
struct Permissions {
    read: bool,
    write: bool,
    owner: bool,
}

impl GarageAdmin {
    pub fn new(endpoint: &str, token: Secret) -> Result<Self, GarageError> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(GarageError::BadEndpoint(endpoint));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|source| GarageError::Http {
                endpoint: endpoint.clone(),
                source,
            })?;
        Ok(Self {
            http,
            endpoint,
            token,
        })
    }

    /// Waits until the admin API answers, at most `wait`.
    pub async fn wait_until_up(&self, wait: Duration) -> Result<(), GarageError> {
        let deadline = Instant::now() + wait;
        loop {
            let last = match self
                .call::<ClusterStatus>(Method::GET, "/v2/GetClusterStatus", None)
                .await
            {
                Ok(_) => return Ok(()),
                Err(error @ GarageError::Unauthorized { .. }) => return Err(error),
                Err(error) => error.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(GarageError::Unreachable {
                    endpoint: self.endpoint.clone(),
                    seconds: wait.as_secs(),
                    last,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until every partition has its node after a layout change (in a cluster, a quorum of them: a box that
    /// is down must not stop the others' first boot); keys and buckets cannot be written before.
    async fn wait_until_healthy(&self, wait: Duration, quorum_is_enough: bool) -> Result<(), GarageError> {
        #[derive(Deserialize)]
        struct Health {
            status: String,
        }
        let deadline = Instant::now() + wait;
        loop {
            let health: Health = self.call(Method::GET, "/v2/GetClusterHealth", None).await?;
            if health.status == "healthy" || (quorum_is_enough && health.status == "degraded") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(GarageError::Unreachable {
                    endpoint: self.endpoint.clone(),
                    seconds: wait.as_secs(),
                    last: format!(
                        "the cluster stayed '{}' after the layout was applied",
                        health.status
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub async fn provision(
        &self,
        key_id: &Secret,
        secret_key: &Secret,
        options: &ProvisionOptions,
    ) -> Result<Vec<Step>, GarageError> {
        self.wait_until_up(options.wait).await?;
        let key_fingerprint = key_id.fingerprint();
        let key_id = String::from_utf8_lossy(key_id.expose()).into_owned();
        let mut steps = vec![self.ensure_layout(options).await?];
        self.wait_until_healthy(options.wait, options.cluster.is_some())
            .await?;
        steps.push(
            self.ensure_key(&key_id, &key_fingerprint, secret_key, &options.key_name)
                .await?,
        );
        let (bucket, created) = match self.bucket(&options.bucket).await? {
            Some(bucket) => (bucket, false),
            None => {
                self.call::<Value>(
                    Method::POST,
                    "/v2/CreateBucket",
                    Some(json!({ "globalAlias": options.bucket })),
                )
                .await?;
                let bucket = self
                    .bucket(&options.bucket)
                    .await?
                    .ok_or_else(|| GarageError::Api {
                        method: Method::GET,
                        path: "/v2/GetBucketInfo".into(),
                        status: StatusCode::NOT_FOUND,
                        message: format!("bucket '{}' missing right after it was created", options.bucket),
                    })?;
                (bucket, true)
            }
        };
        steps.push(Step {
            what: format!("bucket '{}'", options.bucket),
            changed: created,
        });
        let granted = bucket.keys.iter().any(|key| {
            key.access_key_id == key_id
                && key.permissions.read
                && key.permissions.write
                && key.permissions.owner
        });
        if !granted {
            self.call::<Value>(
                Method::POST,
                "/v2/AllowBucketKey",
                Some(json!({
                    "bucketId": bucket.id,
                    "accessKeyId": key_id,
                    "permissions": { "read": true, "write": true, "owner": true },
                })),
            )
            .await?;
        }
        steps.push(Step {
            what: format!(
                "key fp={key_fingerprint} may read, write and own '{}'",
                options.bucket
            ),
            changed: !granted,
        });
        Ok(steps)
    }

    /// What `provision` would still have to do; never changes anything.
    pub async fn provision_state(&self, key_id: &Secret, bucket: &str) -> ProvisionState {
        let key_id = String::from_utf8_lossy(key_id.expose()).into_owned();
        let result: Result<ProvisionState, GarageError> = async {
            let mut missing = Vec::new();
            let layout: Layout = self.call(Method::GET, "/v2/GetClusterLayout", None).await?;
            if layout.roles.is_empty() {
                // Without a layout Garage cannot even look keys up.
                return Ok(ProvisionState::Missing(vec!["layout", "key", "bucket", "grants"]));
            }
            if self.key(&key_id, false).await?.is_none() {
                missing.push("key");
            }
            match self.bucket(bucket).await? {
                None => missing.extend(["bucket", "grants"]),
                Some(info) => {
                    if !info.keys.iter().any(|k| {
                        k.access_key_id == key_id
                            && k.permissions.read
                            && k.permissions.write
                            && k.permissions.owner
                    }) {
                        missing.push("grants");
                    }
                }
            }
            Ok(if missing.is_empty() {
                ProvisionState::Provisioned
            } else {
                ProvisionState::Missing(missing)
            })
        }
        .await;
        result.unwrap_or_else(|error| ProvisionState::Unknown(error.to_string()))
    }

    async fn ensure_layout(&self, options: &ProvisionOptions) -> Result<Step, GarageError> {
        if let Some(cluster) = &options.cluster {
            return self.ensure_cluster_layout(cluster, options.wait).await;
        }
        let layout: Layout = self.call(Method::GET, "/v2/GetClusterLayout", None).await?;
        if !layout.roles.is_empty() {
            return Ok(Step {
                what: format!("cluster layout (version {})", layout.version),
                changed: false,
            });
        }
        if layout.staged_role_changes.is_empty() {
            let status: ClusterStatus = self.call(Method::GET, "/v2/GetClusterStatus", None).await?;
            let [node] = status.nodes.as_slice() else {
                return Err(GarageError::NotSingleNode {
                    count: status.nodes.len(),
                });
            };
            self.call::<Value>(
                Method::POST,
                "/v2/UpdateClusterLayout",
                Some(json!({
                    "roles": [{ "id": node.id, "zone": options.zone, "capacity": options.capacity, "tags": [] }]
                })),
            )
            .await?;
        }
        // A crash between staging and applying leaves staged changes: apply them, they are ours.
        let version = layout.version + 1;
        self.call::<Value>(
            Method::POST,
            "/v2/ApplyClusterLayout",
            Some(json!({ "version": version })),
        )
        .await?;
        Ok(Step {
            what: format!(
                "cluster layout (version {version}, one node in zone {})",
                options.zone
            ),
            changed: true,
        })
    }

    /// The keeper stages every declared node the layout lacks (all at once, so one new version) and applies it;
    /// the others wait for the keeper. Both leave a layout that already holds every declared node alone.
    async fn ensure_cluster_layout(
        &self,
        cluster: &ClusterLayout,
        wait: Duration,
    ) -> Result<Step, GarageError> {
        let deadline = Instant::now() + wait;
        // Set once the keeper has seen every declared node up with an empty layout.
        let mut empty_since: Option<Instant> = None;
        loop {
            let layout: Layout = self.call(Method::GET, "/v2/GetClusterLayout", None).await?;
            let missing = missing_roles(cluster, &layout);
            if missing.is_empty() {
                return Ok(Step {
                    what: format!(
                        "cluster layout (version {}, {} declared nodes)",
                        layout.version,
                        cluster.nodes.len()
                    ),
                    changed: false,
                });
            }
            if cluster.apply
                && self
                    .keeper_may_apply(cluster, &layout, &mut empty_since, deadline)
                    .await?
            {
                return self.apply_cluster_roles(&layout, &missing).await;
            }
            if !cluster.apply && Instant::now() >= deadline {
                return Err(GarageError::LayoutNotReady {
                    missing: missing.len(),
                    seconds: wait.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Whether the keeper may add roles to `layout` now. To a layout the cluster already has, at once. To an empty
    /// one only once every declared node has been up for [`LAYOUT_SETTLE`] (or the deadline passed): a keeper that
    /// lost its metadata sees no layout until a peer's status broadcast (every 10 s) brings the cluster's, and
    /// applying its own version 1 before would start a rival history that breaks the cluster.
    async fn keeper_may_apply(
        &self,
        cluster: &ClusterLayout,
        layout: &Layout,
        empty_since: &mut Option<Instant>,
        deadline: Instant,
    ) -> Result<bool, GarageError> {
        // A run that crashed between staging and applying leaves roles for declared nodes: those are ours.
        let foreign = layout
            .staged_role_changes
            .iter()
            .filter(|change| {
                let id = change.get("id").and_then(Value::as_str).unwrap_or_default();
                let removal = change.get("remove").and_then(Value::as_bool).unwrap_or(false);
                removal || !cluster.nodes.iter().any(|node| node.id.eq_ignore_ascii_case(id))
            })
            .count();
        if foreign > 0 {
            return Err(GarageError::StagedChanges { count: foreign });
        }
        if layout.version > 0 || Instant::now() >= deadline {
            return Ok(true);
        }
        if !self.all_up(cluster).await? {
            *empty_since = None;
            return Ok(false);
        }
        let since = *empty_since.get_or_insert_with(Instant::now);
        Ok(since.elapsed() >= LAYOUT_SETTLE)
    }

    /// Whether every declared node is connected to this one.
    async fn all_up(&self, cluster: &ClusterLayout) -> Result<bool, GarageError> {
        let status: ClusterStatus = self.call(Method::GET, "/v2/GetClusterStatus", None).await?;
        Ok(cluster.nodes.iter().all(|node| {
            status
                .nodes
                .iter()
                .any(|seen| seen.is_up && seen.id.eq_ignore_ascii_case(&node.id))
        }))
    }

    /// What a box coming back to the cluster launches so that it holds its share again without waiting for
    /// Garage's own rounds:
    /// - every node pushes its tables to the others: a box back from a power cut gets the references to the
    ///   originals it missed (and then fetches their blocks) at once, not at the next anti-entropy round, up to
    ///   10 minutes later;
    /// - this node checks every block it holds a reference to: a power cut in the middle of a write can leave a
    ///   reference whose block never arrived, which no table push mends (the reference is there) and Garage's
    ///   scrub finds only weeks later.
    ///
    /// Returns the nodes that could not start one, with what and Garage's reason.
    pub async fn launch_catch_up(&self) -> Result<Vec<(String, String)>, GarageError> {
        let mut failed = self.launch_repair("tables", "*").await?;
        failed.extend(self.launch_repair("blocks", "self").await?);
        Ok(failed)
    }

    async fn launch_repair(&self, repair: &str, nodes: &str) -> Result<Vec<(String, String)>, GarageError> {
        #[derive(Deserialize)]
        struct PerNode {
            #[serde(default)]
            error: std::collections::BTreeMap<String, String>,
        }
        let answer: PerNode = self
            .call(
                Method::POST,
                &format!("/v2/LaunchRepairOperation?node={nodes}"),
                Some(json!({ "repairType": repair })),
            )
            .await?;
        Ok(answer
            .error
            .into_iter()
            .map(|(node, error)| (node, format!("{repair}: {error}")))
            .collect())
    }

    async fn apply_cluster_roles(
        &self,
        layout: &Layout,
        missing: &[&ClusterNode],
    ) -> Result<Step, GarageError> {
        let roles: Vec<Value> = missing
            .iter()
            .map(|node| json!({ "id": node.id, "zone": node.zone, "capacity": node.capacity, "tags": [] }))
            .collect();
        self.call::<Value>(
            Method::POST,
            "/v2/UpdateClusterLayout",
            Some(json!({ "roles": roles })),
        )
        .await?;
        let version = layout.version + 1;
        self.call::<Value>(
            Method::POST,
            "/v2/ApplyClusterLayout",
            Some(json!({ "version": version })),
        )
        .await?;
        let zones: std::collections::BTreeSet<&str> = missing.iter().map(|node| node.zone.as_str()).collect();
        Ok(Step {
            what: format!(
                "cluster layout (version {version}, {} nodes added in zones {})",
                missing.len(),
                zones.into_iter().collect::<Vec<_>>().join(", ")
            ),
            changed: true,
        })
    }

    async fn ensure_key(
        &self,
        key_id: &str,
        key_fingerprint: &str,
        secret_key: &Secret,
        name: &str,
    ) -> Result<Step, GarageError> {
        // The key id is minted with the secrets, so it is shown by fingerprint like them.
        let what = format!("S3 key fp={key_fingerprint} ('{name}')");
        if let Some(existing) = self.key(key_id, true).await? {
            let same = existing
                .secret_access_key
                .as_deref()
                .is_some_and(|s| subtle_eq(s.as_bytes(), secret_key.expose()));
            if !same {
                return Err(GarageError::KeyMismatch {
                    key_fingerprint: key_fingerprint.into(),
                });
            }
            return Ok(Step { what, changed: false });
        }
        let secret = String::from_utf8_lossy(secret_key.expose()).into_owned();
        let body = json!({ "accessKeyId": key_id, "secretAccessKey": secret, "name": name });
        self.call::<Value>(Method::POST, "/v2/ImportKey", Some(body))
            .await?;
        Ok(Step { what, changed: true })
    }

    async fn key(&self, key_id: &str, show_secret: bool) -> Result<Option<KeyInfo>, GarageError> {
        let path = format!("/v2/GetKeyInfo?id={key_id}&showSecretKey={show_secret}");
        self.optional(Method::GET, &path).await
    }

    async fn bucket(&self, alias: &str) -> Result<Option<BucketInfo>, GarageError> {
        let path = format!("/v2/GetBucketInfo?globalAlias={alias}");
        self.optional(Method::GET, &path).await
    }

    async fn optional<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
    ) -> Result<Option<T>, GarageError> {
        match self.call(method, path, None).await {
            Ok(value) => Ok(Some(value)),
            Err(GarageError::Api {
                status: StatusCode::NOT_FOUND,
                ..
            }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, GarageError> {
        // reqwest's errors name the URL, and paths here carry the access key id: the endpoint is enough.
        let http_error = |source: reqwest::Error| GarageError::Http {
            endpoint: self.endpoint.clone(),
            source: source.without_url(),
        };
        let token = String::from_utf8_lossy(self.token.expose());
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.endpoint))
            .bearer_auth(&*token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(http_error)?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(GarageError::Unauthorized {
                fingerprint: self.token.fingerprint(),
                status,
            });
        }
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or(text);
            return Err(GarageError::Api {
                method,
                path: path.split('?').next().unwrap_or(path).to_owned(),
                status,
                message,
            });
        }
        response.json().await.map_err(http_error)
    }
}

/// Constant-time equality, so that comparing the secret Garage returns leaks no timing about ours.
fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_are_checked_as_garage_and_the_module_do() {
        for good in ["hearth", "hearth-pi-kitchen", "a.b", "abc", &"b".repeat(63)] {
            assert_eq!(bucket_name(good).as_deref(), Ok(good));
        }
        for bad in [
            "",
            "ab",
            "-ab",
            "ab-",
            "Hearth",
            "../x",
            "a\u{1}b",
            "é-box",
            "a b",
            &"b".repeat(64),
        ] {
            let error = bucket_name(bad).expect_err(bad);
            assert!(error.contains("3 to 63 lowercase"), "{bad:?}: {error}");
        }
    }

    #[tokio::test]
    async fn a_transport_error_names_the_endpoint_but_not_the_key_id_in_the_path() {
        // A port nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("port")
            .port();
        let admin = GarageAdmin::new(
            &format!("http://127.0.0.1:{port}"),
            Secret::new(b"token".to_vec()),
        )
        .expect("client");
        let error = admin
            .key("GK0123456789abcdef01234567", true)
            .await
            .expect_err("nothing listens");
        let message = format!("{error} / {error:?}");
        assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
        assert!(!message.contains("GK0123456789abcdef01234567"), "{message}");
    }
}
