//! The real hearthd binary against the kit's real PostgreSQL, over real HTTP.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_testkit::TestPostgres;

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("ephemeral port")
        .port()
}

fn spawn(listen: &str, database_url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hearthd"))
        .args(["serve", "--listen", listen, "--database-url", database_url])
        .env("HEARTH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hearthd starts")
}

async fn get_when_up(url: &str) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match reqwest::get(url).await {
            Ok(response) => return response,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("hearthd never answered {url}: {error}"),
        }
    }
}

#[tokio::test]
async fn readyz_reports_pgvector_and_503_when_the_database_is_down() {
    let mut postgres = TestPostgres::start().expect("postgres");
    let database_url = postgres.create_database().expect("database");
    let port = free_port();
    let _daemon = Daemon(spawn(&format!("127.0.0.1:{port}"), &database_url));

    let health = get_when_up(&format!("http://127.0.0.1:{port}/healthz")).await;
    assert_eq!(health.status(), 200);

    let ready = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    assert!(
        body["pgvector"].as_str().is_some_and(|v| v.starts_with("0.")),
        "{body}"
    );

    postgres.stop().expect("stop postgres");
    let down = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(down.status(), 503);
    let body: serde_json::Value = down.json().await.expect("json");
    assert_eq!(body["code"], "not_ready");
}

#[test]
fn refuses_a_non_loopback_bind() {
    let output = spawn("0.0.0.0:0", "postgres://nobody@localhost/none")
        .wait_with_output()
        .expect("hearthd exits");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to listen on 0.0.0.0"), "{stderr}");
}
