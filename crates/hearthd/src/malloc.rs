//! glibc malloc tunables for the server. By default glibc raises its mmap threshold each time a large block is
//! freed, so later large blocks (onnxruntime's batch tensors, request bodies) come from heaps it keeps after they
//! are freed, and every thread may get a heap of its own: measured on the Pi profile's settings, 693 MiB at peak
//! during an ingest, 1,260 MiB during 32 concurrent searches and 714 MiB at rest afterwards against 135 MiB
//! loaded. With a fixed threshold and two heaps: 497, 476 and 118 MiB (docs/benchmarks.md, memory).
//!
//! glibc reads `GLIBC_TUNABLES` only when a process starts, and setting them from inside would need `unsafe`
//! (mallopt), so `hearthd serve` re-executes itself once with them set. An operator's own `glibc.malloc.*`
//! tunables are left as they are.

/// Blocks of 128 KiB and more are mapped and unmapped on their own; at most two malloc heaps.
pub const TUNABLES: &str = "glibc.malloc.mmap_threshold=131072:glibc.malloc.arena_max=2";

/// Re-executes hearthd with [`TUNABLES`] unless they (or the operator's malloc tunables) are already set. Returns
/// only when no re-execution is needed, or with the reason it failed, for the caller to log.
#[cfg(target_env = "gnu")]
pub fn tune() -> Option<String> {
    use std::os::unix::process::CommandExt;
    let current = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    if current.contains("glibc.malloc.") {
        return None;
    }
    let value = if current.is_empty() {
        TUNABLES.to_owned()
    } else {
        format!("{current}:{TUNABLES}")
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => return Some(format!("cannot find hearthd's own executable: {error}")),
    };
    // exec returns only if it failed; the process (and its pid, which systemd watches) stays the same otherwise.
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("GLIBC_TUNABLES", value)
        .exec();
    Some(error.to_string())
}

/// Other C libraries have allocators of their own; nothing to tune.
#[cfg(not(target_env = "gnu"))]
pub fn tune() -> Option<String> {
    None
}
