//! `hearthd doctor` against the real parts: all checks pass on a good setup, and each broken part fails its own
//! check with a fix, in text and JSON.

use std::process::{Command, Output};

use hearth_testkit::{Deps, TestPostgres};
use serde_json::Value;

const HEARTHD: &str = env!("CARGO_BIN_EXE_hearthd");

/// `hearthd doctor [--json]` with these `HEARTH_*` settings over a clean environment of config.
fn doctor(settings: &[(&str, &str)], json: bool) -> Output {
    let mut command = Command::new(HEARTHD);
    command.arg("doctor");
    if json {
        command.arg("--json");
    }
    for (key, _) in std::env::vars() {
        if key.starts_with("HEARTH_") || key == "ORT_DYLIB_PATH" || key == "CREDENTIALS_DIRECTORY" {
            command.env_remove(key);
        }
    }
    command
        .envs(settings.iter().copied())
        .output()
        .expect("hearthd doctor runs")
}

/// Status of each check by name, from `--json` output.
fn statuses(output: &Output) -> Vec<(String, String)> {
    let body: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
    body["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("name").to_owned(),
                c["status"].as_str().expect("status").to_owned(),
            )
        })
        .collect()
}

fn status_of<'a>(statuses: &'a [(String, String)], name: &str) -> &'a str {
    &statuses
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no check {name}: {statuses:?}"))
        .1
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

#[test]
fn doctor_passes_a_good_setup_and_names_each_broken_part_with_a_fix() {
    let postgres = TestPostgres::start().expect("postgres");
    let database = postgres.create_database().expect("database");
    let deps = Deps::load().expect("deps");
    let blobs = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(blobs.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    let model = deps.test_model_dir.display().to_string();
    let onnxruntime = deps.ort_dylib.display().to_string();
    let blob_path = blobs.path().display().to_string();
    let listen = format!("127.0.0.1:{}", free_port());
    let good = [
        ("HEARTH_DATABASE__URL", database.as_str()),
        ("HEARTH_EMBEDDING__MODEL_DIR", model.as_str()),
        ("HEARTH_EMBEDDING__ONNXRUNTIME", onnxruntime.as_str()),
        ("HEARTH_BLOBS__PATH", blob_path.as_str()),
        ("HEARTH_LISTEN", listen.as_str()),
    ];
    let with = |changes: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        good.iter()
            .map(|(k, v)| {
                let value = changes.iter().find(|(ck, _)| ck == k).map_or(*v, |(_, cv)| *cv);
                (*k, value.to_owned())
            })
            .chain(
                changes
                    .iter()
                    .filter(|(ck, _)| !good.iter().any(|(k, _)| k == ck))
                    .map(|(k, v)| (*k, (*v).to_owned())),
            )
            .collect()
    };
    let run = |settings: &[(&'static str, String)], json: bool| {
        let borrowed: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        doctor(&borrowed, json)
    };

    // All good: exit 0, every check ok, in the documented order.
    let output = run(&with(&[]), true);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let all = statuses(&output);
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "config",
            "tokens",
            "model",
            "onnxruntime",
            "database",
            "blobs",
            "data-dirs",
            "listen"
        ]
    );
    assert!(all.iter().all(|(_, s)| s == "ok"), "{all:?}");

    // Database unreachable, model tampered, blob directory readable by others, the listen port taken and no
    // token for a LAN address: each fails on its own line with a fix.
    let model_copy = hearth_testkit::test_model_copy().expect("model copy");
    std::fs::write(model_copy.path().join("tokenizer.json"), b"{}").expect("tamper");
    let loose_blobs = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        loose_blobs.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let held = std::net::TcpListener::bind("0.0.0.0:0").expect("hold a port");
    let held_address = format!("0.0.0.0:{}", held.local_addr().expect("address").port());
    let broken = with(&[
        ("HEARTH_DATABASE__URL", "postgres:///hearth?host=/nonexistent"),
        (
            "HEARTH_EMBEDDING__MODEL_DIR",
            model_copy.path().to_str().expect("utf-8"),
        ),
        ("HEARTH_BLOBS__PATH", loose_blobs.path().to_str().expect("utf-8")),
        ("HEARTH_LISTEN", &held_address),
    ]);
    let output = run(&broken, true);
    assert!(!output.status.success(), "doctor passed a broken setup");
    let found = statuses(&output);
    for (name, expected) in [
        ("config", "ok"),
        ("tokens", "fail"),
        ("model", "fail"),
        ("onnxruntime", "skipped"),
        ("database", "fail"),
        ("blobs", "ok"),
        ("data-dirs", "fail"),
        ("listen", "fail"),
    ] {
        assert_eq!(status_of(&found, name), expected, "{name}: {found:?}");
    }
    let text = run(&broken, false);
    let text = String::from_utf8_lossy(&text.stdout);
    for needle in [
        "FAIL  model",
        "tokenizer.json",
        "FAIL  database",
        "start PostgreSQL",
        "FAIL  data-dirs",
        "mode 0755",
        "FAIL  listen",
        "FAIL  tokens",
        "refusing to listen",
        "fix: ",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }

    // pgvector missing from the database, and an onnxruntime that is not there.
    postgres
        .psql("postgres", "CREATE DATABASE doctor_novector")
        .expect("create database");
    let novector = postgres.url("doctor_novector");
    let output = run(
        &with(&[
            ("HEARTH_DATABASE__URL", &novector),
            ("HEARTH_EMBEDDING__ONNXRUNTIME", "/nonexistent/libonnxruntime.so"),
        ]),
        false,
    );
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("FAIL  database") && text.contains("CREATE EXTENSION vector"),
        "{text}"
    );
    assert!(
        text.contains("FAIL  onnxruntime") && text.contains("/nonexistent/libonnxruntime.so"),
        "{text}"
    );

    // An invalid configuration fails the first check, names the key, and skips the rest.
    let output = run(&with(&[("HEARTH_INGEST__WORKRES", "2")]), true);
    assert!(!output.status.success());
    let found = statuses(&output);
    assert_eq!(status_of(&found, "config"), "fail");
    assert!(found[1..].iter().all(|(_, s)| s == "skipped"), "{found:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("ingest.workers"));
    drop(held);
}
