//! `cargo xtask nix-eval`: the evaluation gate. nixpkgs' real `lib` evaluates every NixOS configuration the flake
//! contains (nix/eval/default.nix: host classes, image variants, specialisations, VM test nodes, each exported
//! module) against the interface shims in nix/eval/shims. Then the xtask checks what evaluation alone does not
//! (no warnings, no hard dependency on a unit that does not exist, hosts that build for hours only evaluated by
//! `nix flake check`), runs `hearthd check-config` on every configuration's rendered settings, keeps
//! docs/nix-verification.md's option table in step with the shims, and proves the gate can fail: each of a list
//! of deliberate mistakes, made in a copy of the tree, must fail it with nixpkgs' own error.
//!
//! nixpkgs' `lib` is not in any registry, so CI cannot have it: without `HEARTH_NIXPKGS_LIB` the gate prints one
//! line saying it was skipped, and how to run it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use crate::privatenix::{self, NixInstantiate};
use crate::{manifest, nixcheck, workspace_root};

pub const LIB_VAR: &str = "HEARTH_NIXPKGS_LIB";
const DOCS: &str = "docs/nix-verification.md";
const TABLE_BEGIN: &str = "<!-- nix-eval: option table begin (cargo xtask nix-eval --write-docs) -->";
const TABLE_END: &str = "<!-- nix-eval: option table end -->";

/// What a gate run needs: a Nix, nixpkgs' lib, and hearthd for the settings check.
struct Gate {
    nix: NixInstantiate,
    lib: PathBuf,
    hearthd: PathBuf,
    scratch: tempfile::TempDir,
}

