//! `cargo xtask bench embed|ingest|search|memory|quality|ui|answer|remote|all`: builds the benchmarks and hearthd in release mode, runs
//! one benchmark (every arm in one process run) or all in turn, and writes each section into docs/benchmarks.md
//! between its markers.

use anyhow::{Context, Result, anyhow, bail};

use crate::{cargo, deps, run_step, workspace_root};

const BENCHMARKS: [&str; 8] = [
    "embed", "ingest", "search", "memory", "quality", "ui", "answer", "remote",
];

/// Runs one benchmark, or with `all` every one in turn, each writing its section as soon as it is done.
pub fn run(which: &str) -> Result<()> {
    let chosen: Vec<&str> = match which {
        "all" => BENCHMARKS.to_vec(),
        one if BENCHMARKS.contains(&one) => vec![one],
        _ => bail!(
            "unknown benchmark '{which}': the benchmarks are: {}, or all",
            BENCHMARKS.join(", ")
        ),
    };
    let installed = deps::install(deps::Groups::BENCH)?;
    let deps = installed
        .deps
        .as_ref()
        .ok_or_else(|| anyhow!("runtime dependencies missing"))?;
    let python = installed
        .env
        .get("HEARTH_BENCH_PYTHON")
        .ok_or_else(|| anyhow!("the bench Python environment was not installed"))?;
    run_step(
        cargo().args([
            "build",
            "--release",
            "--locked",
            "-p",
            "hearthd",
            "-p",
            "hearth-bench",
        ]),
        "see the build error above",
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("release");
    let mut failed = Vec::new();
    for (done, name) in chosen.iter().enumerate() {
        println!("bench: {name} ({} of {})", done + 1, chosen.len());
        // One benchmark failing does not cost the others' figures; the run still fails at the end.
        if let Err(error) = run_one(name, &target, deps, python) {
            println!("bench: {name} failed: {error:#}");
            failed.push(*name);
        }
    }
    if !failed.is_empty() {
        bail!(
            "these benchmarks failed (their sections were not rewritten): {}",
            failed.join(", ")
        );
    }
    Ok(())
}

/// Runs one benchmark binary and writes its section into docs/benchmarks.md.
fn run_one(name: &str, target: &std::path::Path, deps: &hearth_testkit::Deps, python: &str) -> Result<()> {
    let report = tempfile::NamedTempFile::new()?;
    let mut bench = std::process::Command::new(target.join("hearth-bench"));
    bench
        .arg(name)
        .arg("--model-dir")
        .arg(&deps.test_model_dir)
        .arg("--onnxruntime")
        .arg(&deps.ort_dylib)
        .arg("--hearthd")
        .arg(target.join("hearthd"))
        .arg("--out")
        .arg(report.path());
    if name == "embed" {
        bench.args(["--python", python]);
    }
    run_step(&mut bench, "the benchmark failed")?;
    let section = std::fs::read_to_string(report.path())?;
    let path = workspace_root().join("docs/benchmarks.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, replace_section(&doc, name, &section))
        .with_context(|| format!("writing {}", path.display()))?;
    println!("bench: wrote the {name} section of {}", path.display());
    Ok(())
}

/// Replaces the text between `<!-- NAME:start -->` and `<!-- NAME:end -->`, or appends a new marked section.
fn replace_section(doc: &str, name: &str, body: &str) -> String {
    let start = format!("<!-- {name}:start -->");
    let end = format!("<!-- {name}:end -->");
    let block = format!("{start}\n{}\n{end}", body.trim_end());
    match (doc.find(&start), doc.find(&end)) {
        (Some(s), Some(e)) if s < e => format!("{}{block}{}", &doc[..s], &doc[e + end.len()..]),
        _ => format!("{}\n{block}\n", doc.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::replace_section;

    #[test]
    fn sections_are_replaced_in_place_or_appended() {
        let doc = "# B\n\nintro\n<!-- embed:start -->\nold\n<!-- embed:end -->\ntail\n";
        let updated = replace_section(doc, "embed", "new\n");
        assert_eq!(
            updated,
            "# B\n\nintro\n<!-- embed:start -->\nnew\n<!-- embed:end -->\ntail\n"
        );
        let appended = replace_section("# B\n", "ingest", "rows");
        assert_eq!(
            appended,
            "# B\n<!-- ingest:start -->\nrows\n<!-- ingest:end -->\n"
        );
    }
}
