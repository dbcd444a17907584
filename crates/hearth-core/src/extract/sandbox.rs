//! The parent side of extraction: each untrusted document is parsed by a short-lived child process (hearthd
//! re-executed with its `extract` subcommand) under limits the parent puts on it (address space, CPU time, open
//! files, no core dumps; prlimit, before the child has read a byte of the document) and a wall-clock timeout, with
//! the child confining itself further (`child.rs`). Whatever the file does to the parser, the worst outcome is a
//! dead child and a plain reason.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::ContentTypeExt as _;
use super::{ContentType, ExtractError};

/// The child writes this, then the error as JSON, on stderr when the document itself cannot be read.
pub(super) const ERROR_MARKER: &str = "hearth-extract-error: ";
/// Exit status of a child that reports an [`ExtractError`].
pub(super) const ERROR_EXIT: i32 = 3;

/// What one extraction may use (`ingest.extraction` in the configuration).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExtractionLimits {
    /// Address space of the child, in MiB: what a decompression bomb or a runaway parser can take.
    pub memory_mib: u64,
    /// CPU time of the child, in seconds.
    pub cpu_seconds: u64,
    /// Wall-clock time, in seconds, after which the child is killed.
    pub timeout_seconds: u64,
    /// Pages of a PDF that are read; a longer one is refused.
    pub max_pages: usize,
    /// Largest extracted text, in bytes.
    pub max_text_bytes: usize,
}

impl Default for ExtractionLimits {
    fn default() -> Self {
        Self {
            memory_mib: 512,
            cpu_seconds: 60,
            timeout_seconds: 120,
            max_pages: 2000,
            max_text_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Why a sandboxed extraction produced no text. `Document` is about the file and will not change; the others are
/// the sandbox stopping a parser, which is worth one retry only when it may have been the machine (a crash under
/// memory pressure, a timeout on a loaded box).
#[derive(Debug, thiserror::Error)]
pub enum ExtractFailure {
    #[error(transparent)]
    Document(#[from] ExtractError),
    #[error(
        "the {kind} could not be read: it exceeded the {limit} MiB extraction limit (ingest.extraction.memory_mib)"
    )]
    Memory { kind: &'static str, limit: u64 },
    #[error(
        "the {kind} could not be read: it took more than {limit} s of CPU time (ingest.extraction.cpu_seconds)"
    )]
    CpuTime { kind: &'static str, limit: u64 },
    #[error(
        "the {kind} could not be read: reading it took longer than {limit} s (ingest.extraction.timeout_seconds)"
    )]
    Timeout { kind: &'static str, limit: u64 },
    #[error(
        "the {kind} could not be read: its text is larger than {limit} bytes (ingest.extraction.max_text_bytes)"
    )]
    TooMuchText { kind: &'static str, limit: usize },
    #[error("the {kind} could not be read: the parser crashed on it ({how})")]
    Crashed { kind: &'static str, how: String },
    #[error("the extraction process could not be run: {0}")]
    Spawn(String),
}

impl ExtractFailure {
    /// Whether another attempt could end differently.
    pub fn may_pass_on_retry(&self) -> bool {
        matches!(
            self,
            ExtractFailure::Crashed { .. } | ExtractFailure::Timeout { .. } | ExtractFailure::Spawn(_)
        )
    }
}

/// How to start the extraction child: the program, the arguments before the child's own, and the limits.
#[derive(Debug, Clone)]
pub struct Sandbox {
    program: PathBuf,
    args: Vec<OsString>,
    limits: ExtractionLimits,
}

impl Sandbox {
    /// `program args… --content-type T --max-pages N` must run [`super::run_child`] (hearthd: `hearthd extract`).
    pub fn new(program: PathBuf, args: Vec<OsString>, limits: ExtractionLimits) -> Self {
        Self {
            program,
            args,
            limits,
        }
    }

    pub fn limits(&self) -> &ExtractionLimits {
        &self.limits
    }

    /// The document's text. Plain text and Markdown only need a UTF-8 check and are read here; PDF and HTML go
    /// to a child process.
    pub async fn extract(&self, content_type: ContentType, bytes: Bytes) -> Result<String, ExtractFailure> {
        if !content_type.needs_parser() {
            let max_pages = self.limits.max_pages;
            return tokio::task::spawn_blocking(move || content_type.extract(&bytes, max_pages))
                .await
                .map_err(|e| ExtractFailure::Spawn(e.to_string()))?
                .map_err(ExtractFailure::from);
        }
        let kind = match content_type {
            ContentType::Pdf => "PDF",
            _ => "HTML page",
        };
        let mut child = self
            .command(content_type)
            .spawn()
            .map_err(|e| ExtractFailure::Spawn(format!("{}: {e}", self.program.display())))?;
        // The child waits for its input, so the limits are in place before it parses anything.
        let pid = child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id as i32))
            .ok_or_else(|| ExtractFailure::Spawn("the child exited at once".into()))?;
        apply_limits(pid, &self.limits)
            .map_err(|e| ExtractFailure::Spawn(format!("limiting the child: {e}")))?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(ExtractFailure::Spawn("the child's pipes are missing".into()));
        };
        // The child may stop reading (it crashed, or hit a limit): a failed write is then not the story.
        let feed = async move {
            let _ = stdin.write_all(&bytes).await;
            drop(stdin);
        };
        let text_limit = self.limits.max_text_bytes;
        let read_text = read_capped(stdout, text_limit);
        let read_errors = async move {
            let mut errors = Vec::new();
            let _ = stderr.take(64 * 1024).read_to_end(&mut errors).await;
            errors
        };
        let timeout = Duration::from_secs(self.limits.timeout_seconds.max(1));
        let run = async { tokio::join!(feed, read_text, read_errors, child.wait()) };
        let (_, text, errors, status) = match tokio::time::timeout(timeout, run).await {
            Ok(done) => done,
            Err(_) => {
                let _ = child.kill().await;
                return Err(ExtractFailure::Timeout {
                    kind,
                    limit: self.limits.timeout_seconds,
                });
            }
        };
        let text = text.map_err(|e| ExtractFailure::Spawn(format!("reading the child's text: {e}")))?;
        let status = status.map_err(|e| ExtractFailure::Spawn(format!("waiting for the child: {e}")))?;
        if text.len() > text_limit {
            return Err(ExtractFailure::TooMuchText {
                kind,
                limit: text_limit,
            });
        }
        let errors = String::from_utf8_lossy(&errors);
        if status.success() {
            return String::from_utf8(text).map_err(|_| ExtractFailure::Crashed {
                kind,
                how: "it produced text that is not UTF-8".into(),
            });
        }
        Err(self.failure(kind, status, &errors))
    }

    /// What a child that did not succeed tells: a reported error, a limit, or a crash.
    fn failure(&self, kind: &'static str, status: std::process::ExitStatus, errors: &str) -> ExtractFailure {
        if status.code() == Some(ERROR_EXIT)
            && let Some(error) = errors
                .lines()
                .find_map(|line| line.strip_prefix(ERROR_MARKER))
                .and_then(|json| serde_json::from_str::<ExtractError>(json).ok())
        {
            return ExtractFailure::Document(error);
        }
        // Rust's allocation error handler says so before aborting; the address space limit is what it ran into.
        if errors.contains("memory allocation of") {
            return ExtractFailure::Memory {
                kind,
                limit: self.limits.memory_mib,
            };
        }
        // SIGXCPU at the soft CPU limit, SIGKILL at the hard one a second later (the wall-clock timeout, the
        // other killer, is reported before this).
        let signal = status.signal();
        if signal == Some(rustix::process::Signal::XCPU.as_raw())
            || signal == Some(rustix::process::Signal::KILL.as_raw())
        {
            return ExtractFailure::CpuTime {
                kind,
                limit: self.limits.cpu_seconds,
            };
        }
        let how = if errors.contains("overflowed its stack") {
            "it nests too deeply".to_owned()
        } else if let Some(signal) = signal {
            format!("signal {signal}")
        } else {
            format!("exit status {}", status.code().unwrap_or(-1))
        };
        tracing::warn!(%status, stderr = %errors.trim(), "the extraction child failed");
        ExtractFailure::Crashed { kind, how }
    }

    fn command(&self, content_type: ContentType) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .arg("--content-type")
            .arg(content_type.mime())
            .arg("--max-pages")
            .arg(self.limits.max_pages.to_string())
            // Nothing of the server's environment (credentials directory, database settings) reaches the parser.
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }
}

