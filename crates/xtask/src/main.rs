//! `cargo xtask <command>`: the one entry point for developers and CI.
// A developer tool that talks to a terminal: plain printing is its interface, not a logging shortcut.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod demo;
mod deps;
mod manifest;
mod nixcheck;
mod nixeval;
mod privatenix;
mod test;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "hearth's developer and CI entry point")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fetch and verify every pinned dependency into the cache (idempotent).
    Deps {
        /// Only what the services need (PostgreSQL, onnxruntime, the test model, Garage).
        #[arg(long)]
        runtime_only: bool,
    },
    /// deps + rustfmt check + clippy + every test (cargo nextest) + static Nix checks.
    Test {
        /// Extra arguments for `cargo nextest run`, e.g. a test name filter.
        #[arg(last = true)]
        nextest_args: Vec<String>,
    },
    /// Start private PostgreSQL and Garage, run hearthd against them, show what it serves, stop everything.
    Demo {
        /// Keep it all running afterwards and print the web UI's address and sign-in code, until Ctrl-C.
        #[arg(long)]
        serve: bool,
    },
    /// Run a benchmark (`embed`, `ingest`, `search`, `memory`, `quality`, `ui`, `answer`, `remote`) or `all` of them, and write each
    /// section into docs/benchmarks.md.
    Bench {
        #[arg(default_value = "embed")]
        which: String,
    },
    /// Only the static Nix checks: parse, alejandra formatting, deadnix.
    NixCheck,
    /// The evaluation gate: every NixOS configuration of the flake through nixpkgs' lib.evalModules against the
    /// interface shims in nix/eval (needs HEARTH_NIXPKGS_LIB; without it, says it was skipped).
    NixEval {
        /// Rewrite docs/nix-verification.md's option table from the evaluation.
        #[arg(long)]
        write_docs: bool,
    },
    /// Format every .nix file in place with alejandra.
    NixFmt,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Deps { runtime_only } => {
            let groups = if runtime_only {
                deps::Groups::RUNTIME
            } else {
                deps::Groups::ALL
            };
            deps::install(groups).map(|_| ())
        }
        Command::Test { nextest_args } => test::run(&nextest_args),
        Command::Demo { serve } => demo::run(serve),
        Command::Bench { which } => bench::run(&which),
        Command::NixCheck => deps::install(deps::Groups::LINT).and_then(|installed| {
            nixcheck::run(&installed)?;
            nixcheck::check_module_settings(&installed, true)
        }),
        Command::NixEval { write_docs } => {
            nixcheck::built_hearthd(true).and_then(|hearthd| nixeval::run(&hearthd, write_docs))
        }
        Command::NixFmt => nixcheck::format_in_place(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives in crates/xtask).
fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .and_then(|crates| crates.parent())
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// `cargo` as invoked by the developer (cargo sets $CARGO for the programs it runs).
fn cargo() -> std::process::Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.current_dir(workspace_root());
    command
}

/// Runs a command with inherited output; a failure names the command and the fix.
fn run_step(command: &mut std::process::Command, fix: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .map_err(|e| anyhow::anyhow!("could not start {command:?}: {e}"))?;
    if !status.success() {
        anyhow::bail!("{command:?} failed ({status}): {fix}");
    }
    Ok(())
}