/// Runs the gate. `hearthd` is a built hearthd (for check-config); `write_docs` rewrites the option table.
pub fn run(hearthd: &Path, write_docs: bool) -> Result<()> {
    let Some(lib) = nixpkgs_lib()? else {
        println!(
            "nix-eval: SKIPPED, no NixOS module evaluation was done: set {LIB_VAR} to nixpkgs' lib directory (a checkout of \
             github:nix-community/nixpkgs.lib, its lib/), or run inside `nix develop`"
        );
        return Ok(());
    };
    let manifest = manifest::load()?;
    let cache = hearth_testkit::cache_dir()?;
    let nix = privatenix::find_or_install(&manifest.nix, &cache)?;
    println!(
        "nix-eval: nixpkgs lib {} ({}), nix-instantiate {}",
        lib.display(),
        lib_version(&lib),
        nix.version
    );
    let gate = Gate {
        nix,
        lib,
        hearthd: hearthd.to_owned(),
        scratch: tempfile::tempdir()?,
    };
    let root = workspace_root();
    let report = gate.evaluate(&root).map_err(|failure| anyhow!("{failure}"))?;
    let configurations = configurations(&report);
    check_structure(&report).map_err(|failure| anyhow!("{failure}"))?;
    check_test_scripts(&report).map_err(|failure| anyhow!("{failure}"))?;
    println!(
        "nix-eval: {} NixOS configurations evaluated ({}), no warnings, every required unit defined",
        configurations.len(),
        summary(&configurations)
    );
    let unlisted: BTreeSet<&str> = configurations
        .iter()
        .flat_map(|(_, configuration)| strings(&configuration["unlisted"]))
        .collect();
    if !unlisted.is_empty() {
        println!(
            "nix-eval: not listed where their feature is off (their nixpkgs default needs it): {}",
            unlisted.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    gate.check_settings(&configurations)?;
    docs_table(&root, &report, write_docs)?;
    gate.prove_it_can_fail(&root)?;
    Ok(())
}

/// `$HEARTH_NIXPKGS_LIB`: nixpkgs' `lib` directory, or a checkout that has one.
fn nixpkgs_lib() -> Result<Option<PathBuf>> {
    let Some(value) = std::env::var_os(LIB_VAR).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let given = PathBuf::from(value);
    for candidate in [given.clone(), given.join("lib")] {
        if candidate.join("modules.nix").is_file() && candidate.join("default.nix").is_file() {
            return Ok(Some(candidate.canonicalize()?));
        }
    }
    bail!(
        "{LIB_VAR}={} is not nixpkgs' lib: it has no modules.nix and default.nix (nor has its lib/)",
        given.display()
    )
}

fn lib_version(lib: &Path) -> String {
    fs::read_to_string(lib.join(".version"))
        .map(|v| format!("release {}", v.trim()))
        .unwrap_or_else(|_| "release unknown".to_owned())
}

impl Gate {
    /// nix/eval/default.nix over the tree at `root`, as JSON; a failure is Nix's own message.
    fn evaluate(&self, root: &Path) -> Result<Value, String> {
        let state = self.scratch.path().join("nix-state");
        let output = Command::new(&self.nix.program)
            .current_dir(root)
            .args(["--eval", "--strict", "--json", "--store", "dummy://"])
            .arg(root.join("nix/eval/default.nix"))
            .arg("--argstr")
            .arg("nixpkgsLib")
            .arg(&self.lib)
            .env("NIX_STATE_DIR", state.join("state"))
            .env("NIX_CONF_DIR", state.join("conf"))
            .env("NIX_CONFIG", "")
            .output()
            .map_err(|e| format!("could not run {}: {e}", self.nix.program.display()))?;
        if !output.status.success() {
            return Err(format!(
                "the NixOS module evaluation failed:\n{}",
                String::from_utf8_lossy(&output.stderr).trim_end()
            ));
        }
        serde_json::from_slice(&output.stdout).map_err(|e| format!("the gate printed no JSON report: {e}"))
    }

    /// `hearthd check-config` on each distinct settings file a configuration renders.
    fn check_settings(&self, configurations: &[(String, &Value)]) -> Result<()> {
        let mut seen = BTreeMap::new();
        for (name, configuration) in configurations {
            let Some(settings) = configuration.get("hearthSettings").filter(|s| !s.is_null()) else {
                continue;
            };
            let mut settings = settings.clone();
            // As the module's build-time check does: token files exist only on the machine.
            if let Some(auth) = settings.get_mut("auth").and_then(Value::as_object_mut) {
                auth.remove("token_files");
            }
            let text =
                toml::to_string(&settings).with_context(|| format!("{name}: settings are not TOML"))?;
            seen.entry(text).or_insert_with(|| name.clone());
        }
        for (text, name) in &seen {
            nixcheck::check_config(&self.hearthd, self.scratch.path(), name, text)?;
        }
        println!(
            "nix-eval: hearthd check-config accepts the {} distinct settings files the configurations render",
            seen.len()
        );
        Ok(())
    }

    /// Each mistake in `MUTATIONS`, made in a copy of the tree, must fail the gate with the expected text.
    fn prove_it_can_fail(&self, root: &Path) -> Result<()> {
        let copy = self.scratch.path().join("mutated");
        let files = tree_files(root)?;
        for mutation in MUTATIONS {
            let _ = fs::remove_dir_all(&copy);
            copy_files(root, &copy, &files)?;
            mutation.apply(&copy)?;
            let outcome = self.evaluate(&copy).and_then(|report| {
                check_structure(&report)?;
                check_test_scripts(&report)
            });
            match outcome {
                Ok(_) => bail!(
                    "the gate passed a deliberate mistake ({}: {}): it cannot catch what it claims to",
                    mutation.file,
                    mutation.what
                ),
                Err(message) if !message.contains(mutation.expect) => bail!(
                    "the gate failed on a deliberate mistake ({}: {}) but not with the expected error `{}`:\n{message}",
                    mutation.file,
                    mutation.what,
                    mutation.expect
                ),
                Err(_) => println!(
                    "nix-eval: must fail, and does: {} ({})",
                    mutation.what, mutation.file
                ),
            }
        }
        println!(
            "nix-eval: all {} deliberate mistakes fail the gate with the expected error",
            MUTATIONS.len()
        );
        Ok(())
    }
}

/// A deliberate mistake: replace `from` (which must occur exactly once) with `to` in `file`.
struct Mutation {
    what: &'static str,
    file: &'static str,
    from: &'static str,
    to: &'static str,
    expect: &'static str,
}

impl Mutation {
    fn apply(&self, root: &Path) -> Result<()> {
        let path = root.join(self.file);
        let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let found = text.matches(self.from).count();
        if found != 1 {
            bail!(
                "mutation `{}` expects `{}` once in {}, found it {found} times: update the mutation with the code",
                self.what,
                self.from,
                self.file
            );
        }
        fs::write(&path, text.replacen(self.from, self.to, 1))?;
        Ok(())
    }
}

const MUTATIONS: &[Mutation] = &[
    Mutation {
        what: "a second mkDefault beside nixpkgs' own on services.postgresql.package",
        file: "modules/postgres.nix",
        from: "package = lib.mkOverride 900 pkgs.postgresql_17;",
        to: "package = lib.mkDefault pkgs.postgresql_17;",
        expect: "The option `services.postgresql.package' is defined multiple times while it's expected to be unique.",
    },
    Mutation {
        what: "a misspelt unit option",
        file: "modules/hearth.nix",
        from: "startLimitBurst = 5;",
        to: "startLimitBurts = 5;",
        expect: "The option `systemd.services.hearthd.startLimitBurts' does not exist.",
    },
    Mutation {
        what: "a string where nixpkgs declares a positive integer",
        file: "modules/profiles/pi.nix",
        from: "memoryPercent = 50;",
        to: "memoryPercent = \"50\";",
        expect: "A definition for option `zramSwap.memoryPercent' is not of type `positive integer, meaning >0'.",
    },
    Mutation {
        what: "Garage required first boot's unit without checking that first boot is enabled",
        file: "modules/garage.nix",
        from: "firstbootUnit = lib.optional cfg.firstboot.enable \"hearth-firstboot.service\";",
        to: "firstbootUnit = [\"hearth-firstboot.service\"];",
        expect: "garage.service requires hearth-firstboot.service, which the configuration does not define",
    },
    Mutation {
        what: "a matrix test script names the database node in a combination without one",
        file: "tests/matrix.nix",
        from: "assert ${rows}.succeed(count).strip() == \"1\"",
        to: "assert db.succeed(count).strip() == \"1\"",
        expect: "the test script uses `db`, which is not a node of this test",
    },
    Mutation {
        what: "a package nixpkgs does not have",
        file: "modules/garage.nix",
        from: "package = lib.mkDefault pkgs.garage_2;",
        to: "package = lib.mkDefault pkgs.garage_3;",
        expect: "attribute 'garage_3' missing",
    },
    Mutation {
        what: "the OVA keeps the plaintext swap file its builder adds",
        file: "modules/profiles/appliance.nix",
        from: "swapDevices = lib.mkForce [];",
        to: "swapDevices = lib.mkDefault [];",
        expect: "hearth.substrate: disk swap must be encrypted with a random key",
    },
    Mutation {
        what: "the OVA turns GRUB on without turning the x86 hosts' systemd-boot off",
        file: "modules/profiles/appliance.nix",
        from: "boot.loader.systemd-boot.enable = lib.mkForce false;",
        to: "",
        expect: "Only one bootloader can be enabled at a time.",
    },
    Mutation {
        what: "the workstation no longer admits the NVIDIA driver's unfree license",
        file: "modules/profiles/workstation.nix",
        from: "unfreePrefixes = [\"nvidia-\" ",
        to: "unfreePrefixes = [",
        expect: "Package ‘nvidia-x11-595.84-6.12’ has an unfree license (‘unfreeRedistributable’), refusing to evaluate.",
    },
];

/// Every configuration in the report, labelled: hosts with their images and specialisations, VM test nodes per
/// system (with theirs), and the exported modules.
fn configurations(report: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for (host, configuration) in entries(&report["hosts"]) {
        with_nested(format!("host {host}"), configuration, &mut out);
    }
    for (system, tests) in entries(&report["vmTests"]) {
        for (test, value) in entries(tests) {
            for (node, configuration) in entries(&value["nodes"]) {
                with_nested(format!("{system} {test} node {node}"), configuration, &mut out);
            }
        }
    }
    for (module, configuration) in entries(&report["modules"]) {
        out.push((format!("module {module}"), configuration));
    }
    out
}

fn with_nested<'a>(label: String, configuration: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    for (image, nested) in entries(&configuration["images"]) {
        out.push((format!("{label} image {image}"), nested));
    }
    for (name, nested) in entries(&configuration["specialisations"]) {
        out.push((format!("{label} specialisation {name}"), nested));
    }
    out.push((label, configuration));
}

