//! `hearth upgrade`, `hearth rollback` and the readiness wait they share: build, switch, wait for `/readyz`, and
//! when the new generation does not come up, go back to the one before — restoring the database from the dump the
//! new hearthd took before migrating, when it migrated. Every step is printed (the journal has it when this runs
//! as `hearth-upgrade.service`) and written as it happens to `<backups>/last-upgrade.json`, which
//! `/v1/capabilities` serves as `last_upgrade`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use hearth_api::status::{
    LAST_UPGRADE_FILE, Readiness, SchemaStatus, UpgradeOutcome, UpgradeRecord, UpgradeStep,
};

use crate::client::Hearth;

/// Where NixOS links the running system.
const CURRENT_SYSTEM: &str = "/run/current-system";

/// What both commands are told about the box.
#[derive(Debug, Clone)]
pub struct UpgradeSettings {
    /// hearthd's backups directory (`backup.dir`), where its dumps and the upgrade record are.
    pub backups: PathBuf,
    /// The system profile a switch sets, so the boot menu follows.
    pub profile: PathBuf,
    /// Run `hearthd restore` as this user (hearthd's own, for its database role); unset: as the caller.
    pub restore_as: Option<String>,
    /// hearthd's configuration file, for `hearthd restore`.
    pub config: Option<PathBuf>,
    /// How long the new generation may take to answer `/readyz` 200.
    pub ready_timeout: Duration,
}

/// Polls `/readyz` until it answers 200 or `timeout` passes, saying every 10 s what hearthd waits for. A hearthd
/// that does not answer (restarting) is waited for too. `Err` carries the last reason it was not ready.
pub async fn wait_ready(client: &Hearth, timeout: Duration) -> std::result::Result<Readiness, String> {
    let started = Instant::now();
    let mut last_said = Instant::now();
    loop {
        let reason = match client.readiness().await {
            Ok((true, readiness)) => return Ok(readiness),
            Ok((false, readiness)) => not_ready_because(&readiness),
            Err(error) => format!("hearthd does not answer: {error:#}"),
        };
        if started.elapsed() >= timeout {
            return Err(reason);
        }
        if last_said.elapsed() >= Duration::from_secs(10) {
            say(&format!(
                "waiting for hearthd ({} s): {reason}",
                started.elapsed().as_secs()
            ));
            last_said = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(1).min(timeout.saturating_sub(started.elapsed()))).await;
    }
}

