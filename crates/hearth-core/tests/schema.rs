//! The schema compatibility rule, enforced against real PostgreSQL + pgvector: every migration is applied on top
//! of the one before, and the previous release's statements (its store's SQL, kept per schema version in
//! `tests/store-queries/<version>.json`) are prepared against it. A migration declared `expand` must leave every
//! one of them preparing; one that does not must say `breaking`, so that an older hearthd refuses the schema and
//! names the restore instead of running on it.
//!
//! `tests/store-queries/<newest>.json` must be the store as it is now. After changing the store's SQL, rewrite
//! it with `HEARTH_WRITE_STORE_QUERIES=1 cargo nextest run -p hearth-core --test schema`; when a new migration is
//! added, the previous file stays as the last release left it and a new one is written for the new version.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hearth_core::schema::{Compat, declared};
use hearth_core::store::MIGRATOR;
use hearth_testkit::TestPostgres;
use serde_json::{Value, json};

fn snapshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/store-queries")
}

fn snapshot_path(version: i64) -> PathBuf {
    snapshots().join(format!("{version:04}.json"))
}

fn newest() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().expect("a migration")
}

/// The SQL statements in the Rust sources under `dir` (string literals starting with a statement keyword, a
/// `format!` template's constants substituted and its other arguments replaced by `1`), normalised and sorted.
fn statements_in(dir: &Path) -> BTreeSet<String> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("sources") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(std::fs::read_to_string(&path).expect("source"));
            }
        }
    }
    files.iter().flat_map(|text| statements_of(text)).collect()
}

fn statements_of(source: &str) -> Vec<String> {
    let literals = string_literals(source);
    // `const NAME: &str = "…";` and `macro_rules! name { () => { "…" } }`: what templates and `concat!` pull in.
    let constants: Vec<(String, String)> = literals
        .iter()
        .filter_map(|literal| {
            let before = literal
                .before
                .trim_end()
                .strip_suffix('=')?
                .trim_end()
                .strip_suffix("&str")?;
            let name = before.trim_end().strip_suffix(':')?.trim_end();
            let name = name.rsplit(|c: char| !(c.is_alphanumeric() || c == '_')).next()?;
            Some((name.to_owned(), literal.text.clone()))
        })
        .collect();
    let macros: Vec<(String, String)> = literals
        .iter()
        .filter_map(|literal| {
            let (_, definition) = literal.before.rsplit_once("macro_rules!")?;
            let name: String = definition
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            Some((name, literal.text.clone()))
        })
        .collect();
    let concats = concatenations(source, &literals, &macros);
    let in_concat = |at: usize| concats.iter().any(|(range, _)| range.contains(&at));
    literals
        .iter()
        .filter(|literal| !in_concat(literal.at))
        .map(|literal| {
            if literal.before.trim_end().ends_with("format!(") {
                substituted(&literal.text, &constants)
            } else {
                literal.text.clone()
            }
        })
        .chain(concats.iter().map(|(_, text)| text.clone()))
        .filter(|text| {
            let start = text.trim_start();
            ["SELECT ", "INSERT ", "UPDATE ", "DELETE ", "WITH "]
                .iter()
                .any(|keyword| start.starts_with(keyword))
        })
        .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Each `concat!(…)` of string literals and `name!()` macros: its span in the source and its value.
fn concatenations(
    source: &str,
    literals: &[Literal],
    macros: &[(String, String)],
) -> Vec<(std::ops::Range<usize>, String)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(offset) = source[from..].find("concat!(") {
        let start = from + offset;
        let mut at = start + "concat!(".len();
        let mut value = String::new();
        loop {
            let rest = &source[at..];
            let skipped = rest.len()
                - rest
                    .trim_start_matches(|c: char| c.is_whitespace() || c == ',')
                    .len();
            at += skipped;
            let rest = &source[at..];
            if rest.starts_with(')') {
                break;
            }
            if let Some(literal) = literals.iter().find(|literal| literal.at == at) {
                value.push_str(&literal.text);
                at = literal.end;
                continue;
            }
            let Some((name, _)) = rest.split_once("!()") else {
                break;
            };
            match macros.iter().find(|(macro_name, _)| macro_name == name.trim()) {
                Some((_, expansion)) => value.push_str(expansion),
                None => break,
            }
            at += name.len() + 3;
        }
        found.push((start..at, value));
        from = at.max(start + 1);
    }
    found
}

/// A string literal's value, where it starts and ends, and the code just before it.
struct Literal {
    at: usize,
    end: usize,
    before: String,
    text: String,
}