fn entries(value: &Value) -> impl Iterator<Item = (&String, &Value)> {
    value.as_object().into_iter().flatten()
}

fn summary(configurations: &[(String, &Value)]) -> String {
    let count = |prefix: &str, infix: &str| {
        configurations
            .iter()
            .filter(|(label, _)| label.starts_with(prefix) && label.contains(infix))
            .count()
    };
    format!(
        "{} hosts, {} images, {} specialisations, {} VM test nodes, {} modules",
        configurations
            .iter()
            .filter(|(label, _)| label.starts_with("host ")
                && !label.contains(" image ")
                && !label.contains(" specialisation "))
            .count(),
        count("", " image "),
        count("", " specialisation "),
        configurations
            .iter()
            .filter(|(label, _)| label.contains(" node ") && !label.contains(" specialisation "))
            .count(),
        count("module ", ""),
    )
}

/// What evaluation does not check: warnings (nixpkgs only prints them), a hard dependency (Requires=, BindsTo=)
/// on a service the configuration does not define (systemd then fails the unit that has it), and a host that
/// `nix flake check` would build although it is marked as too slow to build there.
fn check_structure(report: &Value) -> Result<(), String> {
    let mut problems = Vec::new();
    for (label, configuration) in configurations(report) {
        for warning in configuration["warnings"].as_array().into_iter().flatten() {
            problems.push(format!(
                "{label}: warning: {}",
                warning.as_str().unwrap_or_default().trim()
            ));
        }
        let services = &configuration["values"]["systemd.services"];
        let targets = &configuration["values"]["systemd.targets"];
        for (unit, kind, value) in entries(services)
            .map(|(name, v)| (name, "service", v))
            .chain(entries(targets).map(|(name, v)| (name, "target", v)))
        {
            if value["enable"] == Value::Bool(false) {
                continue;
            }
            for field in ["requires", "bindsTo"] {
                for dependency in value[field]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    let Some(service) = dependency.strip_suffix(".service") else {
                        continue;
                    };
                    let defined = services
                        .get(service)
                        .is_some_and(|s| s["enable"] != Value::Bool(false));
                    // systemd's own units are not NixOS options.
                    if !defined && !service.starts_with("systemd-") {
                        problems.push(format!(
                            "{label}: {unit}.{kind} requires {dependency}, which the configuration does not define \
                             (systemd would fail {unit}.{kind}): guard the dependency with the option that creates it"
                        ));
                    }
                }
            }
        }
    }
    for (host, configuration) in entries(&report["hosts"]) {
        if configuration["values"]["hearth.flakeCheck.build"] == Value::Bool(false) {
            for (system, checks) in entries(&report["checks"]) {
                let names: BTreeSet<&str> = checks
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                if names.contains(format!("nixos-{host}").as_str()) {
                    problems.push(format!(
                        "checks.{system}.nixos-{host} builds a host marked hearth.flakeCheck.build = false"
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the NixOS configurations evaluate, but:\n{}",
            problems.join("\n")
        ))
    }
}

/// Every VM test script through crates/xtask/python/check_test_scripts.py: it compiles, and names only nodes its
/// test has (the driver's type check refuses the script otherwise, before any VM boots).
fn check_test_scripts(report: &Value) -> Result<(), String> {
    let mut tests = Vec::new();
    for (system, checks) in entries(&report["vmTests"]) {
        for (check, test) in entries(checks) {
            tests.push(serde_json::json!({
                "label": format!("checks.{system}.{check}"),
                "script": test["testScript"],
                "nodes": test["nodes"].as_object().map(|nodes| nodes.keys().collect::<Vec<_>>()),
            }));
        }
    }
    let checker = workspace_root().join("crates/xtask/python/check_test_scripts.py");
    let mut child = Command::new("python3")
        .arg(&checker)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run python3 for {}: {e}", checker.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        stdin
            .write_all(Value::Array(tests).to_string().as_bytes())
            .map_err(|e| format!("cannot write to {}: {e}", checker.display()))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("{}: {e}", checker.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "VM test scripts the test driver would refuse:\n{}",
            String::from_utf8_lossy(&output.stdout).trim_end()
        ))
    }
}

