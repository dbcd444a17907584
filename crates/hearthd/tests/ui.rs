//! The web UI in a real browser (Debian's Chromium, driven by playwright-core from `tests/browser/ui.cjs`) against
//! the real hearthd, PostgreSQL and the test model: sign-in, uploads, search, the document, deletion, sign-out,
//! cross-site and rebinding refusals, keyboard reach and axe-core on every page. Screenshots of every page at
//! phone and laptop width are left in `target/tmp/ui-screenshots/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use hearth_testkit::{TestHearthd, TestPostgres, chromium, node_modules};
use serde_json::Value;

const HEARTHD: &str = env!("CARGO_BIN_EXE_hearthd");
const TOKEN: &str = "ui-test-token-0123456789abcdefghijklmnopqrstuvwxyz";

const HARBOUR: &str = "The fishing boats leave the harbour at dawn, when the tide turns, and come back by noon \
                       with the morning's catch for the market on the quay.";
const GARDEN: &str = "# The garden\n\nTomatoes ripen in late summer; basil grows best beside them.\n";

fn write_secret(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o400)).expect("chmod");
    path
}

fn fixtures(dir: &Path) {
    std::fs::write(dir.join("harbour.txt"), HARBOUR).expect("txt");
    std::fs::write(dir.join("garden.md"), GARDEN).expect("md");
    let pdf = common::pdf_with_text("Lighthouses guide the ships home at night");
    std::fs::write(dir.join("lighthouse.pdf"), pdf).expect("pdf");
}

