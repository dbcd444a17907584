//! `cargo xtask demo`: a private appliance in a temporary directory. First boot mints its secrets, Garage starts
//! on them and is provisioned by first boot, hearthd serves with the minted API token, then all is stopped.
//! hearthd stores originals in that Garage, ingests hearth's own docs and answers searches over them. With
//! `--serve` it all stays up for the web UI until Ctrl-C.

use std::os::unix::fs::PermissionsExt as _;
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

pub fn run(serve: bool) -> Result<()> {
    deps::install(deps::Groups::RUNTIME)?;
    println!("demo: building hearthd, hearth and hearth-firstboot");
    run_step(
        cargo().args([
            "build",
            "--quiet",
            "--locked",
            "-p",
            "hearthd",
            "-p",
            "hearth-cli",
            "-p",
            "hearth-firstboot",
        ]),
        "see the build error above",
    )?;
    let bin_dir = target_dir().join("debug");
    let appliance = tempfile::Builder::new()
        .prefix("hearth-demo-")
        .tempdir()
        .context("creating the demo's state directory")?;
    let secrets = appliance.path().join("secrets");
    let firstboot = |args: &[&str]| {
        let mut command = Command::new(bin_dir.join("hearth-firstboot"));
        command.arg("--secrets-dir").arg(&secrets).args(args);
        command
    };

    println!("demo: `hearth-firstboot mint` (first power-on: every per-instance secret, fingerprints only):");
    run_step(&mut firstboot(&["mint"]), "first boot could not mint the secrets")?;

    let postgres = TestPostgres::start().context("starting PostgreSQL")?;
    let database_url = postgres.create_database()?;
    println!(
        "demo: PostgreSQL + pgvector on {} (peer auth over the socket: no password)",
        postgres.socket_dir().display()
    );
    let garage = TestGarage::start_with_minted_secrets(&secrets).context("starting Garage")?;
    println!(
        "demo: Garage S3 at {} on the minted RPC secret and admin token",
        garage.s3_endpoint
    );
    println!("demo: `hearth-firstboot garage` (layout, hearth's S3 key, bucket, grants):");
    run_step(
        &mut firstboot(&["garage", "--admin-endpoint", &garage.admin_endpoint]),
        "Garage provisioning failed",
    )?;

    // What systemd's LoadCredential= gives hearthd: its own copies of the secrets it needs.
    let credentials = appliance.path().join("credentials/hearthd");
    std::fs::create_dir_all(&credentials).context("creating the credentials directory")?;
    for name in ["api-token", "setup-code", "s3-access-key-id", "s3-secret-key"] {
        let copy = credentials.join(name);
        std::fs::copy(secrets.join(name), &copy).with_context(|| format!("passing the {name} credential"))?;
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o400))
            .with_context(|| format!("restricting the {name} credential"))?;
    }
    let token_file = credentials.join("api-token");
    let mut hearthd = TestHearthd::start(
        &bin_dir.join("hearthd"),
        &database_url,
        &[
            ("HEARTH_LOG", "warn"),
            ("CREDENTIALS_DIRECTORY", path_str(&credentials)?),
            // The demo plays a LAN client: even loopback must show the token.
            ("HEARTH_AUTH__TRUST_LOOPBACK", "false"),
            // Originals go to Garage, with the key first boot minted and provisioned.
            ("HEARTH_BLOBS__BACKEND", "s3"),
            ("HEARTH_BLOBS__ENDPOINT", &garage.s3_endpoint),
        ],
    )
    .context("starting hearthd")?;
    println!(
        "demo: hearthd on {} (bearer token required; originals in Garage's 'hearth' bucket)",
        hearthd.url
    );
    let outcome = show(&bin_dir, &hearthd.url, &token_file)
        .and_then(|()| {
            println!("demo: `hearth-firstboot status`:");
            run_step(
                &mut firstboot(&["status", "--admin-endpoint", &garage.admin_endpoint]),
                "first boot is incomplete",
            )
        })
        .and_then(|()| {
            if serve {
                serve_until_interrupted(&hearthd.url, &secrets)
            } else {
                Ok(())
            }
        });

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

fn show(bin_dir: &Path, url: &str, token_file: &Path) -> Result<()> {
    let hearth = |args: &[&str], token: bool| {
        let mut command = Command::new(bin_dir.join("hearth"));
        command
            .args(args)
            .args(["--url", url])
            .env_remove("HEARTH_TOKEN_FILE");
        if token {
            command.arg("--token-file").arg(token_file);
        }
        command
    };
    let without = hearth(&["status"], false).output().context("running hearth")?;
    if without.status.success() {
        bail!("hearthd answered /readyz without a token although it requires one");
    }
    println!(
        "demo: without the token, `hearth status` is refused: {}",
        String::from_utf8_lossy(&without.stderr).trim()
    );
    // Ready once the model is loaded and verified; `hearth status` exits 3 until then.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !hearth(&["status"], true)
        .output()
        .is_ok_and(|o| o.status.success())
    {
        if Instant::now() > deadline {
            bail!("hearthd was not ready within 60s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("demo: `hearth status --token-file …/api-token`:");
    run_step(&mut hearth(&["status"], true), "hearthd is not ready")?;
    println!("demo: `hearth embed` (on the box, through /v1/embeddings):");
    let mut embed = hearth(&["embed"], true);
    embed.args(TEXTS);
    run_step(&mut embed, "embedding failed")?;

    // A small real corpus: hearth's own documentation.
    let root = workspace_root();
    println!("demo: `hearth ingest README.md docs --wait` (hearth's own documentation):");
    let mut ingest = hearth(&["ingest", "--wait"], true);
    ingest.arg(root.join("README.md")).arg(root.join("docs"));
    run_step(&mut ingest, "ingest failed")?;
    for (query, mode) in [
        (
            "how are secrets created when the appliance is switched on for the first time",
            "hybrid",
        ),
        ("what happens when the embedding model changes", "vector"),
        ("sentinel LoadCredential", "keyword"),
    ] {
        println!("demo: `hearth search \"{query}\" --mode {mode}`:");
        run_step(
            &mut hearth(&["search", query, "--mode", mode, "-k", "3"], true),
            "search failed",
        )?;
    }
    println!("demo: running the same ingest again skips everything (resumable by sha256):");
    let mut again = hearth(&["ingest"], true);
    again.arg(root.join("README.md")).arg(root.join("docs"));
    run_step(&mut again, "the second ingest failed")
}

/// Prints how to open the web UI and waits for Ctrl-C (or SIGTERM). The setup code is printed because this is
/// the demo's own throwaway box, as its console would show it.
fn serve_until_interrupted(url: &str, secrets: &Path) -> Result<()> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, std::sync::Arc::clone(&stop))
            .context("installing the Ctrl-C handler")?;
    }
    let code =
        std::fs::read_to_string(secrets.join("setup-code")).context("reading the demo's setup code")?;
    println!();
    println!(
        "demo: the web UI is at {url}/ — sign in with the setup code {}",
        code.trim()
    );
    println!(
        "demo: (or with the API token in {}); press Ctrl-C to stop",
        secrets.join("api-token").display()
    );
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("demo: stopping");
    Ok(())
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not valid UTF-8", path.display()))
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
