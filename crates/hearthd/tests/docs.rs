//! The README documents every config key, route and metric family that the code has, so the two cannot drift:
//! the keys come from `hearthd print-config`, the routes from the router's source, the metric families from a
//! running hearthd's `/metrics`.

use std::path::Path;
use std::process::Command;

use hearth_testkit::TestHearthd;

const HEARTHD: &str = env!("CARGO_BIN_EXE_hearthd");

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).expect("README.md")
}

/// Dotted keys of every leaf in a TOML table.
fn leaf_keys(prefix: &str, table: &toml::Table, keys: &mut Vec<String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => leaf_keys(&path, inner, keys),
            _ => keys.push(path),
        }
    }
}

#[test]
fn every_config_key_is_in_the_readme() {
    let output = Command::new(HEARTHD)
        .arg("print-config")
        .env_remove("HEARTH_LISTEN")
        .output()
        .expect("hearthd print-config");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let table: toml::Table = toml::from_str(&String::from_utf8_lossy(&output.stdout)).expect("toml");
    let mut keys = Vec::new();
    leaf_keys("", &table, &mut keys);
    assert!(keys.len() > 20, "{keys:?}");
    let readme = readme();
    let missing: Vec<_> = keys
        .iter()
        .filter(|key| !readme.contains(&format!("`{key}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "config keys missing from the README's table: {missing:?}"
    );
}

/// The paths of every `.route("…")` in one of hearthd's source files.
fn routes_in(file: &str) -> Vec<String> {
    let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).expect(file);
    source
        .split(".route(")
        .skip(1)
        .filter_map(|rest| rest.trim_start().strip_prefix('"')?.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_route_is_in_the_readme() {
    let routes = routes_in("src/http.rs");
    assert!(routes.len() >= 10, "{routes:?}");
    let readme = readme();
    let missing: Vec<_> = routes
        .iter()
        .filter(|route| {
            !["GET", "POST", "DELETE"]
                .iter()
                .any(|method| readme.contains(&format!("`{method} {route}`")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from the README's HTTP API table: {missing:?}"
    );
}

#[test]
fn every_web_ui_page_is_in_the_readme() {
    let routes = routes_in("src/ui/mod.rs");
    assert!(routes.len() >= 8, "{routes:?}");
    let readme = readme();
    let missing: Vec<_> = routes
        .iter()
        .filter(|route| !readme.contains(&format!("`{route}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "web UI paths missing from the README's Web UI table: {missing:?}"
    );
}

#[tokio::test]
async fn every_metric_family_is_in_the_readme() {
    // Labelled series start at zero, so a family is listed before any event: neither database nor model is
    // needed. One request first, for the HTTP families.
    let hearthd =
        TestHearthd::start(HEARTHD.as_ref(), "postgres:///unused?host=/nonexistent", &[]).expect("hearthd");
    reqwest::get(format!("{}/healthz", hearthd.url))
        .await
        .expect("healthz");
    let text = reqwest::get(format!("{}/metrics", hearthd.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let families: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .collect();
    assert!(families.len() >= 15, "{text}");
    let readme = readme();
    let missing: Vec<_> = families
        .iter()
        .filter(|family| !readme.contains(&format!("`{family}")))
        .collect();
    assert!(
        missing.is_empty(),
        "metric families missing from the README: {missing:?}\n{text}"
    );
}
