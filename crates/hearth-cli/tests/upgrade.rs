//! The readiness wait `hearth upgrade` and `hearth rollback` gate on, against a real hearthd that never becomes
//! ready (its migration is held: no room for the backup before it), and one that does.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use hearth_testkit::{TestHearthd, TestPostgres};

const HEARTH: &str = env!("CARGO_BIN_EXE_hearth");

/// hearthd, built beside this binary by the workspace's test run (as `hearth doctor` finds it).
fn hearthd() -> PathBuf {
    Path::new(HEARTH).parent().expect("target dir").join("hearthd")
}

fn status_wait(url: &str, seconds: &str) -> (Option<i32>, String, f64) {
    let started = Instant::now();
    let output = Command::new(HEARTH)
        .args(["--url", url, "status", "--wait", seconds])
        .output()
        .expect("hearth runs");
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text, started.elapsed().as_secs_f64())
}

#[test]
fn the_wait_gives_up_on_a_hearthd_that_never_becomes_ready_with_its_reason_and_returns_once_one_is() {
    let postgres = TestPostgres::start().expect("postgres");
    let url = postgres.create_database().expect("database");
    let database = url
        .split('?')
        .next()
        .and_then(|base| base.rsplit('/').next())
        .expect("name")
        .to_owned();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut first = TestHearthd::start(&hearthd(), &url, &[]).expect("hearthd");
    runtime.block_on(first.ready());
    let (code, text, _) = status_wait(&first.url, "30");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("\"status\": \"ready\""), "{text}");
    assert!(first.terminate());

    // The schema as the release before the newest migration left it, and no room for the backup before it.
    postgres
        .psql(
            &database,
            "DROP TABLE hearth_schema_compat; DELETE FROM _sqlx_migrations WHERE version = 8",
        )
        .expect("psql");
    let blocked = TestHearthd::start(
        &hearthd(),
        &url,
        &[("HEARTH_BACKUP__RESERVE_BYTES", "1152921504606846976")],
    )
    .expect("hearthd");
    let (code, text, seconds) = status_wait(&blocked.url, "12");
    assert_eq!(code, Some(3), "not ready is exit 3: {text}");
    assert!(seconds >= 12.0, "it waited the whole time: {seconds} s");
    assert!(text.contains("not ready after 12 s"), "{text}");
    assert!(
        text.contains("schema blocked: not enough space for a backup"),
        "the reason is hearthd's own: {text}"
    );
    assert!(
        text.contains("waiting for hearthd (10 s)"),
        "progress while waiting: {text}"
    );

    // Nothing answering at all is waited for too, and given up on the same way.
    let (code, text, _) = status_wait("http://127.0.0.1:9", "2");
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("hearthd does not answer"), "{text}");
}