/// docs/nix-verification.md's table of every nixpkgs option hearth sets, from the report: the option, the files of
/// hearth's that set it, the shim that declares it and the nixpkgs source (file and commit) that shim was written
/// from. `write` replaces the table; otherwise a stale one fails the gate.
fn docs_table(root: &Path, report: &Value, write: bool) -> Result<()> {
    let rel = |path: &str| {
        path.strip_prefix(&format!("{}/", root.display()))
            .unwrap_or(path)
            .to_owned()
    };
    let mut rows: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    for (_, configuration) in configurations(report) {
        for option in configuration["options"].as_array().into_iter().flatten() {
            let declared: Vec<String> = strings(&option["declaredIn"]).map(rel).collect();
            if !declared.iter().any(|file| file.starts_with("nix/eval/shims/")) {
                continue;
            }
            let row = rows
                .entry(option["option"].as_str().unwrap_or_default().to_owned())
                .or_default();
            row.0.extend(strings(&option["definedIn"]).map(rel));
            row.1.extend(
                declared
                    .into_iter()
                    .filter(|file| file.starts_with("nix/eval/shims/")),
            );
        }
    }
    let mut sources = BTreeMap::new();
    let mut table = String::from(
        "| option | set in | shim | read in (nixpkgs file @ repository@commit) |\n|---|---|---|---|\n",
    );
    for (option, (set_in, shims)) in &rows {
        let mut read_in = Vec::new();
        for shim in shims {
            if !sources.contains_key(shim) {
                sources.insert(shim.clone(), shim_sources(&root.join(shim))?);
            }
            read_in.extend(sources[shim].iter().cloned());
        }
        table.push_str(&format!(
            "| `{option}` | {} | {} | {} |\n",
            join(set_in.iter().map(|f| format!("`{f}`"))),
            join(
                shims
                    .iter()
                    .map(|f| format!("`{}`", f.trim_start_matches("nix/eval/shims/")))
            ),
            join(read_in.iter().map(|source| source.replace('|', "\\|"))),
        ));
    }
    let path = root.join(DOCS);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {DOCS}"))?;
    let (Some(begin), Some(end)) = (text.find(TABLE_BEGIN), text.find(TABLE_END)) else {
        bail!("{DOCS} has no option table markers ({TABLE_BEGIN} … {TABLE_END})");
    };
    let current = &text[begin + TABLE_BEGIN.len()..end];
    let wanted = format!("\n{table}");
    if current == wanted {
        println!(
            "nix-eval: {DOCS} lists the {} nixpkgs options hearth sets, with their sources",
            rows.len()
        );
        return Ok(());
    }
    if !write {
        bail!(
            "{DOCS}'s option table does not match the shims and modules: run `cargo xtask nix-eval --write-docs`"
        );
    }
    let updated = format!("{}{wanted}{}", &text[..begin + TABLE_BEGIN.len()], &text[end..]);
    fs::write(&path, updated)?;
    println!("nix-eval: rewrote {DOCS}'s option table ({} options)", rows.len());
    Ok(())
}

