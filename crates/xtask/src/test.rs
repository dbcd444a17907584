//! `cargo xtask test`: the one command CI and developers run.

use std::process::Command;
use std::time::Instant;

use anyhow::Result;

use crate::{cargo, deps, nixcheck, nixeval, run_step, workspace_root};

pub fn run(nextest_args: &[String]) -> Result<()> {
    let started = Instant::now();
    let installed = step("deps", || deps::install(deps::Groups::ALL))?;
    step("rustfmt", || {
        run_step(
            cargo().args(["fmt", "--all", "--", "--check"]),
            "run `cargo fmt --all` and commit the result",
        )
    })?;
    step("clippy", || {
        run_step(
            cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--locked",
                "--",
                "-D",
                "warnings",
            ]),
            "fix the lints above",
        )
    })?;
    step("nix static checks", || nixcheck::run(&installed))?;
    let nextest = installed.tool("cargo-nextest")?.to_owned();
    step("tests", || {
        let mut command = Command::new(&nextest);
        command
            .current_dir(workspace_root())
            .args(["nextest", "run", "--workspace", "--locked", "--no-fail-fast"])
            .args(nextest_args);
        // The kit would find these in the env file too; passing them makes the run independent of it.
        command.envs(&installed.env);
        run_step(&mut command, "see the failing tests above")
    })?;
    step("nix module settings", || {
        nixcheck::check_module_settings(&installed, false)
    })?;
    // After the tests, which built the hearthd it runs check-config with.
    step("nix evaluation", || {
        nixcheck::built_hearthd(false).and_then(|hearthd| nixeval::run(&hearthd, false))
    })?;
    println!("xtask test: all steps passed in {:.0?}", started.elapsed());
    Ok(())
}

fn step<T>(name: &str, body: impl FnOnce() -> Result<T>) -> Result<T> {
    println!("== {name}");
    let started = Instant::now();
    let result = body();
    println!(
        "== {name}: {} in {:.1?}",
        if result.is_ok() { "ok" } else { "FAILED" },
        started.elapsed()
    );
    result
}
