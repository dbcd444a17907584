//! Small helpers for running the real binaries.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::KitError;

/// Runs a command to completion; a non-zero exit becomes an error carrying its output.
pub(crate) fn run(command: &mut Command) -> Result<String, KitError> {
    let described = format!("{command:?}");
    let output = command
        .output()
        .map_err(KitError::io(format!("starting {described}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    Err(KitError::Command {
        command: described,
        status: output.status.to_string(),
        output: format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)),
    })
}

/// A TCP port that was free a moment ago. Callers retry start-up if another process takes it first.
pub(crate) fn free_port() -> Result<u16, KitError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(KitError::io("binding an ephemeral port"))?;
    let port = listener
        .local_addr()
        .map_err(KitError::io("reading an ephemeral port"))?
        .port();
    Ok(port)
}

/// Polls `ready` until it returns true or `timeout` passes.
pub(crate) fn wait_until(timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last lines of a log file, for error messages.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// PostgreSQL refuses to run as root. When the kit runs as root (CI does), servers run as `nobody`.
pub(crate) const UNPRIVILEGED_UID: u32 = 65534;
pub(crate) const UNPRIVILEGED_GID: u32 = 65534;

pub(crate) fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `len` random bytes as hex, from the kernel's generator: the kit's secrets are throwaway, but must still differ
/// between parallel tests.
pub(crate) fn random_hex(len: usize) -> Result<String, KitError> {
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        filled += rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty())
            .map_err(|e| KitError::io("reading random bytes")(e.into()))?;
    }
    Ok(hex::encode(buf))
}

/// A command for a server the kit owns. Through util-linux `setpriv` it gets SIGKILL when the process that started
/// it dies, so even a test killed by a timeout (which runs no destructors) leaves no server behind; under root it
/// also runs as `nobody`. Without `setpriv` the server still stops on drop, only not on SIGKILL of the test.
pub(crate) fn tied_command(program: &Path, unprivileged: bool) -> Command {
    let Some(setpriv) = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
    else {
        let mut command = Command::new(program);
        if unprivileged {
            std::os::unix::process::CommandExt::uid(&mut command, UNPRIVILEGED_UID);
            std::os::unix::process::CommandExt::gid(&mut command, UNPRIVILEGED_GID);
        }
        return command;
    };
    let mut command = Command::new(setpriv);
    if unprivileged {
        command.args([
            format!("--reuid={UNPRIVILEGED_UID}"),
            format!("--regid={UNPRIVILEGED_GID}"),
            "--clear-groups".to_owned(),
        ]);
    }
    // setpriv sets the death signal after changing credentials (a credential change would clear it).
    command.args(["--pdeathsig", "KILL", "--"]).arg(program);
    command
}

/// Sends `signal` and waits up to `timeout` for the child to exit; kills it if it does not.
pub(crate) fn signal_and_wait(child: &mut Child, signal: rustix::process::Signal, timeout: Duration) -> bool {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return true;
    }
    if let Some(pid) = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, signal);
    }
    let exited = wait_until(timeout, || matches!(child.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = child.kill();
    }
    let _ = child.wait();
    exited
}