fn strings(value: &Value) -> impl Iterator<Item = &str> {
    value.as_array().into_iter().flatten().filter_map(Value::as_str)
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// A shim's `# shim-of: <nixpkgs file> @ <repository>@<commit>` lines; a shim without one is an error.
fn shim_sources(path: &Path) -> Result<Vec<String>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let sources: Vec<String> = text
        .lines()
        .take_while(|line| line.starts_with('#'))
        .filter_map(|line| line.strip_prefix("# shim-of: "))
        .map(str::to_owned)
        .collect();
    if sources.is_empty() {
        bail!(
            "{} names no source: a shim starts with `# shim-of: <nixpkgs file> @ <repository>@<commit>`",
            path.display()
        );
    }
    Ok(sources)
}

/// The tree as git sees it (tracked, and untracked but not ignored), for the mutated copies.
fn tree_files(root: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new("git")
        .current_dir(root)
        .args(["ls-files", "--cached", "--others", "--exclude-standard", "-z"])
        .output()?;
    if !output.status.success() {
        bail!(
            "git ls-files failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output
        .stdout
        .split(|byte| *byte == 0)
        .filter(|name| !name.is_empty())
        .map(|name| PathBuf::from(String::from_utf8_lossy(name).into_owned()))
        .filter(|path| root.join(path).is_file())
        .collect())
}

fn copy_files(root: &Path, dest: &Path, files: &[PathBuf]) -> Result<()> {
    for file in files {
        let target = dest.join(file);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(root.join(file), &target).with_context(|| format!("copying {}", file.display()))?;
    }
    Ok(())
}