fn context_before(source: &str, at: usize) -> String {
    let mut start = at.saturating_sub(80);
    while !source.is_char_boundary(start) {
        start -= 1;
    }
    source[start..at].to_owned()
}

/// A `format!` template with `{CONSTANT}` replaced by the constant and any other argument by `1`.
fn substituted(template: &str, constants: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        out.push_str(&rest[..open]);
        let tail = &rest[open..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
        } else if tail.starts_with('{') {
            let close = tail.find('}').expect("a closed placeholder");
            let name = tail[1..close].split(':').next().unwrap_or_default();
            match constants.iter().find(|(constant, _)| constant == name) {
                Some((_, value)) => out.push_str(&substituted(value, constants)),
                None => out.push('1'),
            }
            rest = &tail[close + 1..];
        } else {
            out.push('}');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Every string literal (normal and raw) outside comments.
fn string_literals(source: &str) -> Vec<Literal> {
    let bytes = source.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'\'' if bytes.get(i + 2) == Some(&b'\'') => i += 3,
            b'\'' if bytes.get(i + 1) == Some(&b'\\') => i += 4,
            b'r' if matches!(bytes.get(i + 1), Some(b'"' | b'#'))
                && !is_ident(bytes.get(i.wrapping_sub(1))) =>
            {
                let hashes = bytes[i + 1..].iter().take_while(|&&b| b == b'#').count();
                let open = i + 1 + hashes;
                if bytes.get(open) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let closing = format!("\"{}", "#".repeat(hashes));
                let end = source[open + 1..].find(&closing).expect("a closed raw string") + open + 1;
                let after = end + closing.len();
                found.push(Literal {
                    at: i,
                    end: after,
                    before: context_before(source, i),
                    text: source[open + 1..end].to_owned(),
                });
                i = after;
            }
            b'"' => {
                let (text, end) = normal_string(source, i + 1);
                found.push(Literal {
                    at: i,
                    end,
                    before: context_before(source, i),
                    text,
                });
                i = end;
            }
            _ => i += 1,
        }
    }
    found
}

fn is_ident(byte: Option<&u8>) -> bool {
    byte.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// A `"…"` literal's value from just after its quote; returns it and the index after the closing quote.
fn normal_string(source: &str, start: usize) -> (String, usize) {
    let mut text = String::new();
    let mut chars = source[start..].char_indices().peekable();
    while let Some((offset, c)) = chars.next() {
        match c {
            '"' => return (text, start + offset + 1),
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('\n') => {
                    while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
                        chars.next();
                    }
                }
                Some('n') => text.push('\n'),
                Some('t') => text.push('\t'),
                Some(other) => text.push(other),
                None => break,
            },
            other => text.push(other),
        }
    }
    (text, source.len())
}

fn read_snapshot(version: i64) -> Vec<String> {
    let path = snapshot_path(version);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let value: Value = serde_json::from_str(&text).expect("snapshot json");
    value["statements"]
        .as_array()
        .expect("statements")
        .iter()
        .map(|s| s.as_str().expect("a statement").to_owned())
        .collect()
}

fn write_snapshot(version: i64, statements: &BTreeSet<String>, source: &str) {
    let value = json!({
        "schema": version,
        "from": source,
        "statements": statements,
    });
    std::fs::create_dir_all(snapshots()).expect("snapshot dir");
    std::fs::write(
        snapshot_path(version),
        serde_json::to_string_pretty(&value).expect("json") + "\n",
    )
    .expect("write snapshot");
}

#[test]
fn the_newest_schemas_statements_are_the_store_as_it_is() {
    // Also how the older files were made: HEARTH_STORE_QUERIES_SOURCE=<a release's crates/hearth-core/src> and
    // HEARTH_STORE_QUERIES_VERSION=<its newest migration>.
    let source = std::env::var_os("HEARTH_STORE_QUERIES_SOURCE").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        PathBuf::from,
    );
    let version = std::env::var("HEARTH_STORE_QUERIES_VERSION")
        .ok()
        .map_or_else(newest, |v| v.parse().expect("a version"));
    let statements = statements_in(&source);
    assert!(
        statements.len() > 20,
        "the extraction found {} statements",
        statements.len()
    );
    if std::env::var_os("HEARTH_WRITE_STORE_QUERIES").is_some() {
        let from = std::env::var("HEARTH_STORE_QUERIES_FROM").unwrap_or_else(|_| "the working tree".into());
        write_snapshot(version, &statements, &from);
        return;
    }
    let recorded: BTreeSet<String> = read_snapshot(version).into_iter().collect();
    let added: Vec<_> = statements.difference(&recorded).collect();
    let gone: Vec<_> = recorded.difference(&statements).collect();
    assert!(
        added.is_empty() && gone.is_empty(),
        "the store's SQL changed since tests/store-queries/{version:04}.json was written; rewrite it with \
         HEARTH_WRITE_STORE_QUERIES=1 cargo nextest run -p hearth-core --test schema\nnew: {added:#?}\ngone: {gone:#?}"
    );
}

