//! llama.cpp's OpenAI-compatible server (from llama-cpp-python, built by `cargo xtask deps`) on a free loopback
//! port, with a tiny random-weight model, as the reasoning tests' provider. Every request it receives is logged
//! (see `python/llama_server.py`), so a test can check what hearth sent.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustix::process::Signal;

use crate::{KitError, process};

const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The model name the server answers to.
pub const LLAMA_MODEL: &str = "hearth-test-tiny";

#[derive(Debug)]
pub struct TestLlama {
    child: Child,
    /// `http://127.0.0.1:<port>/v1`
    pub base_url: String,
    /// The bearer key it requires.
    pub api_key: String,
    dir: tempfile::TempDir,
}

/// The interpreter of the llama env `cargo xtask deps` built.
pub fn llama_python() -> Result<PathBuf, KitError> {
    crate::deps::recorded(
        "HEARTH_LLAMA_PYTHON",
        "llama.cpp's server (the llama Python environment)",
    )
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python").join(name)
}

impl TestLlama {
    /// Writes the tiny model and starts the server with a fresh random key; waits until it answers.
    pub fn start() -> Result<Self, KitError> {
        let python = llama_python()?;
        let dir = tempfile::Builder::new()
            .prefix("hearth-llama-")
            .tempdir()
            .map_err(KitError::io("creating the llama directory"))?;
        let model = dir.path().join("tiny.gguf");
        let output = Command::new(&python)
            .arg(script("tiny_llama.py"))
            .arg(&model)
            .output()
            .map_err(KitError::io("writing the tiny model"))?;
        if !output.status.success() {
            return Err(KitError::Command {
                command: "tiny_llama.py".into(),
                status: output.status.to_string(),
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        let port = process::free_port()?;
        let api_key = format!("sk-test-{}", hex::encode(rand_bytes()));
        let log = std::fs::File::create(dir.path().join("server.log")).map_err(KitError::io("llama log"))?;
        let child = process::tied_command(&python, false)
            .arg(script("llama_server.py"))
            .arg("--model")
            .arg(&model)
            .args([
                "--port",
                &port.to_string(),
                "--api-key",
                &api_key,
                "--alias",
                LLAMA_MODEL,
            ])
            .arg("--requests")
            .arg(dir.path().join("requests.jsonl"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(KitError::io("llama log"))?)
            .stderr(log)
            .spawn()
            .map_err(KitError::io("starting llama.cpp's server"))?;
        let mut llama = Self {
            child,
            base_url: format!("http://127.0.0.1:{port}/v1"),
            api_key,
            dir,
        };
        let ready = process::wait_until(START_TIMEOUT, || {
            matches!(llama.child.try_wait(), Ok(Some(_))) || llama.models_ok()
        });
        if !ready || matches!(llama.child.try_wait(), Ok(Some(_))) {
            return Err(KitError::NotReady {
                service: "llama.cpp's server",
                seconds: START_TIMEOUT.as_secs(),
                log_tail: std::fs::read_to_string(llama.dir.path().join("server.log")).unwrap_or_default(),
            });
        }
        // The readiness probe is not a request hearth made.
        let _ = std::fs::remove_file(llama.requests_path());
        Ok(llama)
    }

    /// Whether `GET /v1/models` with the key answers 200.
    fn models_ok(&self) -> bool {
        let request = format!(
            "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.api_key
        );
        http_status(self.port(), &request) == Some(200)
    }

    pub fn port(&self) -> u16 {
        self.base_url
            .trim_start_matches("http://127.0.0.1:")
            .split('/')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_default()
    }

    fn requests_path(&self) -> PathBuf {
        self.dir.path().join("requests.jsonl")
    }

    /// Every request received so far: `{method, path, bearer, body}`.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.requests_path())
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Makes the server wait `delay` before answering and `chunk_delay` between the pieces of a stream.
    pub fn set_behaviour(&self, delay: Duration, chunk_delay: Duration) -> Result<(), KitError> {
        let body = serde_json::json!({
            "delay_seconds": delay.as_secs_f64(),
            "chunk_delay_seconds": chunk_delay.as_secs_f64(),
        })
        .to_string();
        let request = format!(
            "POST /_test/behaviour HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        match http_status(self.port(), &request) {
            Some(204) => Ok(()),
            other => Err(KitError::Command {
                command: "llama server /_test/behaviour".into(),
                status: format!("{other:?}"),
                output: String::new(),
            }),
        }
    }

    /// The server's own log (uvicorn, llama.cpp).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// SIGKILL: the provider dies mid-whatever.
    pub fn kill(&mut self) {
        process::signal_and_wait(&mut self.child, Signal::KILL, Duration::from_secs(5));
    }
}

impl Drop for TestLlama {
    fn drop(&mut self) {
        process::signal_and_wait(&mut self.child, Signal::KILL, Duration::from_secs(5));
    }
}

/// A raw HTTP/1.1 exchange (the kit has no async runtime of its own here): the status code, if any.
fn http_status(port: u16, request: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn rand_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()).unwrap_or_default();
    bytes
}