/// Puts the limits on the child (a process of the same user may lower another's limits).
fn apply_limits(pid: rustix::process::Pid, limits: &ExtractionLimits) -> std::io::Result<()> {
    use rustix::process::{Resource, Rlimit, prlimit};
    let limit = |resource, soft: u64, hard: u64| {
        prlimit(
            Some(pid),
            resource,
            Rlimit {
                current: Some(soft),
                maximum: Some(hard),
            },
        )
        .map(|_| ())
        .map_err(std::io::Error::from)
    };
    let memory = limits.memory_mib.saturating_mul(1024 * 1024);
    limit(Resource::As, memory, memory)?;
    // SIGXCPU at the soft limit, SIGKILL a second later.
    limit(Resource::Cpu, limits.cpu_seconds, limits.cpu_seconds + 1)?;
    // A document's contents never go into a core file.
    limit(Resource::Core, 0, 0)?;
    limit(Resource::Nofile, 32, 32)?;
    Ok(())
}

/// The child's text, keeping at most one byte over `limit` and draining the rest, so the child is never left
/// blocked on a full pipe (that would read as a timeout).
async fn read_capped(mut stdout: tokio::process::ChildStdout, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut text = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = stdout.read(&mut buffer).await?;
        if read == 0 {
            return Ok(text);
        }
        let room = (limit + 1).saturating_sub(text.len());
        text.extend_from_slice(&buffer[..read.min(room)]);
    }
}