/// The first thing `/readyz` names as missing, in words.
pub fn not_ready_because(readiness: &Readiness) -> String {
    if let Some(error) = &readiness.database.error {
        return format!("database: {error}");
    }
    let schema = &readiness.schema;
    if schema.status != SchemaStatus::Current {
        let status = serde_json::to_value(schema.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        return match &schema.reason {
            Some(reason) => format!("schema {status}: {reason}"),
            None => format!(
                "schema {status} (at {:?}, needs {:?})",
                schema.version, schema.expected
            ),
        };
    }
    if let Some(error) = &readiness.blobs.error {
        return format!("blob store: {error}");
    }
    let model = serde_json::to_value(&readiness.model).unwrap_or_default();
    format!("model {}", model)
}

#[allow(clippy::print_stdout)] // each step, for the person or the journal
fn say(line: &str) {
    println!("hearth upgrade: {line}");
}

/// The upgrade record, written after every step so a run cut short still says how far it got.
struct Recorder {
    path: PathBuf,
    record: UpgradeRecord,
}

impl Recorder {
    fn new(backups: &Path, from_system: String) -> Self {
        Self {
            path: backups.join(LAST_UPGRADE_FILE),
            record: UpgradeRecord {
                started_at: Utc::now(),
                finished_at: None,
                outcome: UpgradeOutcome::InProgress,
                from_system,
                to_system: None,
                schema_before: None,
                schema_after: None,
                backup: None,
                steps: Vec::new(),
            },
        }
    }

    fn step(&mut self, step: &str, detail: &str) {
        say(&format!("[{step}] {detail}"));
        self.record.steps.push(UpgradeStep {
            at: Utc::now(),
            step: step.to_owned(),
            detail: detail.to_owned(),
        });
        self.save();
    }

    fn finish(&mut self, outcome: UpgradeOutcome, detail: &str) {
        self.record.outcome = outcome;
        self.record.finished_at = Some(Utc::now());
        self.step("done", detail);
    }

    /// Best effort: a record that cannot be written is said, and the upgrade goes on.
    fn save(&self) {
        let written = serde_json::to_vec_pretty(&self.record)
            .map_err(std::io::Error::other)
            .and_then(|json| {
                let temp = self.path.with_extension("json.partial");
                std::fs::write(&temp, json)?;
                std::fs::File::open(&temp)?.sync_all()?;
                std::fs::rename(&temp, &self.path)
            });
        if let Err(error) = written {
            say(&format!(
                "cannot write the upgrade record {}: {error}",
                self.path.display()
            ));
        }
    }
}

/// `hearth upgrade`: the new system from `flake` (built) or `to` (a built system's store path).
pub async fn upgrade(
    client: &Hearth,
    the_box: &UpgradeSettings,
    flake: Option<&str>,
    to: Option<&Path>,
    dry_run: bool,
) -> Result<bool> {
    let current = resolved(Path::new(CURRENT_SYSTEM))?;
    let schema_before = client.readiness().await.ok().and_then(|(_, r)| r.schema.version);
    let new = match (flake, to) {
        (_, Some(path)) => resolved(path)?,
        (Some(flake), None) if dry_run => PathBuf::from(format!("(the system {flake} builds)")),
        (Some(flake), None) => build(flake)?,
        (None, None) => bail!("say what to upgrade to: --flake <flake>#<host> or --to <system store path>"),
    };
    if dry_run {
        print_plan(the_box, &current, &new, schema_before);
        return Ok(true);
    }
    let mut recorder = Recorder::new(&the_box.backups, current.display().to_string());
    recorder.record.schema_before = schema_before;
    recorder.record.to_system = Some(new.display().to_string());
    recorder.step(
        "preflight",
        &format!("running {}, schema {schema_before:?}", current.display()),
    );
    if new == current {
        recorder.finish(UpgradeOutcome::Unchanged, "the new system is the one running");
        return Ok(true);
    }
    if let Some(flake) = flake {
        recorder.step("build", &format!("{flake} built {}", new.display()));
    }
    let switched = switch(&the_box.profile, &new);
    recorder.step("switch", &outcome_words(&switched, &new));
    if !activated(the_box, &mut recorder, &current, &new) {
        return Ok(false);
    }
    let ready = wait_ready(client, the_box.ready_timeout).await;
    let backup = backup_taken_since(&the_box.backups, recorder.record.started_at, schema_before);
    recorder.record.backup = backup.as_ref().map(|p| p.display().to_string());
    match ready {
        Ok(readiness) => {
            recorder.record.schema_after = readiness.schema.version;
            recorder.step("wait-ready", "hearthd is ready");
            recorder.finish(
                UpgradeOutcome::Upgraded,
                &format!("serving from {}", new.display()),
            );
            Ok(true)
        }
        Err(reason) => {
            recorder.step(
                "wait-ready",
                &format!("not ready within {} s: {reason}", the_box.ready_timeout.as_secs()),
            );
            let back = go_back(client, the_box, &mut recorder, &current, backup.as_deref()).await;
            let outcome = if back {
                UpgradeOutcome::RolledBack
            } else {
                UpgradeOutcome::Failed
            };
            recorder.finish(outcome, &format!("the new generation did not come up ({reason})"));
            Ok(false)
        }
    }
}

/// Whether the switch left `new` running. switch-to-configuration exits non-zero when a unit failed (then the
/// health gate decides), but also when it stopped before activating (a boot loader it could not install): only
/// the running system tells. If it did not, the profile is pointed back at the running system.
fn activated(the_box: &UpgradeSettings, recorder: &mut Recorder, current: &Path, new: &Path) -> bool {
    if resolved(Path::new(CURRENT_SYSTEM)).ok().as_deref() == Some(new) {
        return true;
    }
    let reset = run(Command::new("nix-env")
        .arg("-p")
        .arg(&the_box.profile)
        .arg("--set")
        .arg(current));
    recorder.step(
        "switch-back",
        &words(
            &reset,
            "the new system never ran; the profile points at the running one again",
        ),
    );
    recorder.finish(
        UpgradeOutcome::Failed,
        "the switch did not activate the new system",
    );
    false
}

/// `hearth rollback`: back to the system the last upgrade came from, restoring the dump it took before migrating
/// when the old hearthd cannot run on the schema now (a breaking migration), or always with `restore`.
pub async fn rollback(client: &Hearth, the_box: &UpgradeSettings, restore: bool) -> Result<bool> {
    let path = the_box.backups.join(LAST_UPGRADE_FILE);
    let last: UpgradeRecord = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("no upgrade record at {}", path.display()))?,
    )
    .with_context(|| format!("cannot read {}", path.display()))?;
    if last.outcome != UpgradeOutcome::Upgraded {
        bail!(
            "the last upgrade did not end upgraded ({:?}): nothing to roll back",
            last.outcome
        );
    }
    let previous = PathBuf::from(&last.from_system);
    let current = resolved(Path::new(CURRENT_SYSTEM))?;
    let mut recorder = Recorder::new(&the_box.backups, current.display().to_string());
    recorder.record.to_system = Some(last.from_system.clone());
    recorder.record.schema_before = client.readiness().await.ok().and_then(|(_, r)| r.schema.version);
    let compatible = match (last.schema_before, oldest_compatible(client).await) {
        (Some(before), Some(oldest)) => before >= oldest,
        _ => false,
    };
    let backup = last
        .backup
        .as_ref()
        .map(PathBuf::from)
        .filter(|_| restore || !compatible);
    recorder.step(
        "preflight",
        &match &backup {
            Some(dump) => format!("back to {}, restoring {}", previous.display(), dump.display()),
            None => format!(
                "back to {}; its hearthd runs on the schema as it is",
                previous.display()
            ),
        },
    );
    let back = go_back(client, the_box, &mut recorder, &previous, backup.as_deref()).await;
    let outcome = if back {
        UpgradeOutcome::RolledBackByRequest
    } else {
        UpgradeOutcome::Failed
    };
    recorder.finish(outcome, "rollback by request");
    Ok(back)
}