/// PostgreSQL and a ready hearthd whose token is `secrets/api-token`, with `extra` settings. As on the LAN, the
/// browser is not trusted for being on loopback: only its session lets it in.
async fn serving(secrets: &Path, extra: &[(&str, &str)]) -> (TestPostgres, String, TestHearthd) {
    let token_file = write_secret(secrets, "api-token", TOKEN);
    let token_files = format!("[\"{}\"]", token_file.display());
    let postgres = TestPostgres::start().expect("postgres");
    let database = postgres.create_database().expect("database");
    let mut settings = vec![
        ("HEARTH_AUTH__TOKEN_FILES", token_files.as_str()),
        ("HEARTH_AUTH__TRUST_LOOPBACK", "false"),
        ("HEARTH_AUTH__OPEN_ROUTES", "[\"/healthz\", \"/readyz\"]"),
    ];
    settings.extend_from_slice(extra);
    let hearthd = TestHearthd::start(HEARTHD.as_ref(), &database, &settings).expect("hearthd");
    hearthd.ready().await;
    (postgres, database, hearthd)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_signs_in_uploads_searches_deletes_and_signs_out_in_a_real_browser() {
    let modules = node_modules().expect("run `cargo xtask deps`");
    let chromium = chromium().expect("run `cargo xtask deps`");
    let secrets = tempfile::tempdir().expect("tempdir");
    // Written by `serving`.
    let token_file = secrets.path().join("api-token");
    let fixture_dir = tempfile::tempdir().expect("tempdir");
    fixtures(fixture_dir.path());
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("screenshot dir");

    let (_postgres, _database, hearthd) = serving(secrets.path(), &[]).await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/ui.cjs");
    let run = Command::new("node")
        .arg(&script)
        .env("NODE_PATH", &modules)
        .env("HEARTH_URL", &hearthd.url)
        .env("HEARTH_TOKEN_FILE", &token_file)
        .env("HEARTH_FIXTURES", fixture_dir.path())
        .env("HEARTH_OUT", &out)
        .env("HEARTH_CHROMIUM", &chromium)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}\nhearthd:\n{}",
        hearthd.log_text()
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().expect("summary")).expect("json");
    assert_eq!(summary["ok"], true, "{summary}");

    // What the browser did, seen from the API with the token.
    let http = reqwest::Client::new();
    let listed: Value = http
        .get(format!("{}/v1/documents", hearthd.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let mut titles: Vec<&str> = listed["documents"]
        .as_array()
        .expect("documents")
        .iter()
        .map(|d| d["title"].as_str().unwrap_or_default())
        .collect();
    titles.sort_unstable();
    assert_eq!(
        titles,
        ["harbour.txt", "lighthouse.pdf"],
        "two uploads stay, the deleted one and nothing planted"
    );
    for page in ["home", "library", "search", "document", "settings", "signin"] {
        for width in ["phone", "laptop"] {
            let shot = out.join(format!("{page}-{width}.png"));
            assert!(shot.is_file(), "{} was not taken", shot.display());
        }
    }
    for (page, bytes) in summary["weights"].as_object().expect("weights") {
        assert!(
            bytes.as_u64().expect("bytes") < 150_000,
            "{page} weighs {bytes} bytes"
        );
    }
    let log = hearthd.log_text();
    assert!(!log.contains(TOKEN), "the token is in hearthd's log");
    assert!(log.contains("a browser signed in"), "{log}");
}

/// `application/x-www-form-urlencoded`, as a browser encodes a form field.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The sign-in's refusals, over plain HTTP: each is what a hostile client would try first.
#[tokio::test(flavor = "multi_thread")]
async fn sign_in_refuses_what_it_must_and_a_flood_of_wrong_codes_cannot_lock_out_the_token() {
    let secrets = tempfile::tempdir().expect("tempdir");
    let code_file = write_secret(secrets.path(), "setup-code", "K7QM-4XWD-9RTB-HN2P");
    let code_file = code_file.to_str().expect("utf-8");
    let (postgres, database, hearthd) =
        serving(secrets.path(), &[("HEARTH_AUTH__SETUP_CODE_FILE", code_file)]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let origin = hearthd.url.clone();
    let sign_in = |secret: &str, next: &str, with_origin: bool| {
        let mut request = http
            .post(format!("{}/signin", hearthd.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "secret={}&next={}",
                form_encode(secret),
                form_encode(next)
            ));
        if with_origin {
            request = request.header("origin", &origin);
        }
        request.send()
    };

    // A form posted by something that is not a page (no Origin): refused before the secret is looked at.
    let bare = sign_in(TOKEN, "/", false).await.expect("post");
    assert_eq!(bare.status(), 403);
    // The code typed loosely signs in; `next` leads only to a path on this site.
    let loose = sign_in("k7qm 4xwd 9rtb hn2p", "//evil.example/", true)
        .await
        .expect("post");
    assert_eq!(loose.status(), 303);
    assert_eq!(loose.headers()["location"], "/");
    let cookie = loose.headers()["set-cookie"].to_str().expect("ascii").to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let session = cookie.split(';').next().expect("pair").to_owned();

    // With the session, the API answers a read; a change without the page's Origin is refused.
    let read = http
        .get(format!("{}/v1/documents", hearthd.url))
        .header("cookie", &session)
        .send()
        .await
        .expect("get");
    assert_eq!(read.status(), 200);
    let planted = http
        .post(format!("{}/v1/documents", hearthd.url))
        .header("cookie", &session)
        .header("content-type", "text/plain")
        .body("no origin")
        .send()
        .await
        .expect("post");
    assert_eq!(planted.status(), 403);

    // An expired session opens nothing: the API refuses it and a page asks to sign in.
    postgres
        .psql(
            &common::database_name(&database),
            "UPDATE browser_sessions SET expires_at = now() - interval '1 second'",
        )
        .expect("psql");
    let expired = http
        .get(format!("{}/v1/documents", hearthd.url))
        .header("cookie", &session)
        .send()
        .await
        .expect("get");
    assert_eq!(expired.status(), 401);
    let page = http
        .get(format!("{}/settings", hearthd.url))
        .header("cookie", &session)
        .send()
        .await
        .expect("get");
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/signin?next=%2Fsettings");

    // Ten wrong codes in a minute: the next attempt at the code is refused even when right, the token is not.
    for _ in 0..10 {
        let wrong = sign_in("AAAA-BBBB-CCCC-DDDD", "/", true).await.expect("post");
        assert_eq!(wrong.status(), 401);
    }
    let limited = sign_in("K7QM-4XWD-9RTB-HN2P", "/", true).await.expect("post");
    assert_eq!(limited.status(), 429);
    assert!(
        limited
            .text()
            .await
            .expect("body")
            .contains("sign in with the API token")
    );
    let token = sign_in(TOKEN, "/library", true).await.expect("post");
    assert_eq!(token.status(), 303);
    assert_eq!(token.headers()["location"], "/library");
}
