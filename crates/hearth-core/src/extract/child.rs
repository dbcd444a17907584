//! The child side of extraction (`hearthd extract`): confine this process, read the document on stdin, write its
//! text on stdout. The parent sets the resource limits before it sends the document (`sandbox.rs`); here the process gives up what
//! it can still do to the rest of the machine: every file system access (Landlock) and every network or process
//! system call (seccomp), where the kernel offers them. Nothing in here may log: stderr is the report channel.

use std::io::{Read as _, Write as _};
use std::process::ExitCode;

use super::ContentType;
use super::ContentTypeExt as _;
use super::sandbox::{ERROR_EXIT, ERROR_MARKER};

/// Runs one extraction: `content_type` as given to the parent, `max_pages` its limit. Exit 0 with the text on
/// stdout, [`ERROR_EXIT`] with the error on stderr, or die trying (the parent reports how).
pub fn run_child(content_type: &str, max_pages: usize) -> ExitCode {
    let _ = confine();
    let mut bytes = Vec::new();
    if let Err(error) = std::io::stdin().lock().read_to_end(&mut bytes) {
        let _ = writeln!(std::io::stderr(), "reading the document: {error}");
        return ExitCode::FAILURE;
    }
    let outcome =
        ContentType::parse(content_type).and_then(|content_type| content_type.extract(&bytes, max_pages));
    match outcome {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            let json = serde_json::to_string(&error).unwrap_or_default();
            let _ = writeln!(std::io::stderr(), "{ERROR_MARKER}{json}");
            ExitCode::from(ERROR_EXIT as u8)
        }
    }
}

/// What [`confine`] could put in place on this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Confinement {
    file_system_denied: bool,
    network_and_processes_denied: bool,
}

/// Best effort: a kernel without Landlock or seccomp leaves the resource limits and the empty environment.
fn confine() -> Confinement {
    Confinement {
        file_system_denied: deny_file_system(),
        network_and_processes_denied: deny_network_and_processes(),
    }
}

/// No file may be opened, read, written or executed from here on (what is already open, stdio, stays usable).
#[cfg(target_os = "linux")]
fn deny_file_system() -> bool {
    use landlock::{ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetStatus};
    Ruleset::default()
        .handle_access(AccessFs::from_all(ABI::V3))
        .and_then(|ruleset| ruleset.create())
        .and_then(|ruleset| ruleset.restrict_self())
        .is_ok_and(|status| status.ruleset == RulesetStatus::FullyEnforced)
}

#[cfg(not(target_os = "linux"))]
fn deny_file_system() -> bool {
    false
}

#[cfg(not(target_os = "linux"))]
fn deny_network_and_processes() -> bool {
    false
}

/// Sockets, program execution and tracing fail with EPERM.
#[cfg(target_os = "linux")]
fn deny_network_and_processes() -> bool {
    use std::collections::BTreeMap;

    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

    let arch = match std::env::consts::ARCH {
        "x86_64" => TargetArch::x86_64,
        "aarch64" => TargetArch::aarch64,
        _ => return false,
    };
    let denied = [
        libc_numbers::SOCKET,
        libc_numbers::SOCKETPAIR,
        libc_numbers::CONNECT,
        libc_numbers::BIND,
        libc_numbers::LISTEN,
        libc_numbers::ACCEPT4,
        libc_numbers::EXECVE,
        libc_numbers::EXECVEAT,
        libc_numbers::PTRACE,
        libc_numbers::PROCESS_VM_WRITEV,
    ];
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        denied.into_iter().map(|number| (number, Vec::new())).collect();
    let Ok(filter) = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(1), // EPERM
        arch,
    ) else {
        return false;
    };
    let Ok(program) = BpfProgram::try_from(filter) else {
        return false;
    };
    // The filter needs no_new_privs, which Landlock's restrict_self has set already; set it again in case it did
    // not run.
    let _ = rustix::thread::set_no_new_privs(true);
    seccompiler::apply_filter(&program).is_ok()
}

/// System call numbers of the calls the filter denies, per architecture.
#[cfg(target_os = "linux")]
mod libc_numbers {
    #[cfg(target_arch = "x86_64")]
    mod numbers {
        pub const SOCKET: i64 = 41;
        pub const SOCKETPAIR: i64 = 53;
        pub const CONNECT: i64 = 42;
        pub const BIND: i64 = 49;
        pub const LISTEN: i64 = 50;
        pub const ACCEPT4: i64 = 288;
        pub const EXECVE: i64 = 59;
        pub const EXECVEAT: i64 = 322;
        pub const PTRACE: i64 = 101;
        pub const PROCESS_VM_WRITEV: i64 = 311;
    }
    #[cfg(target_arch = "aarch64")]
    mod numbers {
        pub const SOCKET: i64 = 198;
        pub const SOCKETPAIR: i64 = 199;
        pub const CONNECT: i64 = 203;
        pub const BIND: i64 = 200;
        pub const LISTEN: i64 = 201;
        pub const ACCEPT4: i64 = 242;
        pub const EXECVE: i64 = 221;
        pub const EXECVEAT: i64 = 281;
        pub const PTRACE: i64 = 117;
        pub const PROCESS_VM_WRITEV: i64 = 271;
    }
    pub use numbers::*;
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE: &str = "HEARTH_CONFINEMENT_PROBE";

    /// Runs in a child of the test (this same test, re-executed with the probe variable set): confines itself,
    /// then tries what a compromised parser would.
    fn probe() -> ! {
        let confinement = confine();
        let opened = std::fs::File::open("/etc/hostname").is_ok();
        let listened = std::net::TcpListener::bind("127.0.0.1:0").is_ok();
        let executed = std::process::Command::new("/bin/true").status().is_ok();
        println!(
            "{}",
            serde_json::json!({
                "file_system_denied": confinement.file_system_denied,
                "network_and_processes_denied": confinement.network_and_processes_denied,
                "opened": opened,
                "listened": listened,
                "executed": executed,
            })
        );
        std::process::exit(0)
    }

    #[test]
    fn a_confined_child_cannot_open_files_listen_or_run_programs() {
        if std::env::var_os(PROBE).is_some() {
            probe();
        }
        let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "extract::child::tests::a_confined_child_cannot_open_files_listen_or_run_programs",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .env(PROBE, "1")
            .output()
            .expect("re-run the test as the probe");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let report: serde_json::Value = stdout
            .lines()
            .find_map(|line| {
                line.find('{')
                    .and_then(|start| serde_json::from_str(&line[start..]).ok())
            })
            .unwrap_or_else(|| panic!("no report from the probe: {stdout}"));
        assert_eq!(report["network_and_processes_denied"], true, "{report}");
        assert_eq!(report["listened"], false, "a socket was opened: {report}");
        assert_eq!(report["executed"], false, "a program was run: {report}");
        // Landlock is optional in the kernel; where it is on, nothing can be opened.
        if report["file_system_denied"] == true {
            assert_eq!(report["opened"], false, "a file was opened: {report}");
        }
    }
}
