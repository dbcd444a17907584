//! systemd's notify protocol (`Type=notify`): READY, STATUS, WATCHDOG and STOPPING datagrams to
//! `$NOTIFY_SOCKET`. Without that variable (not started by systemd) every call does nothing.
//!
//! A datagram send blocks while the receiver's queue is full, and that must never stall the async runtime that
//! serves requests. So the sends happen on a thread of their own, in order, fed by a bounded queue; when even that
//! queue is full (the receiver stopped reading), notifications are dropped with a warning.

use std::os::unix::net::UnixDatagram;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::Duration;

/// Notifications waiting for the sending thread.
const QUEUE: usize = 64;

enum Message {
    State(String),
    /// Answered once everything queued before it was sent.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Where to send notifications, when systemd asked for them.
pub struct Notifier {
    queue: Option<SyncSender<Message>>,
}

enum Target {
    Path(std::path::PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    pub fn from_env() -> Self {
        let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
            return Self { queue: None };
        };
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(socket.as_os_str());
        let target = match bytes.strip_prefix(b"@") {
            Some(name) => Target::Abstract(name.to_vec()),
            None => Target::Path(socket.clone().into()),
        };
        let datagram = match UnixDatagram::unbound() {
            Ok(datagram) => datagram,
            Err(error) => {
                tracing::warn!(%error, "cannot create a socket for systemd notifications");
                return Self { queue: None };
            }
        };
        let (queue, receiver) = mpsc::sync_channel(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("hearth-notify".into())
            .spawn(move || {
                while let Ok(message) = receiver.recv() {
                    match message {
                        Message::State(state) => send(&datagram, &target, &state),
                        Message::Flush(done) => drop(done.send(())),
                    }
                }
            });
        match spawned {
            Ok(_) => Self { queue: Some(queue) },
            Err(error) => {
                tracing::warn!(%error, "cannot start the systemd notification thread");
                Self { queue: None }
            }
        }
    }

    /// Queues one notification (`READY=1`, `STATUS=…`); never blocks, never fails the caller.
    pub fn notify(&self, state: &str) {
        let Some(queue) = &self.queue else {
            return;
        };
        match queue.try_send(Message::State(state.to_owned())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!(state, "systemd is not reading notifications; dropped one")
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::warn!(state, "the notification thread is gone; dropped one")
            }
        }
    }

    pub fn status(&self, status: &str) {
        self.notify(&format!("STATUS={status}"));
    }

    /// Waits (at most a second) until everything queued so far was sent: before the process exits.
    pub async fn flush(&self) {
        let Some(queue) = &self.queue else {
            return;
        };
        let (done, sent) = tokio::sync::oneshot::channel();
        if queue.try_send(Message::Flush(done)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), sent).await;
        }
    }
}

fn send(datagram: &UnixDatagram, target: &Target, state: &str) {
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
