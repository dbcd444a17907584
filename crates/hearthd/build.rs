//! Records the source revision for `/v1/capabilities` and the build-info metric: `HEARTH_GIT_REVISION` when the
//! builder sets it (the Nix package passes the flake's revision; there is no .git there), else `git rev-parse`.

use std::process::Command;

fn main() {
    println!("cargo::rerun-if-env-changed=HEARTH_GIT_REVISION");
    let revision = std::env::var("HEARTH_GIT_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".into());
    println!("cargo::rustc-env=HEARTH_GIT_REVISION={revision}");
}

fn git_revision() -> Option<String> {
    let git = |args: &[&str]| {
        let output = Command::new("git").args(args).output().ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let git_dir = git(&["rev-parse", "--absolute-git-dir"])?;
    // A new commit or checkout moves HEAD or the branch it points at.
    println!("cargo::rerun-if-changed={git_dir}/HEAD");
    // Branches live in the common directory, which differs from the git directory in a worktree.
    let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]).unwrap_or(git_dir);
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        println!("cargo::rerun-if-changed={common}/{reference}");
    }
    println!("cargo::rerun-if-changed={common}/packed-refs");
    git(&["rev-parse", "HEAD"])
}
