//! The kit's own guarantees, against the real binaries from `cargo xtask deps`.

use std::path::Path;

use hearth_core::model::{MANIFEST_FILE, ModelManifest, VerifiedModel};
use hearth_testkit::{Deps, TestGarage, TestPostgres};
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use sqlx::Connection;

#[tokio::test]
async fn postgres_has_pgvector_0_8_with_halfvec_and_hnsw() {
    let postgres = TestPostgres::start().expect("postgres starts");
    let url = postgres.create_database().expect("database");
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connects");

    let version: String = sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        .fetch_one(&mut conn)
        .await
        .expect("pgvector is installed in every test database");
    let (major, minor) = parse_major_minor(&version);
    assert!((major, minor) >= (0, 8), "pgvector {version} is older than 0.8");

    sqlx::raw_sql(
        "CREATE TABLE v (id int PRIMARY KEY, e halfvec(3));
         CREATE INDEX ON v USING hnsw (e halfvec_cosine_ops);
         INSERT INTO v VALUES (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[0.9,0.1,0]');",
    )
    .execute(&mut conn)
    .await
    .expect("halfvec table with an HNSW index");
    let nearest: Vec<i32> = sqlx::query_scalar("SELECT id FROM v ORDER BY e <=> '[1,0,0]'::halfvec LIMIT 2")
        .fetch_all(&mut conn)
        .await
        .expect("kNN query");
    assert_eq!(nearest, vec![1, 3]);
}

#[test]
fn parallel_clusters_are_isolated_and_removed_on_drop() {
    let a = TestPostgres::start().expect("first");
    let b = TestPostgres::start().expect("second");
    assert_ne!(a.socket_dir(), b.socket_dir());
    a.psql("hearth_template", "CREATE TABLE only_in_a (x int)")
        .expect("create in a");
    let in_b = b
        .psql(
            "hearth_template",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'",
        )
        .expect("query b");
    assert_eq!(in_b.trim(), "0");

    let dir = a.socket_dir().to_owned();
    drop(a);
    assert!(!dir.exists(), "{} survived drop", dir.display());
    b.psql("postgres", "SELECT 1").expect("b still serves");
}

#[test]
fn postgres_survives_an_immediate_stop() {
    let mut postgres = TestPostgres::start().expect("postgres starts");
    postgres
        .psql(
            "hearth_template",
            "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)",
        )
        .expect("write");
    postgres.crash().expect("immediate stop");
    assert!(
        postgres.psql("postgres", "SELECT 1").is_err(),
        "server still answers after crash"
    );
    postgres.restart().expect("restart");
    let kept = postgres
        .psql("hearth_template", "SELECT x FROM kept")
        .expect("read back");
    assert_eq!(kept.trim(), "42");
}

#[tokio::test]
async fn garage_accepts_put_and_get_with_the_kit_key() {
    let garage = TestGarage::start().expect("garage starts");
    let store = AmazonS3Builder::new()
        .with_endpoint(&garage.s3_endpoint)
        .with_region(&garage.region)
        .with_bucket_name(&garage.bucket)
        .with_access_key_id(&garage.access_key_id)
        .with_secret_access_key(&garage.secret_access_key)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .build()
        .expect("S3 client");
    let path = ObjectPath::from("kit/hello.txt");
    store
        .put(&path, b"hello hearth".to_vec().into())
        .await
        .expect("put");
    let bytes = store.get(&path).await.expect("get").bytes().await.expect("body");
    assert_eq!(&bytes[..], b"hello hearth");

    let wrong_secret = AmazonS3Builder::new()
        .with_endpoint(&garage.s3_endpoint)
        .with_region(&garage.region)
        .with_bucket_name(&garage.bucket)
        .with_access_key_id(&garage.access_key_id)
        .with_secret_access_key("0".repeat(64))
        .with_allow_http(true)
        .build()
        .expect("S3 client");
    assert!(
        wrong_secret.get(&path).await.is_err(),
        "a wrong secret was accepted"
    );
}

#[test]
fn test_model_files_match_the_manifest() {
    let deps = Deps::load().expect("deps installed");
    let model = VerifiedModel::open(&deps.test_model_dir).expect("every sha256 matches");
    let bundled = ModelManifest::bundled("all-minilm-l6-v2-int8").expect("bundled manifest");
    assert_eq!(
        model.manifest, bundled,
        "the bootstrap wrote a manifest other than the bundled one"
    );
    assert!(Path::new(&deps.test_model_dir).join(MANIFEST_FILE).is_file());
    assert!(
        deps.ort_dylib.is_file(),
        "{} is not a file",
        deps.ort_dylib.display()
    );
}

fn parse_major_minor(version: &str) -> (u32, u32) {
    let mut parts = version
        .split('.')
        .map(|p| p.parse::<u32>().expect("numeric version"));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn servers_die_with_a_killed_owner() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let mut owner = Command::new(env!("CARGO_BIN_EXE_hearth-dev-services"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("dev services start");
    let stdout = owner.stdout.take().expect("stdout");
    let mut pids = Vec::new();
    let mut temporary_dirs = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(dir) = line.strip_prefix("temporary_dir=") {
            temporary_dirs.push(std::path::PathBuf::from(dir));
        }
        if let Some(pid) = line
            .strip_prefix("postgres_pid=")
            .or(line.strip_prefix("garage_pid="))
        {
            pids.push(pid.parse::<u32>().expect("pid"));
        }
        if line.starts_with("ready") {
            break;
        }
    }
    assert_eq!(pids.len(), 2, "dev services did not report both servers");
    assert!(
        pids.iter().all(|pid| alive(*pid)),
        "servers not running: {pids:?}"
    );

    owner.kill().expect("SIGKILL the owner");
    owner.wait().expect("reap the owner");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while pids.iter().any(|pid| alive(*pid)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let survivors: Vec<u32> = pids.into_iter().filter(|pid| alive(*pid)).collect();
    assert!(
        survivors.is_empty(),
        "servers outlived their killed owner: {survivors:?}"
    );
    // A killed owner cannot clean up after itself.
    assert_eq!(temporary_dirs.len(), 3, "{temporary_dirs:?}");
    for dir in temporary_dirs {
        std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("removing {}: {e}", dir.display()));
    }
}

/// Exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}
