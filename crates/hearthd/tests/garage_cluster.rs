//! Originals in a fleet's Garage cluster: three real Garage nodes on loopback with replication 3, hearthd talking
//! S3 to its own node as on a box. With another node killed, uploads are acknowledged and read back; nothing
//! acknowledged is lost; the node that was down catches up on what it missed, so the cluster survives losing the
//! node hearthd wrote through afterwards.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hearth_testkit::{TestGarageCluster, TestHearthd, TestPostgres};
use serde_json::Value;

const DOCUMENTS: [(&str, &str); 4] = [
    (
        "before",
        "Written while every node was up: sourdough needs a starter fed the night before.",
    ),
    (
        "during-1",
        "Written with a node down: Garage keeps a write once a quorum of replicas has it.",
    ),
    (
        "during-2",
        "Also written with a node down: replication three survives the loss of any one node.",
    ),
    (
        "after",
        "Written once the node was back: the cluster is whole again.",
    ),
];

/// A document's text: long enough (over Garage's 3 KiB inline limit) that its original is stored as a block on
/// each node, not inline in the object table.
fn long(text: &str) -> String {
    let paragraph = format!("{text}\n\n");
    paragraph.repeat(4096 / paragraph.len() + 1)
}

async fn upload(hearthd: &TestHearthd, title: &str, text: &str) -> String {
    let reply = hearthd
        .api()
        .post_bytes(&format!("/v1/documents?title={title}"), "text/plain", long(text))
        .await;
    assert_eq!(
        reply.status,
        202,
        "{title}: {}\n{}",
        reply.body,
        hearthd.log_text()
    );
    reply.body["id"].as_str().expect("an id").to_owned()
}

