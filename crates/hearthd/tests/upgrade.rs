//! Upgrades that cannot strand the data, against real PostgreSQL + pgvector and the real pg_dump/pg_restore/psql:
//! a backup before every migration, a restore that puts the database back exactly, no migration without room for
//! the backup, and an older hearthd that refuses a schema declared breaking for it — staying up and naming the
//! restore — but runs on one declared compatible.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::database_name;
use hearth_testkit::{TestHearthd, TestPostgres};
use serde_json::{Value, json};

mod common;

const HEARTHD: &str = env!("CARGO_BIN_EXE_hearthd");

/// The newest migration this build carries.
fn newest() -> i64 {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../hearth-core/migrations"))
        .expect("migrations")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.split('_').next()?.parse().ok()
        })
        .max()
        .expect("a migration")
}

fn sql(postgres: &TestPostgres, database: &str, query: &str) -> String {
    postgres.psql(database, query).expect("psql").trim().to_owned()
}

/// Puts the database back where the release before the newest migration left it: that migration's objects and
/// record gone. The newest one (0008) only creates `hearth_schema_compat`.
fn as_the_previous_release_left_it(postgres: &TestPostgres, database: &str) {
    assert_eq!(newest(), 8, "update this test's undo of the newest migration");
    sql(
        postgres,
        database,
        "DROP TABLE hearth_schema_compat; DELETE FROM _sqlx_migrations WHERE version = 8",
    );
}

