//! The OpenAPI document against the real hearthd: valid OpenAPI 3.1, exactly the routes of the README's table, and
//! schemathesis, fuzzing every operation from it, finds no server error and no answer outside it.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use hearth_testkit::{TestHearthd, TestPostgres, test_python};
use serde_json::Value;

const HEARTHD: &str = env!("CARGO_BIN_EXE_hearthd");
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// A fixed seed, so a failure is reproducible; `HEARTH_SCHEMATHESIS_SEED` explores others.
const DEFAULT_SEED: &str = "20261201";

/// Reads an OpenAPI document on stdin and validates it against the OpenAPI 3.1 specification's schema.
const VALIDATE: &str = r#"
import json, sys
from openapi_spec_validator import validate
from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator
spec = json.load(sys.stdin)
validate(spec, cls=OpenAPIV31SpecValidator)
print("valid OpenAPI", spec["openapi"])
"#;

fn operations(document: &Value) -> BTreeSet<String> {
    let paths = document["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|method| item.get(**method).is_some())
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect()
}

/// The `METHOD /path` of every row of the README's HTTP API table.
fn readme_routes() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
        .expect("README.md");
    readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|route| {
            METHODS
                .iter()
                .any(|method| route.starts_with(&format!("{} /", method.to_uppercase())))
        })
        .map(str::to_owned)
        .collect()
}

async fn serving() -> (TestPostgres, TestHearthd) {
    let postgres = TestPostgres::start().expect("postgres");
    let database = postgres.create_database().expect("database");
    let hearthd = TestHearthd::start(HEARTHD.as_ref(), &database, &[]).expect("hearthd");
    hearthd.ready().await;
    (postgres, hearthd)
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1_and_lists_exactly_the_readmes_routes() {
    let python = test_python().expect("run `cargo xtask deps`");
    let (_postgres, hearthd) = serving().await;
    let reply = hearthd.api().get("/openapi.json").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let document = reply.body;
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        document["openapi"]
    );

    let mut child = Command::new(python)
        .args(["-c", VALIDATE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(document.to_string().as_bytes())
        .expect("write the document");
    let output = child.wait_with_output().expect("validator");
    assert!(
        output.status.success(),
        "not a valid OpenAPI 3.1 document:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let documented = operations(&document);
    let listed = readme_routes();
    assert!(listed.len() >= 12, "the README's table was not found: {listed:?}");
    assert_eq!(
        documented, listed,
        "the OpenAPI document and the README's HTTP API table differ"
    );
    // Every operation answers errors in a documented body.
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                assert!(
                    operation["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{method} {path} documents no response"
                );
            }
        }
    }
}

/// The operations that call the reasoning provider, or set it: a provider that is away or refuses is a
/// documented 502/503/504 there, not a bug, so their run leaves out `not_a_server_error`.
const PROVIDER_ROUTES: &str = "^/v1/(answer|chat/completions|settings/reasoning)";

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_schema() {
    let python = test_python().expect("run `cargo xtask deps`");
    let postgres = TestPostgres::start().expect("postgres");
    let database = postgres.create_database().expect("database");
    let keys = tempfile::tempdir().expect("tempdir");
    let key = keys.path().join("encryption-key");
    std::fs::write(&key, [5u8; 32]).expect("key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o400)).expect("chmod");
    // Providers schemathesis invents are not there: fail fast rather than wait out retries.
    let settings = [
        (
            "HEARTH_REASONING__ENCRYPTION_KEY_FILE",
            key.to_str().expect("utf-8"),
        ),
        ("HEARTH_REASONING__TIMEOUT_SECONDS", "2"),
        ("HEARTH_REASONING__MAX_RETRIES", "0"),
    ];
    let hearthd = TestHearthd::start(HEARTHD.as_ref(), &database, &settings).expect("hearthd");
    hearthd.ready().await;
    // Every operation but the document itself, which schemathesis reads rather than fuzzes.
    let mut expected = operations(&hearthd.api().get("/openapi.json").await.body);
    expected.remove("GET /openapi.json");
    // Fuzzing and stateful testing repeat until this is spent; `HEARTH_SCHEMATHESIS_SECONDS` for a longer hunt.
    let seconds: u64 = std::env::var("HEARTH_SCHEMATHESIS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90);
    let all_checks =
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";
    let mut tested = schemathesis(
        &python,
        &hearthd,
        "core",
        &["--exclude-path-regex", PROVIDER_ROUTES],
        all_checks,
        seconds,
    )
    .await;
    let provider_checks = "status_code_conformance,content_type_conformance,response_schema_conformance";
    tested.extend(
        schemathesis(
            &python,
            &hearthd,
            "provider",
            &["--include-path-regex", PROVIDER_ROUTES],
            provider_checks,
            seconds / 3,
        )
        .await,
    );
    assert_eq!(tested, expected, "schemathesis did not test every operation");
}

/// One schemathesis run over the operations `filter` selects; returns the operations it tested.
async fn schemathesis(
    python: &Path,
    hearthd: &TestHearthd,
    name: &str,
    filter: &[&str],
    checks: &str,
    seconds: u64,
) -> BTreeSet<String> {
    let seed = std::env::var("HEARTH_SCHEMATHESIS_SEED").unwrap_or_else(|_| DEFAULT_SEED.into());
    let report = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("schemathesis-{name}-junit.xml"));
    let _ = std::fs::remove_file(&report);
    let junit = report.clone();
    let schema = format!("{}/openapi.json", hearthd.url);
    let mut command = Command::new(python);
    command
        // schemathesis keeps a cache in its working directory: not in the source tree.
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .args(["-m", "schemathesis.cli", "run", &schema, "--no-color"])
        .args(filter)
        .args(["--checks", checks])
        // One worker: with two threads, hypothesis's ast.parse races inside CPython 3.11.7 ("SystemError: AST
        // constructor recursion depth mismatch", fixed in 3.11.8), which failed a CI run in schemathesis itself.
        .args([
            "--seed",
            &seed,
            "--max-examples",
            "40",
            "--workers",
            "1",
            "--max-time",
            &seconds.to_string(),
        ])
        .args([
            "--generation-database",
            "none",
            "--report",
            "junit",
            "--report-junit-path",
        ])
        .arg(&junit)
        .env("NO_PROXY", "*");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // The seed and summary are in schemathesis's own output; shown with the test's output, and on failure.
    println!("{stdout}");
    assert!(
        output.status.success(),
        "schemathesis ({name}) found problems (seed and reproduction above):\n{stdout}\n{}\nhearthd's log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        hearthd.log_text()
    );
    let junit = std::fs::read_to_string(&report).expect("schemathesis's JUnit report");
    junit
        .split("<testcase name=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|name| name.contains(" /"))
        .map(str::to_owned)
        .collect()
}
