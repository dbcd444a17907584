//! Starts a private PostgreSQL + pgvector and Garage for hacking by hand, prints where they are, and holds them
//! until stdin closes or Ctrl-C. The S3 secret goes to a 0600 file, never to the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::process::ExitCode;

use hearth_testkit::{TestGarage, TestPostgres};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hearth-dev-services: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let postgres = TestPostgres::start()?;
    let database_url = postgres.create_database()?;
    let garage = TestGarage::start()?;

    let secrets_dir = tempfile::Builder::new().prefix("hearth-dev-").tempdir()?;
    let secrets_path = secrets_dir.path().join("s3.env");
    let mut secrets = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secrets_path)?;
    writeln!(secrets, "AWS_ACCESS_KEY_ID={}", garage.access_key_id)?;
    writeln!(secrets, "AWS_SECRET_ACCESS_KEY={}", garage.secret_access_key)?;

    println!("database_url={database_url}");
    println!("s3_endpoint={}", garage.s3_endpoint);
    println!("s3_bucket={}", garage.bucket);
    println!("s3_region={}", garage.region);
    println!("s3_credentials_file={}", secrets_path.display());
    println!("postgres_pid={}", postgres.server_pid().unwrap_or_default());
    println!("garage_pid={}", garage.pid());
    // Removed on a clean exit; whoever kills this process uncleanly removes them (the kit's own test does).
    for dir in [postgres.socket_dir(), garage.dir(), secrets_dir.path()] {
        println!("temporary_dir={}", dir.display());
    }
    println!("ready: close stdin (Ctrl-D) to stop");
    std::io::stdout().flush()?;

    // Holds until stdin reaches EOF; Ctrl-C ends the process, and the servers die with it.
    for line in std::io::stdin().lock().lines() {
        line?;
    }
    Ok(())
}