/// The statements of `statements` that do not prepare against `database`'s schema, with PostgreSQL's reason.
async fn unpreparable(pool: &sqlx::PgPool, statements: &[String]) -> Vec<String> {
    let mut failed = Vec::new();
    for statement in statements {
        let prepare = format!("PREPARE hearth_compat_check AS {statement}");
        match sqlx::raw_sql(sqlx::AssertSqlSafe(prepare)).execute(pool).await {
            Ok(_) => {
                sqlx::raw_sql("DEALLOCATE hearth_compat_check")
                    .execute(pool)
                    .await
                    .expect("deallocate");
            }
            Err(error) => failed.push(format!("{error}: {statement}")),
        }
    }
    failed
}

async fn migrated_to(postgres: &TestPostgres, version: i64) -> sqlx::PgPool {
    let url = postgres.create_database().expect("database");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("connect");
    let migrations = MIGRATOR
        .iter()
        .filter(|m| m.version <= version)
        .cloned()
        .collect();
    sqlx::migrate::Migrator::with_migrations(migrations)
        .run(&pool)
        .await
        .expect("migrate");
    pool
}

#[tokio::test(flavor = "multi_thread")]
async fn each_migration_keeps_the_previous_releases_statements_preparing_unless_declared_breaking() {
    let postgres = TestPostgres::start().expect("postgres");
    let mut report = Vec::new();
    for migration in MIGRATOR.iter().filter(|m| m.version > 1) {
        let previous = MIGRATOR
            .iter()
            .map(|m| m.version)
            .filter(|v| *v < migration.version)
            .max()
            .expect("a previous migration");
        let statements = read_snapshot(previous);
        // On its own schema, the previous release's statements prepare, but for the few whose parameter types
        // PostgreSQL cannot infer without the values sqlx binds (`$3 + make_interval(…)`): those prove nothing
        // either way and are left out, and there must stay few of them or the check would wither.
        let own = migrated_to(&postgres, previous).await;
        let unprovable = unpreparable(&own, &statements).await;
        assert!(
            unprovable.len() <= 3,
            "schema {previous}'s own statements do not prepare: {unprovable:#?}"
        );
        let checked: Vec<String> = statements
            .iter()
            .filter(|statement| {
                !unprovable
                    .iter()
                    .any(|failure| failure.ends_with(statement.as_str()))
            })
            .cloned()
            .collect();
        let pool = migrated_to(&postgres, migration.version).await;
        let broken = unpreparable(&pool, &checked).await;
        let compat = declared(migration).expect("declared");
        report.push(format!(
            "{} {:?}: {} of schema {previous}'s {} statements checked no longer prepare ({} unprovable)",
            migration.version,
            compat,
            broken.len(),
            checked.len(),
            unprovable.len()
        ));
        if compat == Compat::Expand {
            assert!(
                broken.is_empty(),
                "migration {} ({}) is declared expand, but the previous release's statements fail on it; make it \
                 expand/contract or declare it `-- hearth-compat: breaking`:\n{broken:#?}",
                migration.version,
                migration.description
            );
        }
    }
    println!("{}", report.join("\n"));
}

#[test]
fn the_extraction_reads_literals_templates_and_constants() {
    let source = r##"
        const COLUMNS: &str = "a, b";
        macro_rules! cols {
            () => {
                "x, y"
            };
        }
        // "SELECT not this: a comment"
        fn f() {
            sqlx::query("SELECT x FROM t \
                         WHERE y = '{}'");
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM t WHERE n = {id} AND z = '{{}}'")));
            sqlx::query(r#"UPDATE t SET "q" = 1"#);
            sqlx::query(concat!("DELETE FROM t RETURNING ", cols!(), " -- end"));
            let c = '"';
        }
    "##;
    let mut found = statements_of(source);
    found.sort();
    assert_eq!(
        found,
        [
            "DELETE FROM t RETURNING x, y -- end",
            "SELECT a, b FROM t WHERE n = 1 AND z = '{}'",
            "SELECT x FROM t WHERE y = '{}'",
            "UPDATE t SET \"q\" = 1",
        ]
    );
}