async fn ingest(hearthd: &TestHearthd, title: &str, text: &str) -> String {
    let reply = hearthd
        .api()
        .post_bytes(&format!("/v1/documents?title={title}"), "text/plain", text)
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = reply.body["id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let document = hearthd.api().get(&format!("/v1/documents/{id}")).await;
        if document.body["status"] == "ready" {
            return id;
        }
        assert!(Instant::now() < deadline, "not ingested: {}", document.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn found(hearthd: &TestHearthd, query: &str) -> Vec<String> {
    let reply = hearthd
        .api()
        .post_json("/v1/search", &json!({ "query": query, "mode": "vector", "k": 5 }))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|hit| hit["document_id"].as_str().expect("document_id").to_owned())
        .collect()
}

fn hearthd_command(hearthd_env: &[(&str, String)], args: &[&str]) -> std::process::Output {
    let deps = hearth_testkit::Deps::load().expect("deps");
    Command::new(HEARTHD)
        .args(args)
        .env("HEARTH_EMBEDDING__MODEL_DIR", &deps.test_model_dir)
        .env("HEARTH_EMBEDDING__ONNXRUNTIME", &deps.ort_dylib)
        .env("HEARTH_BACKUP__POSTGRES_BIN", &deps.postgres_bin)
        .envs(hearthd_env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("hearthd runs")
}

/// The readiness answer once it stops changing from `migrating`/`backing_up`/`unknown`.
async fn settled_readiness(hearthd: &TestHearthd) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = hearthd.api().get("/readyz").await;
        let status = reply.body["schema"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !["migrating", "backing_up", "unknown", ""].contains(&status.as_str())
            && reply.body["model"]["status"] != "loading"
        {
            return (reply.status, reply.body);
        }
        assert!(
            Instant::now() < deadline,
            "schema never settled: {}\n{}",
            reply.body,
            hearthd.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One database with the backups and blob directories that each hearthd started on it shares.
struct Appliance {
    postgres: TestPostgres,
    url: String,
    database: String,
    backup_dir: String,
    blob_dir: String,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Appliance {
    fn new() -> Self {
        let postgres = TestPostgres::start().expect("postgres");
        let url = postgres.create_database().expect("database");
        let database = database_name(&url);
        let backups = tempfile::tempdir().expect("backups");
        let blobs = tempfile::tempdir().expect("blobs");
        Self {
            postgres,
            url,
            database,
            backup_dir: backups.path().join("backups").display().to_string(),
            blob_dir: blobs.path().display().to_string(),
            _dirs: (backups, blobs),
        }
    }

    fn start(&self) -> TestHearthd {
        let env = [
            ("HEARTH_BACKUP__DIR", self.backup_dir.as_str()),
            ("HEARTH_BLOBS__PATH", self.blob_dir.as_str()),
        ];
        TestHearthd::start(Path::new(HEARTHD), &self.url, &env).expect("hearthd")
    }

    /// One document ingested by a hearthd that is then stopped; returns its id.
    async fn with_kiln(&self) -> String {
        let mut first = self.start();
        first.ready().await;
        let kiln = ingest(
            &first,
            "kiln",
            "The kiln fires stoneware at twelve hundred degrees overnight.",
        )
        .await;
        assert!(first.terminate());
        kiln
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_migration_is_preceded_by_a_verified_backup_that_restores_the_database_exactly() {
    let appliance = Appliance::new();
    let (postgres, url, database, backup_dir) = (
        &appliance.postgres,
        &appliance.url,
        &appliance.database,
        &appliance.backup_dir,
    );
    let start = || appliance.start();

    let mut first = start();
    first.ready().await;
    let kiln = ingest(
        &first,
        "kiln",
        "The kiln fires stoneware at twelve hundred degrees overnight.",
    )
    .await;
    let bees = ingest(
        &first,
        "bees",
        "Honeybees tell each other where flowers are with a waggle dance.",
    )
    .await;
    assert!(first.terminate());
    assert!(
        hearth_core_backups(backup_dir).is_empty(),
        "a fresh database and a current one need no backup"
    );
    as_the_previous_release_left_it(postgres, database);

    // The upgrade: hearthd finds migration 8 pending and dumps schema 7 first.
    let mut upgraded = start();
    let readiness = upgraded.ready().await;
    assert_eq!(readiness.schema.version, Some(8));
    let dumps = hearth_core_backups(backup_dir);
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    let (dump, manifest) = &dumps[0];
    assert_eq!(manifest["reason"], "before-migrate");
    assert_eq!(manifest["schema"], 7);
    assert_eq!(manifest["migrating_to"], 8);
    assert!(dump.ends_with("-schema7-to8.dump"), "{dump}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(dump).expect("dump").permissions());
    assert_eq!(mode & 0o777, 0o600, "dumps hold every document's text");
    let capabilities = upgraded.api().get("/v1/capabilities").await.body;
    assert_eq!(
        capabilities["backups"][0]["path"],
        dump.as_str(),
        "{capabilities}"
    );
    assert_eq!(capabilities["schema"]["version"], 8);
    assert_eq!(capabilities["schema"]["oldest_compatible"], 1);
    assert!(
        upgraded
            .log_text()
            .contains("database backed up before migrating")
    );

    // A document written after the backup, then the restore puts the database back to the dump exactly.
    let tide = ingest(
        &upgraded,
        "tide",
        "Spring tides happen when the sun and the moon line up.",
    )
    .await;
    let restore_env = [
        ("HEARTH_DATABASE__URL", url.clone()),
        ("HEARTH_BACKUP__DIR", backup_dir.clone()),
    ];
    let refused = hearthd_command(&restore_env, &["restore", dump]);
    let stderr =
        String::from_utf8_lossy(&refused.stderr).into_owned() + &String::from_utf8_lossy(&refused.stdout);
    assert!(
        !refused.status.success(),
        "a restore under a running hearthd must refuse"
    );
    assert!(
        stderr.contains("stop hearthd first") && stderr.contains("\"hearthd\""),
        "{stderr}"
    );
    assert_eq!(sql(postgres, database, "SELECT count(*) FROM documents"), "3");
    assert!(upgraded.terminate());

    let restored = hearthd_command(&restore_env, &["restore", dump]);
    let log =
        String::from_utf8_lossy(&restored.stderr).into_owned() + &String::from_utf8_lossy(&restored.stdout);
    assert!(restored.status.success(), "{log}");
    assert_eq!(
        sql(
            postgres,
            database,
            "SELECT max(version) FROM _sqlx_migrations WHERE success"
        ),
        "7"
    );
    assert_eq!(
        sql(
            postgres,
            database,
            "SELECT to_regclass('hearth_schema_compat') IS NULL"
        ),
        "t"
    );
    assert_eq!(sql(postgres, database, "SELECT count(*) FROM documents"), "2");
    assert_eq!(
        sql(
            postgres,
            database,
            &format!("SELECT count(*) FROM documents WHERE id = '{tide}'")
        ),
        "0"
    );
    let safety: Vec<_> = hearth_core_backups(backup_dir)
        .into_iter()
        .filter(|(_, manifest)| manifest["reason"] == "before-restore")
        .collect();
    assert_eq!(safety.len(), 1, "what a restore replaces is dumped first");
    assert_eq!(safety[0].1["schema"], 8);

    // The restored database upgrades again and serves every document it held.
    let again = start();
    again.ready().await;
    assert!(
        found(&again, "how hot does a pottery kiln get")
            .await
            .contains(&kiln)
    );
    assert!(found(&again, "how do bees find food").await.contains(&bees));
}

/// Every dump in `dir` with its manifest, newest first.
fn hearth_core_backups(dir: &str) -> Vec<(String, Value)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, Value)> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.to_string_lossy().ends_with(".dump.json"))
        .map(|path| {
            let manifest: Value =
                serde_json::from_slice(&std::fs::read(&path).expect("manifest")).expect("json");
            (
                path.to_string_lossy().trim_end_matches(".json").to_owned(),
                manifest,
            )
        })
        .collect();
    found.sort_by(|a, b| b.1["created_at"].as_str().cmp(&a.1["created_at"].as_str()));
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn without_room_for_the_backup_hearthd_does_not_migrate_and_says_why() {
    let postgres = TestPostgres::start().expect("postgres");
    let url = postgres.create_database().expect("database");
    let database = database_name(&url);
    let mut first = TestHearthd::start(Path::new(HEARTHD), &url, &[]).expect("hearthd");
    first.ready().await;
    assert!(first.terminate());
    as_the_previous_release_left_it(&postgres, &database);

    // More reserve than any disk has: the backup cannot fit, as on a full disk.
    let blocked = TestHearthd::start(
        Path::new(HEARTHD),
        &url,
        &[("HEARTH_BACKUP__RESERVE_BYTES", "1152921504606846976")],
    )
    .expect("hearthd");
    let (status, body) = settled_readiness(&blocked).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["schema"]["status"], "blocked", "{body}");
    assert_eq!(body["schema"]["version"], 7);
    assert_eq!(body["schema"]["expected"], 8);
    let reason = body["schema"]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("not enough space for a backup") && reason.contains("backup.reserve_bytes"),
        "{reason}"
    );
    // Still up, still answering, and the schema untouched.
    assert_eq!(blocked.api().get("/healthz").await.status, 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        sql(
            &postgres,
            &database,
            "SELECT max(version) FROM _sqlx_migrations WHERE success"
        ),
        "7"
    );
    assert_eq!(
        sql(
            &postgres,
            &database,
            "SELECT to_regclass('hearth_schema_compat') IS NULL"
        ),
        "t"
    );
    let documents = blocked.api().get("/v1/documents").await;
    assert_eq!(
        documents.status, 503,
        "nothing that needs the schema is served: {}",
        documents.body
    );
}

/// Records a migration `version` as a newer release would have: applied, with its declaration.
fn a_newer_release_applied(postgres: &TestPostgres, database: &str, version: i64, breaking: bool) {
    sql(
        postgres,
        database,
        &format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ({version}, 'a newer release', true, '\\x00', 1) ON CONFLICT (version) DO NOTHING; \
             INSERT INTO hearth_schema_compat (version, description, breaking) \
             VALUES ({version}, 'a newer release', {breaking}) \
             ON CONFLICT (version) DO UPDATE SET breaking = EXCLUDED.breaking"
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_older_hearthd_refuses_a_schema_declared_breaking_and_runs_on_one_declared_compatible() {
    let appliance = Appliance::new();
    let (postgres, url, database, backup_dir) = (
        &appliance.postgres,
        &appliance.url,
        &appliance.database,
        &appliance.backup_dir,
    );
    let start = || appliance.start();
    let kiln = appliance.with_kiln().await;
    let backup = hearthd_command(
        &[
            ("HEARTH_DATABASE__URL", url.clone()),
            ("HEARTH_BACKUP__DIR", backup_dir.clone()),
        ],
        &["backup"],
    );
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    // The path is the last line of stdout (logs go there too).
    let dump = String::from_utf8_lossy(&backup.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert!(
        dump.ends_with("-schema8-manual.dump") && Path::new(&dump).is_file(),
        "{dump}"
    );

    a_newer_release_applied(postgres, database, 9001, true);
    let mut refusing = start();
    let (status, body) = settled_readiness(&refusing).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["schema"]["status"], "incompatible", "{body}");
    let reason = body["schema"]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("9001 (a newer release) is declared breaking")
            && reason.contains(&format!("hearth restore {dump}")),
        "the refusal names the restore command and the backup: {reason}"
    );
    assert!(refusing.log_text().contains("refusing to run on the database"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        refusing.api().get("/healthz").await.status,
        200,
        "it stays up, no crash loop"
    );
    assert_eq!(
        sql(postgres, database, "SELECT count(*) FROM _sqlx_migrations"),
        "9",
        "nothing was touched"
    );
    assert!(refusing.terminate());

    // Declared compatible: the same hearthd runs on the newer schema and serves what is there.
    a_newer_release_applied(postgres, database, 9001, false);
    let running = start();
    let readiness = running.ready().await;
    assert_eq!(readiness.schema.version, Some(9001));
    assert!(
        found(&running, "how hot does a pottery kiln get")
            .await
            .contains(&kiln)
    );
    let capabilities = running.api().get("/v1/capabilities").await.body;
    assert_eq!(capabilities["schema"]["newest_known"], 8);
    assert_eq!(capabilities["schema"]["oldest_compatible"], 1);

    // Garbage where hearth keeps its records: a manifest that is not JSON, a record with NULs and invalid UTF-8.
    std::fs::write(format!("{backup_dir}/hearth-bogus.dump.json"), b"{not json").expect("write");
    std::fs::write(format!("{backup_dir}/hearth-bogus.dump"), b"x").expect("write");
    std::fs::write(format!("{backup_dir}/last-upgrade.json"), b"\0\xff\xfe{").expect("write");
    let reply = running.api().get("/v1/capabilities").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.body["last_upgrade"],
        Value::Null,
        "an unreadable record is left out"
    );
    assert_eq!(
        reply.body["backups"].as_array().map(Vec::len),
        Some(1),
        "only the real dump: {}",
        reply.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_of_something_that_is_not_a_sound_dump_refuses_and_touches_nothing() {
    let appliance = Appliance::new();
    appliance.with_kiln().await;
    let env = [
        ("HEARTH_DATABASE__URL", appliance.url.clone()),
        ("HEARTH_BACKUP__DIR", appliance.backup_dir.clone()),
    ];
    let output = |args: &[&str]| {
        let out = hearthd_command(&env, args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let scratch = tempfile::tempdir().expect("scratch");
    let not_a_dump = scratch.path().join("notes.dump");
    std::fs::write(&not_a_dump, b"\0\xffnot a dump at all").expect("write");
    let (ok, text) = output(&["restore", not_a_dump.to_str().expect("path")]);
    assert!(!ok && text.contains("pg_restore --list failed"), "{text}");
    let (ok, text) = output(&["restore", "/nonexistent/hearth.dump"]);
    assert!(
        !ok && text.contains("restoring /nonexistent/hearth.dump failed"),
        "{text}"
    );

    // A real dump whose bytes changed after its manifest was written.
    let (ok, text) = output(&["backup"]);
    assert!(ok, "{text}");
    let dump = text.lines().last().expect("path").to_owned();
    let mut bytes = std::fs::read(&dump).expect("dump");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&dump, bytes).expect("tamper");
    let (ok, text) = output(&["restore", &dump]);
    assert!(!ok && text.contains("does not match its manifest"), "{text}");
    assert_eq!(
        sql(
            &appliance.postgres,
            &appliance.database,
            "SELECT count(*) FROM documents"
        ),
        "1"
    );
    assert_eq!(
        sql(
            &appliance.postgres,
            &appliance.database,
            "SELECT max(version) FROM _sqlx_migrations"
        ),
        "8"
    );
}
