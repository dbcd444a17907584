//! `cargo xtask demo`: everything hearth needs, started privately, hearthd run against it, then all stopped.
//! Grows with hearth: ingest and search join when they land.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hearth_testkit::{TestGarage, TestPostgres};
use rustix::process::{Pid, Signal, kill_process};

use crate::{cargo, deps, run_step, workspace_root};

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

    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let listen = format!("127.0.0.1:{port}");
    let mut hearthd = Command::new(bin_dir.join("hearthd"))
        .args(["serve", "--listen", &listen, "--database-url", &database_url])
        .spawn()
        .context("starting hearthd")?;
    let outcome = show(&bin_dir, &listen, &mut hearthd);

    let pids = [
        ("hearthd", Some(hearthd.id())),
        ("postgres", postgres.server_pid()),
        ("garage", Some(garage.pid())),
    ];
    stop(&mut hearthd)?;
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

fn show(bin_dir: &Path, listen: &str, hearthd: &mut Child) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(listen).is_err() {
        if let Some(status) = hearthd.try_wait()? {
            bail!("hearthd exited early ({status})");
        }
        if Instant::now() > deadline {
            bail!("hearthd did not listen on {listen} within 30s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("demo: hearthd listening on http://{listen}; `hearth status` says:");
    run_step(
        Command::new(bin_dir.join("hearth")).args(["status", "--url", &format!("http://{listen}")]),
        "hearthd is not ready",
    )
}

fn stop(child: &mut Child) -> Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    let pid = Pid::from_raw(i32::try_from(child.id())?).context("child pid")?;
    kill_process(pid, Signal::TERM)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            bail!("hearthd ignored SIGTERM for 10s and was killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
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
