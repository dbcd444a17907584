//! `hearth doctor` runs the same checks as `hearthd doctor`, reading hearthd's config file.

use std::process::Command;

use hearth_testkit::{Deps, TestPostgres};
use serde_json::Value;

const HEARTH: &str = env!("CARGO_BIN_EXE_hearth");

#[test]
fn the_cli_doctor_reads_hearthds_config_file_and_checks_the_real_parts() {
    let postgres = TestPostgres::start().expect("postgres");
    let database = postgres.create_database().expect("database");
    let deps = Deps::load().expect("deps");
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = dir.path().join("blobs");
    std::fs::create_dir(&blobs).expect("blobs");
    std::fs::set_permissions(&blobs, std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let config = dir.path().join("hearth.toml");
    let write = |extra: &str| {
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\n{extra}\n[database]\nurl = \"{database}\"\n[embedding]\n\
                 model_dir = \"{}\"\nonnxruntime = \"{}\"\n[blobs]\npath = \"{}\"\n",
                deps.test_model_dir.display(),
                deps.ort_dylib.display(),
                blobs.display()
            ),
        )
        .expect("config")
    };
    let doctor = || {
        let output = Command::new(HEARTH)
            .args(["doctor", "--json", "--config"])
            .arg(&config)
            .env_remove("HEARTH_LISTEN")
            .output()
            .expect("hearth doctor");
        let body: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
        (output.status.success(), body)
    };

    write("");
    let (passed, body) = doctor();
    assert!(passed, "{body}");
    assert_eq!(body["passed"], true);
    assert_eq!(body["checks"].as_array().map(Vec::len), Some(8), "{body}");

    write("workers = 2");
    let (passed, body) = doctor();
    assert!(!passed);
    assert_eq!(body["checks"][0]["name"], "config");
    assert_eq!(body["checks"][0]["status"], "fail");
    assert!(
        body["checks"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("workers")),
        "{body}"
    );
}
