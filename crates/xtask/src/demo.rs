//! `cargo xtask demo`: everything hearth needs, started privately, hearthd run against it, then all stopped.
//! Grows with hearth: ingest and search join when they land.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hearth_testkit::{TestGarage, TestHearthd, TestPostgres};

use crate::{cargo, deps, run_step, workspace_root};

const TEXTS: [&str; 4] = [
    "The appliance keeps every document on the box.",
    "Nothing you store ever leaves this machine.",
    "Garage is an object store that speaks S3.",
    "Bake the bread for forty minutes at 220 degrees.",
];

pub fn run() -> Result<()> {
    deps::install(deps::Groups::RUNTIME)?;
    println!("demo: building hearthd and hearth");
    run_step(
        cargo().args([
            "build",
            "--quiet",
            "--locked",
            "-p",
            "hearthd",
            "-p",
            "hearth-cli",
        ]),
        "see the build error above",
    )?;
    let bin_dir = target_dir().join("debug");

    let postgres = TestPostgres::start().context("starting PostgreSQL")?;
    let database_url = postgres.create_database()?;
    println!(
        "demo: PostgreSQL + pgvector on {}",
        postgres.socket_dir().display()
    );
    let garage = TestGarage::start().context("starting Garage")?;
    println!(
        "demo: Garage S3 at {} (bucket '{}', key {})",
        garage.s3_endpoint, garage.bucket, garage.access_key_id
    );
    let mut hearthd = TestHearthd::start(&bin_dir.join("hearthd"), &database_url, &[("HEARTH_LOG", "warn")])
        .context("starting hearthd")?;
    println!("demo: hearthd on {}", hearthd.url);
    let outcome = show(&bin_dir, &hearthd.url);

    let pids = [
        ("hearthd", Some(hearthd.pid())),
        ("postgres", postgres.server_pid()),
        ("garage", Some(garage.pid())),
    ];
    if !hearthd.terminate() {
        bail!("hearthd ignored SIGTERM for 10s and was killed");
    }
    drop(hearthd);
    drop(garage);
    drop(postgres);
    outcome?;

    let left: Vec<String> = pids
        .iter()
        .filter_map(|(name, pid)| pid.filter(|pid| alive(*pid)).map(|pid| format!("{name} ({pid})")))
        .collect();
    if !left.is_empty() {
        bail!("processes left behind: {}", left.join(", "));
    }
    println!("demo: stopped hearthd, Garage and PostgreSQL; no process left behind");
    Ok(())
}

fn show(bin_dir: &Path, url: &str) -> Result<()> {
    let hearth = |args: &[&str]| {
        let mut command = Command::new(bin_dir.join("hearth"));
        command.args(args).args(["--url", url]);
        command
    };
    // Ready once the model is loaded and verified; `hearth status` exits 3 until then.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !hearth(&["status"]).output().is_ok_and(|o| o.status.success()) {
        if Instant::now() > deadline {
            bail!("hearthd was not ready within 60s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("demo: `hearth status`:");
    run_step(&mut hearth(&["status"]), "hearthd is not ready")?;
    println!("demo: `hearth embed` (on the box, through /v1/embeddings):");
    let mut embed = hearth(&["embed"]);
    embed.args(TEXTS);
    run_step(&mut embed, "embedding failed")
}

/// A process that exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}
