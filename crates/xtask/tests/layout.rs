//! Where code lives, checked: SQL only in hearth-core's `store/`, no hearthd handler reaching past the library into
//! `store`, no function in hearthd or hearth-core over 80 lines, and docs/development.md's map naming real files.

use std::path::{Path, PathBuf};

const MAX_FUNCTION_LINES: usize = 80;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut pending = vec![root().join(dir)];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = std::fs::read_to_string(&path).expect("source");
                let shown = path.strip_prefix(root()).unwrap_or(&path).display().to_string();
                found.push((shown.replace("../", ""), text));
            }
        }
    }
    found.sort();
    found
}

/// The sources of the crates the layout rules cover.
fn covered_sources() -> Vec<(String, String)> {
    [
        "crates/hearthd/src",
        "crates/hearth-core/src",
        "crates/hearth-api/src",
        "crates/hearth-cli/src",
    ]
    .into_iter()
    .flat_map(sources)
    .collect()
}

/// The code of a line: comments and doc comments dropped.
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or_default()
}

/// `(name, first line, length)` of every `fn` with a body, by brace depth from its signature.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let trimmed = code(line).trim_start();
        let signature = ["pub(crate) ", "pub(super) ", "pub ", "async ", "const "]
            .iter()
            .fold(trimmed, |rest, prefix| rest.strip_prefix(prefix).unwrap_or(rest));
        let signature = signature.strip_prefix("async ").unwrap_or(signature);
        let Some(rest) = signature.strip_prefix("fn ") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let (mut depth, mut opened) = (0i64, false);
        for (offset, body) in lines[start..].iter().enumerate() {
            let body = code(body);
            depth += body.matches('{').count() as i64 - body.matches('}').count() as i64;
            opened |= body.contains('{');
            if !opened && body.trim_end().ends_with(';') {
                break;
            }
            if opened && depth <= 0 {
                found.push((name.clone(), start + 1, offset + 1));
                break;
            }
        }
    }
    found
}

#[test]
fn no_function_in_hearthd_or_hearth_core_is_longer_than_80_lines() {
    let mut long = Vec::new();
    for (path, text) in covered_sources() {
        for (name, line, length) in functions(&text) {
            if length > MAX_FUNCTION_LINES {
                long.push(format!("{path}:{line} {name} ({length} lines)"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "split these into functions that each do one thing:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_function_scan_measures_what_it_should() {
    let text = "fn short() {\n    1\n}\n\npub async fn nested() {\n    if x {\n        y();\n    }\n}\n";
    assert_eq!(functions(text), [("short".into(), 1, 3), ("nested".into(), 5, 5)]);
}

/// SQL in a string literal, or a query built by sqlx.
fn has_sql(line: &str) -> bool {
    let code = code(line);
    code.contains("sqlx::query")
        || [
            "\"SELECT ",
            "\"INSERT INTO ",
            "\"UPDATE ",
            "\"DELETE FROM ",
            "\"CREATE ",
        ]
        .iter()
        .any(|statement| code.contains(statement))
}

#[test]
fn sql_lives_only_in_hearth_cores_store() {
    let mut outside = Vec::new();
    for (path, text) in covered_sources() {
        if path.starts_with("crates/hearth-core/src/store/") {
            continue;
        }
        for (number, line) in text.lines().enumerate() {
            if has_sql(line) {
                outside.push(format!("{path}:{}: {}", number + 1, line.trim()));
            }
        }
    }
    assert!(
        outside.is_empty(),
        "SQL outside crates/hearth-core/src/store/ (give the store a function for it):\n{}",
        outside.join("\n")
    );
    assert!(has_sql(r#"    sqlx::query("SELECT 1")"#) && !has_sql("// SELECT in a comment"));
}

#[test]
fn hearthds_handlers_reach_the_database_only_through_the_library() {
    // The doctor checks a database before any library exists; every other module goes through `Library`.
    let mut reaching = Vec::new();
    for (path, text) in sources("crates/hearthd/src") {
        if path.ends_with("/doctor.rs") {
            continue;
        }
        for (number, line) in text.lines().enumerate() {
            let code = code(line);
            if code.contains("store::") || code.contains("sqlx::query") || code.contains("PgPool") {
                reaching.push(format!("{path}:{}: {}", number + 1, line.trim()));
            }
        }
    }
    assert!(
        reaching.is_empty(),
        "hearthd reaches past the library (add a Library verb instead):\n{}",
        reaching.join("\n")
    );
}

#[test]
fn every_file_docs_development_names_exists() {
    let map = std::fs::read_to_string(root().join("docs/development.md")).expect("docs/development.md");
    let mut missing = Vec::new();
    for quoted in map.split('`').skip(1).step_by(2) {
        let is_path = quoted.starts_with("crates/") && !quoted.contains([' ', '*', '…']);
        if is_path && !root().join(quoted.trim_end_matches('/')).exists() {
            missing.push(quoted.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "docs/development.md names paths that do not exist: {missing:?}"
    );
}
