//! Bearer-token auth and the LAN bind policy, against the real hearthd binary over real HTTP.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use hearth_testkit::{TestHearthd, TestPostgres};
use serde_json::Value;

const HEARTHD: &str = env!("CARGO_BIN_EXE_hearthd");

/// A systemd-style credentials directory holding `api-token`, as LoadCredential= would pass it.
fn credentials(token: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("api-token");
    std::fs::write(&path, token).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    dir
}

fn fingerprint(token: &str) -> String {
    hearth_core::digest::fingerprint(token.as_bytes())
}

fn check_config(env: &[(&str, &str)], credentials: Option<&Path>) -> Output {
    let mut command = Command::new(HEARTHD);
    command.arg("check-config").envs(env.iter().copied());
    if let Some(dir) = credentials {
        command.env("CREDENTIALS_DIRECTORY", dir);
    }
    command.output().expect("hearthd runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn a_token_guards_every_route_but_the_open_ones_and_logs_show_only_its_fingerprint() {
    let postgres = TestPostgres::start().expect("postgres");
    let database = postgres.create_database().expect("database");
    let token = "tok_".to_owned() + &"Zq9-".repeat(10);
    let credentials = credentials(&token);
    let credentials_dir = credentials.path().to_str().expect("utf-8");
    let hearthd = TestHearthd::start(
        Path::new(HEARTHD),
        &database,
        &[
            ("CREDENTIALS_DIRECTORY", credentials_dir),
            // Loopback is trusted by default; this test is the LAN client, so it is not.
            ("HEARTH_AUTH__TRUST_LOOPBACK", "false"),
        ],
    )
    .expect("hearthd starts");
    let client = reqwest::Client::new();
    let get = |path: &str, authorization: Option<&str>| {
        let mut request = client.get(format!("{}{path}", hearthd.url));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.send()
    };

    let open = get("/healthz", None).await.expect("healthz");
    assert_eq!(open.status(), 200);

    let basic = format!("Basic {token}");
    for (authorization, hint) in [
        (None, "needs a bearer token"),
        (
            Some("Bearer not-the-token-not-the-token-not-the-token"),
            "not valid here",
        ),
        (Some(basic.as_str()), "Bearer <token>"),
    ] {
        let refused = get("/metrics", authorization).await.expect("metrics");
        assert_eq!(refused.status(), 401, "{authorization:?}");
        assert_eq!(refused.headers()["www-authenticate"], "Bearer");
        let body: Value = refused.json().await.expect("json");
        assert_eq!(body["code"], "unauthorized");
        assert!(
            body["message"].as_str().expect("message").contains(hint),
            "{body}"
        );
    }
    let embeddings = client
        .post(format!("{}/v1/embeddings", hearthd.url))
        .json(&serde_json::json!({ "input": "x" }))
        .send()
        .await
        .expect("embeddings");
    assert_eq!(
        embeddings.status(),
        401,
        "auth comes before the model's readiness"
    );

    let allowed = get("/metrics", Some(&format!("Bearer {token}")))
        .await
        .expect("metrics");
    assert_eq!(allowed.status(), 200);

    let log = hearthd.log_text();
    assert!(
        log.contains(&format!("identity=token:{}", fingerprint(&token))),
        "no request line with the token's fingerprint:\n{log}"
    );
    assert!(log.contains("identity=rejected"), "{log}");
    assert!(!log.contains(&token), "the token was logged");
}

#[test]
fn a_lan_listen_address_needs_a_token() {
    let lan = [("HEARTH_LISTEN", "0.0.0.0:8080")];
    let refused = check_config(&lan, None);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("without a bearer token"),
        "{}",
        text(&refused)
    );

    let token = "t".repeat(20) + &"0123456789".repeat(3);
    let credentials = credentials(&token);
    let accepted = check_config(&lan, Some(credentials.path()));
    assert!(accepted.status.success(), "{}", text(&accepted));
    assert!(
        text(&accepted).contains(&fingerprint(&token)),
        "{}",
        text(&accepted)
    );
    assert!(!text(&accepted).contains(&token));
}

#[test]
fn an_exposed_token_file_stops_hearthd_naming_it() {
    let credentials = credentials(&"k".repeat(48));
    let path = credentials.path().join("api-token");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let refused = check_config(&[], Some(credentials.path()));
    assert!(!refused.status.success());
    let printed = text(&refused);
    assert!(
        printed.contains(&path.display().to_string()) && printed.contains("chmod 0400"),
        "{printed}"
    );
}

#[test]
fn a_missing_token_file_fails_check_config_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("api-token");
    let setting = format!("[\"{}\"]", missing.display());
    let refused = check_config(&[("HEARTH_AUTH__TOKEN_FILES", &setting)], None);
    assert!(!refused.status.success(), "a missing token file passed");
    let printed = text(&refused);
    assert!(
        printed.contains(&format!("token file {}: cannot open", missing.display())),
        "{printed}"
    );
}
