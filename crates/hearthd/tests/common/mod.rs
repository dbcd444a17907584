//! Helpers shared by hearthd's integration tests.
// Each test binary compiles this module and uses a different subset of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use hearth_testkit::TestHearthd;

/// Waits until `/readyz` answers 200 (schema migrated, model loaded).
pub async fn ready(hearthd: &TestHearthd) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reqwest::get(format!("{}/readyz", hearthd.url))
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "never ready:\n{}", hearthd.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The database name in one of the kit's PostgreSQL URLs, for `TestPostgres::psql`.
pub fn database_name(url: &str) -> String {
    let path = url.split('?').next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or(path).to_owned()
}
