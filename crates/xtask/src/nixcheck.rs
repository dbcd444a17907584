//! Static checks of every tracked `.nix` file: it parses (`nix-instantiate --parse`), is formatted
//! (alejandra) and has no dead code (`deadnix --fail`). Nothing here needs nixpkgs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

use crate::deps::Installed;
use crate::workspace_root;

pub fn run(installed: &Installed) -> Result<()> {
    let files = nix_files()?;
    println!("nix: {} files", files.len());
    if files.is_empty() {
        return Ok(());
    }
    let root = workspace_root();
    let mut failures = Vec::new();
    let nix_instantiate = installed.tool("nix-instantiate")?;
    for file in &files {
        let output = Command::new(nix_instantiate)
            .current_dir(&root)
            .arg("--parse")
            .arg(file)
            .output()?;
        if !output.status.success() {
            failures.push(format!(
                "{} does not parse: {}",
                file.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
    }
    for file in &files {
        match format(&root.join(file))? {
            Formatted::Unchanged => {}
            Formatted::Changed(_) => failures.push(format!(
                "{} is not formatted as alejandra formats it: run `cargo xtask nix-fmt`",
                file.display()
            )),
            Formatted::Error(reason) => {
                failures.push(format!("alejandra cannot format {}: {reason}", file.display()))
            }
        }
    }
    let deadnix = Command::new(installed.tool("deadnix")?)
        .current_dir(&root)
        .args(["--fail", "--no-underscore"])
        .args(&files)
        .output()?;
    if !deadnix.status.success() {
        failures.push(format!(
            "deadnix found unused code:\n{}",
            String::from_utf8_lossy(&deadnix.stdout).trim()
        ));
    }
    if !failures.is_empty() {
        bail!("nix static checks failed:\n{}", failures.join("\n"));
    }
    println!(
        "nix: {} files parse, are formatted and have no dead code",
        files.len()
    );
    Ok(())
}

/// Formats every `.nix` file in place with alejandra (`cargo xtask nix-fmt`).
pub fn format_in_place() -> Result<()> {
    let root = workspace_root();
    for file in nix_files()? {
        let path = root.join(&file);
        match format(&path)? {
            Formatted::Unchanged => {}
            Formatted::Changed(text) => {
                std::fs::write(&path, text)?;
                println!("nix-fmt: formatted {}", file.display());
            }
            Formatted::Error(reason) => bail!("alejandra cannot format {}: {reason}", file.display()),
        }
    }
    Ok(())
}

enum Formatted {
    Unchanged,
    Changed(String),
    Error(String),
}

/// alejandra, linked as a library: crates.io publishes it without its command-line front end.
fn format(path: &Path) -> Result<Formatted> {
    let before = std::fs::read_to_string(path)?;
    let (status, after) = alejandra::format::in_memory(path.display().to_string(), before);
    Ok(match status {
        alejandra::format::Status::Error(reason) => Formatted::Error(reason),
        alejandra::format::Status::Changed(false) => Formatted::Unchanged,
        alejandra::format::Status::Changed(true) => Formatted::Changed(after),
    })
}

/// Tracked and untracked-but-not-ignored `.nix` files, so a new file is checked before it is committed.
fn nix_files() -> Result<Vec<PathBuf>> {
    let output = Command::new("git")
        .current_dir(workspace_root())
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            "*.nix",
        ])
        .output()?;
    if !output.status.success() {
        bail!(
            "git ls-files failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.is_empty())
        .map(PathBuf::from)
        .filter(|path| workspace_root().join(path).exists())
        .collect())
}

/// The settings the NixOS module renders by default (`nix/hearth-settings.nix`, a pure function), evaluated for
/// each way the module calls it and validated with the real `hearthd check-config`: a key the module sets that
/// hearthd does not accept fails here, not on someone's `nixos-rebuild`.
///
/// `build`: build hearthd first. `cargo xtask test` runs this after its tests step, which has just built the
/// binary (as the integration tests' `CARGO_BIN_EXE_hearthd`), so it passes false and saves a second build.
pub fn check_module_settings(installed: &Installed, build: bool) -> Result<()> {
    let root = workspace_root();
    let settings_file = root.join("nix/hearth-settings.nix");
    if !settings_file.exists() {
        println!("nix settings: no nix/hearth-settings.nix");
        return Ok(());
    }
    let hearthd = built_hearthd(build)?;
    let nix_instantiate = installed.tool("nix-instantiate")?;
    let scratch = tempfile::tempdir()?;
    let cases = [
        ("default", r#"{ modelDir = "/m"; onnxruntime = "/o"; }"#),
        (
            "garage",
            r#"{ modelDir = "/m"; onnxruntime = "/o"; blobBackend = "s3"; }"#,
        ),
        (
            "lan",
            r#"{ modelDir = "/m"; onnxruntime = "/o"; listen = "0.0.0.0:8080"; blobBackend = "s3"; }"#,
        ),
    ];
    for (name, arguments) in cases {
        let output = Command::new(nix_instantiate)
            .current_dir(&root)
            .args(["--eval", "--strict", "--json", "-E"])
            .arg(format!("import ./nix/hearth-settings.nix {arguments}"))
            .output()?;
        if !output.status.success() {
            bail!(
                "nix/hearth-settings.nix does not evaluate ({name}): {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let settings: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        check_config(&hearthd, scratch.path(), name, &toml::to_string(&settings)?)?;
    }
    println!("nix settings: the module's default, garage and lan settings pass hearthd check-config");
    Ok(())
}

/// target/debug/hearthd, built first when `build` is set or it is missing.
pub fn built_hearthd(build: bool) -> Result<PathBuf> {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from);
    let hearthd = target.join("debug/hearthd");
    if build || !hearthd.exists() {
        let built = crate::cargo()
            .args(["build", "--locked", "--package", "hearthd", "--bin", "hearthd"])
            .status()?;
        if !built.success() {
            bail!("cannot build hearthd for the settings check");
        }
    }
    Ok(hearthd)
}

/// `hearthd check-config` on rendered settings, as the NixOS module runs it at build time: a stand-in for the
/// minted api-token credential (a LAN listener needs one), and none of the environment's HEARTH_* overrides.
pub fn check_config(hearthd: &Path, scratch: &Path, name: &str, toml_text: &str) -> Result<()> {
    let credentials = scratch.join("credentials");
    let stand_in = credentials.join("api-token");
    if !stand_in.exists() {
        std::fs::create_dir_all(&credentials)?;
        std::fs::write(&stand_in, "stand-in-for-the-minted-api-token-used-at-check-time")?;
        std::fs::set_permissions(&stand_in, std::os::unix::fs::PermissionsExt::from_mode(0o400))?;
    }
    let rendered = scratch.join("hearth-check.toml");
    std::fs::write(&rendered, toml_text)?;
    let check = Command::new(hearthd)
        .arg("--config")
        .arg(&rendered)
        .arg("check-config")
        .env("CREDENTIALS_DIRECTORY", &credentials)
        .env("HEARTH_LOG", "warn")
        .envs(
            std::env::vars()
                .filter(|(key, _)| key.starts_with("HEARTH_") && key != "HEARTH_LOG")
                .map(|(key, _)| (key, String::new())),
        )
        .output()?;
    if !check.status.success() {
        bail!(
            "hearthd check-config rejects the NixOS settings of {name}:\n{toml_text}\n{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    }
    Ok(())
}