async fn oldest_compatible(client: &Hearth) -> Option<i64> {
    let capabilities = client.capabilities().await.ok()?;
    capabilities.schema.oldest_compatible
}

/// Stop hearthd, restore `backup` if given, switch to `previous`, start hearthd and wait for it. Whether the box
/// serves again.
async fn go_back(
    client: &Hearth,
    the_box: &UpgradeSettings,
    recorder: &mut Recorder,
    previous: &Path,
    backup: Option<&Path>,
) -> bool {
    if let Some(dump) = backup.filter(|dump| !dump.is_file()) {
        recorder.step(
            "restore",
            &format!("the dump {} is gone: not going back", dump.display()),
        );
        return false;
    }
    let stopped = run(Command::new("systemctl").args(["stop", "hearthd.service"]));
    recorder.step("stop", &words(&stopped, "hearthd stopped"));
    if let Some(dump) = backup {
        let restored = restore(the_box, dump);
        recorder.step(
            "restore",
            &words(&restored, &format!("database restored from {}", dump.display())),
        );
        if restored.is_err() {
            // The restore's transaction rolled back, so the new hearthd's schema is intact: start it again rather
            // than leave the box stopped, and leave the rest to a person, with the reason in the record.
            let _ = run(Command::new("systemctl").args(["reset-failed", "hearthd.service"]));
            let started = run(Command::new("systemctl").args(["start", "hearthd.service"]));
            recorder.step(
                "start",
                &words(&started, "the new generation's hearthd started again"),
            );
            return false;
        }
    }
    let switched = switch(&the_box.profile, previous);
    recorder.step("switch-back", &outcome_words(&switched, previous));
    // A crash loop ends in start-limit-hit, which would refuse the start.
    let _ = run(Command::new("systemctl").args(["reset-failed", "hearthd.service"]));
    let started = run(Command::new("systemctl").args(["start", "hearthd.service"]));
    recorder.step("start", &words(&started, "hearthd started"));
    match wait_ready(client, the_box.ready_timeout).await {
        Ok(readiness) => {
            recorder.record.schema_after = readiness.schema.version;
            recorder.step("wait-ready", "the previous generation is ready");
            true
        }
        Err(reason) => {
            recorder.step(
                "wait-ready",
                &format!("the previous generation is not ready either: {reason}"),
            );
            false
        }
    }
}

