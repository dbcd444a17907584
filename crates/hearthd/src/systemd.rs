//! systemd's notify protocol (`Type=notify`): READY, STATUS, WATCHDOG and STOPPING datagrams to
//! `$NOTIFY_SOCKET`. Without that variable (not started by systemd) every call does nothing.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Where to send notifications, when systemd asked for them.
pub struct Notifier {
    target: Option<(UnixDatagram, Target)>,
}

enum Target {
    Path(std::path::PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    pub fn from_env() -> Self {
        let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
            return Self { target: None };
        };
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(socket.as_os_str());
        let target = match bytes.strip_prefix(b"@") {
            Some(name) => Target::Abstract(name.to_vec()),
            None => Target::Path(socket.clone().into()),
        };
        match UnixDatagram::unbound() {
            Ok(datagram) => Self {
                target: Some((datagram, target)),
            },
            Err(error) => {
                tracing::warn!(%error, "cannot create a socket for systemd notifications");
                Self { target: None }
            }
        }
    }

    /// Sends one notification (`READY=1`, `STATUS=…`); a failure is logged, never fatal.
    pub fn notify(&self, state: &str) {
        let Some((datagram, target)) = &self.target else {
            return;
        };
        let sent = match target {
            Target::Path(path) => datagram.send_to(state.as_bytes(), path),
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|address| datagram.send_to_addr(state.as_bytes(), &address))
            }
        };
        if let Err(error) = sent {
            tracing::warn!(%error, state, "cannot notify systemd");
        }
    }

    pub fn status(&self, status: &str) {
        self.notify(&format!("STATUS={status}"));
    }
}

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC` (as sd_watchdog_enabled advises), when the watchdog is
/// enabled for this process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