async fn settled(hearthd: &TestHearthd, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let reply = hearthd.api().get(&format!("/v1/documents/{id}")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        if reply.body["status"] == "ready" || reply.body["status"] == "failed" {
            return reply.body;
        }
        assert!(Instant::now() < deadline, "never settled: {}", reply.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The original's bytes, read back through hearthd (and so through its Garage node).
async fn original(hearthd: &TestHearthd, id: &str) -> String {
    let response = reqwest::get(format!("{}/v1/documents/{id}/content", hearthd.url))
        .await
        .expect("hearthd answers");
    assert_eq!(response.status(), 200, "{}", hearthd.log_text());
    response.text().await.expect("the original arrives")
}

fn assert_original(got: &str, text: &str, why: &str) {
    assert!(
        got == long(text),
        "{why}: got {} bytes, not the uploaded {}",
        got.len(),
        long(text).len()
    );
}

/// Block files of node `of` that node `on` does not hold yet.
fn missing_blocks(cluster: &TestGarageCluster, of: usize, on: usize) -> Vec<String> {
    let held = cluster.block_files(on);
    cluster
        .block_files(of)
        .into_iter()
        .filter(|file| !file.contains("tmp") && !held.contains(file))
        .collect()
}

/// How long a launched table sync gets before it is launched again: past the block fetch the sync triggers, twice
/// the test kit's `rpc_timeout_msec` (5 s) after a reference arrives.
const RESYNC_EVERY: Duration = Duration::from_secs(20);

/// What node 0 and node 2 know of each missing block (reference count, the objects using it), for a failure message.
fn block_info(cluster: &TestGarageCluster, missing: &[String]) -> String {
    missing
        .iter()
        .filter_map(|file| file.rsplit('/').next()?.split('.').next())
        .flat_map(|hash| {
            [0, 2].map(|node| {
                let info = cluster
                    .cli(node, &["block", "info", hash])
                    .unwrap_or_else(|error| error.to_string());
                format!("node {node}, block {hash}:\n{info}")
            })
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn originals_survive_a_dead_node_and_it_catches_up_when_it_returns() {
    let mut cluster = TestGarageCluster::start(3, 3).expect("a three-node Garage cluster");
    let credentials = tempfile::tempdir().expect("tempdir");
    for (name, value) in [
        ("s3-access-key-id", &cluster.access_key_id),
        ("s3-secret-key", &cluster.secret_access_key),
    ] {
        let path = credentials.path().join(name);
        std::fs::write(&path, value).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    }
    let pg = TestPostgres::start().expect("postgres");
    let db = pg.create_database().expect("db");
    let hearthd = TestHearthd::start(
        &PathBuf::from(env!("CARGO_BIN_EXE_hearthd")),
        &db,
        &[
            ("HEARTH_BLOBS__BACKEND", "s3"),
            ("HEARTH_BLOBS__ENDPOINT", cluster.s3_endpoint(0)),
            ("HEARTH_BLOBS__BUCKET", &cluster.bucket),
            (
                "CREDENTIALS_DIRECTORY",
                credentials.path().to_str().expect("utf-8"),
            ),
        ],
    )
    .expect("hearthd starts");
    hearthd.ready().await;

    let mut ids = Vec::new();
    let (title, text) = DOCUMENTS[0];
    ids.push(upload(&hearthd, title, text).await);

    // A box other than hearthd's own loses power.
    cluster.kill(2);
    for (title, text) in &DOCUMENTS[1..3] {
        ids.push(upload(&hearthd, title, text).await);
    }
    for (id, (_, text)) in ids.iter().zip(DOCUMENTS) {
        assert_eq!(settled(&hearthd, id).await["status"], "ready");
        assert_original(&original(&hearthd, id).await, text, "readable with a node down");
    }
    let missed = missing_blocks(&cluster, 0, 2);
    assert!(
        missed.len() >= 2,
        "the originals written while node 2 was down are blocks it lacks: {missed:?}"
    );
    // And a block it had is gone from its disk while its reference stays (what a write that the power cut
    // interrupted leaves, or a bad sector): the table push cannot mend that one, the block check must.
    // (Rarely the kill itself did that already, and node 2 holds no block.)
    if let Some(lost) = cluster.block_files(2).iter().find(|file| !file.contains("tmp")) {
        std::fs::remove_file(cluster.data_dir(2).join(lost)).expect("remove a block file");
    }

    // It comes back and catches up on the blocks written while it was away, as first boot has it do
    // (`hearth-firstboot garage` in a cluster): every node pushes its tables to it, and a short rpc_timeout_msec
    // makes it fetch the blocks those name within seconds (Garage's own anti-entropy would, every 10 minutes).
    // It also checks every block it references: killed right after the first upload, it may hold the reference
    // to a block that was still on its way, which no table push mends.
    //
    // A table push is best effort: a partition counts as synced once a write quorum of its nodes took it, so a
    // push to the returning node that times out (a loaded machine, a node still opening its database) is only
    // logged, and waits for the next anti-entropy round. So the push is launched again while blocks are missing,
    // as Garage's own rounds would, only sooner.
    cluster.restart(2).expect("node 2 starts again");
    cluster
        .cli(2, &["repair", "--yes", "blocks"])
        .expect("a block check starts");
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut syncs = 0_u32;
    let mut next_sync = Instant::now();
    loop {
        let missing = missing_blocks(&cluster, 0, 2);
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 2 never caught up after {syncs} table syncs; still missing {missing:?}\n{}\n{}\n{}",
            cluster.cli(2, &["status"]).unwrap_or_default(),
            cluster.cli(2, &["block", "list-errors"]).unwrap_or_default(),
            block_info(&cluster, &missing),
        );
        if Instant::now() >= next_sync {
            cluster
                .cli(2, &["repair", "--all-nodes", "--yes", "tables"])
                .expect("a table sync starts");
            syncs += 1;
            next_sync = Instant::now() + RESYNC_EVERY;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (title, text) = DOCUMENTS[3];
    ids.push(upload(&hearthd, title, text).await);

    // Now another node goes: node 2, which was away, must answer for what it missed.
    cluster.kill(1);
    for (id, (_, text)) in ids.iter().zip(DOCUMENTS) {
        assert_original(
            &original(&hearthd, id).await,
            text,
            "no acknowledged original is lost",
        );
    }
    assert!(
        missing_blocks(&cluster, 0, 2).is_empty(),
        "node 2 holds every block"
    );
}