/// `hearthd restore <dump>`, as `UpgradeSettings::restore_as` when set.
pub fn restore(the_box: &UpgradeSettings, dump: &Path) -> Result<()> {
    let hearthd = crate::hearthd_program();
    let mut command = match &the_box.restore_as {
        Some(user) => {
            let mut command = Command::new("runuser");
            command.args(["-u", user, "--"]).arg(&hearthd);
            command
        }
        None => Command::new(&hearthd),
    };
    if let Some(config) = &the_box.config {
        command.arg("--config").arg(config);
    }
    command.arg("restore").arg(dump);
    run(&mut command)
}

fn switch(profile: &Path, system: &Path) -> Result<()> {
    run(Command::new("nix-env")
        .arg("-p")
        .arg(profile)
        .arg("--set")
        .arg(system))?;
    run(Command::new(system.join("bin/switch-to-configuration")).arg("switch"))
}

fn build(flake: &str) -> Result<PathBuf> {
    let (source, host) = flake
        .split_once('#')
        .context("--flake needs <flake>#<host>, e.g. github:you/site#appliance")?;
    let attribute = format!("{source}#nixosConfigurations.\"{host}\".config.system.build.toplevel");
    say(&format!("building {attribute}"));
    let output = Command::new("nix")
        .args(["build", "--no-link", "--print-out-paths"])
        .arg(&attribute)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot run nix build")?;
    if !output.status.success() {
        bail!(
            "nix build {attribute} failed ({}): nothing was switched",
            output.status
        );
    }
    let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Ok(PathBuf::from(path))
}

/// The dump hearthd took before migrating since `since` (the new generation's), if any.
/// Only a dump of `schema` (the schema before the upgrade, when known) qualifies: after a multi-step migration that
/// failed half-way, later dumps hold an intermediate schema the old hearthd may not run on.
fn backup_taken_since(backups: &Path, since: chrono::DateTime<Utc>, schema: Option<i64>) -> Option<PathBuf> {
    let entries = std::fs::read_dir(backups).ok()?;
    let mut taken: Vec<(chrono::DateTime<Utc>, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.to_string_lossy().ends_with(".dump.json"))
        .filter_map(|path| {
            let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
            let created: chrono::DateTime<Utc> = manifest["created_at"].as_str()?.parse().ok()?;
            let of_schema = schema.is_none_or(|schema| manifest["schema"].as_i64() == Some(schema));
            (manifest["reason"] == "before-migrate" && created >= since && of_schema).then(|| {
                (
                    created,
                    backups.join(manifest["file"].as_str().unwrap_or_default()),
                )
            })
        })
        .collect();
    // The first one taken holds the database as it was before this upgrade touched it.
    taken.sort();
    taken.into_iter().next().map(|(_, path)| path)
}

fn print_plan(the_box: &UpgradeSettings, current: &Path, new: &Path, schema: Option<i64>) {
    let profile = the_box.profile.display();
    for line in [
        format!("running {} (schema {schema:?})", current.display()),
        format!(
            "1. switch: nix-env -p {profile} --set {0}; {0}/bin/switch-to-configuration switch",
            new.display()
        ),
        format!(
            "2. wait up to {} s for /readyz (the new hearthd backs the database up into {} before migrating)",
            the_box.ready_timeout.as_secs(),
            the_box.backups.display()
        ),
        "3. if it is not ready: systemctl stop hearthd; restore the dump it took (if it migrated);"
            .to_owned(),
        format!(
            "   nix-env -p {profile} --set {0}; {0}/bin/switch-to-configuration switch; systemctl start hearthd",
            current.display()
        ),
        format!("record: {}", the_box.backups.join(LAST_UPGRADE_FILE).display()),
    ] {
        say(&line);
    }
}

fn resolved(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).with_context(|| format!("{} does not exist", path.display()))
}

fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", command.get_program().to_string_lossy()))?;
    if !status.success() {
        bail!("{} failed ({status})", command.get_program().to_string_lossy());
    }
    Ok(())
}

fn words(result: &Result<()>, ok: &str) -> String {
    match result {
        Ok(()) => ok.to_owned(),
        Err(error) => format!("failed: {error:#}"),
    }
}

fn outcome_words(result: &Result<()>, system: &Path) -> String {
    words(result, &format!("switched to {}", system.display()))
}
