//! `hearthd backup` and `hearthd restore`: the database's dumps by hand (the `hearth` CLI runs these on the box).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hearth_core::config::Config;

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn credentials() -> Option<PathBuf> {
    std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from)
}

pub fn backup(config: &Config) -> Result<()> {
    let (path, manifest) = runtime()?
        .block_on(hearth_core::schema::backup::dump_now(
            config,
            credentials().as_deref(),
        ))
        .context("backup failed")?;
    tracing::info!(bytes = manifest.bytes, sha256 = %manifest.sha256, schema = manifest.schema, "backup written");
    println!("{}", path.display());
    Ok(())
}

pub fn restore(config: &Config, dump: &Path) -> Result<()> {
    let report = runtime()?
        .block_on(hearth_core::schema::backup::restore_now(
            config,
            credentials().as_deref(),
            dump,
        ))
        .with_context(|| format!("restoring {} failed; the database is as it was", dump.display()))?;
    if let Some(safety) = &report.safety {
        tracing::info!(file = %safety.path(&config.backup.dir).display(),
            "what the restore replaced was dumped first: restore that file to undo");
    }
    tracing::info!(restored = ?report.restored_schema, replaced = ?report.replaced_schema,
        "database restored; start hearthd (systemctl start hearthd)");
    Ok(())
}
