//! How hearthd reaches PostgreSQL: `database.url`, and, for a server that wants one, a password read from a file
//! (`database.password_file`, or the `postgres-password` systemd credential that `hearth-firstboot mint
//! --postgres-over-tcp` mints), so that no password has to sit in a configuration file.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

use crate::config::DatabaseConfig;

/// The credential name hearthd picks up from `$CREDENTIALS_DIRECTORY`.
pub const PASSWORD_CREDENTIAL: &str = "postgres-password";

#[derive(Debug, thiserror::Error)]
pub enum DatabaseConfigError {
    #[error("database.url is not a valid PostgreSQL URL: {0}")]
    Url(String),
    #[error("cannot read the database password from {path}: {source}")]
    Password {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the database password file {0} is empty")]
    EmptyPassword(PathBuf),
}

/// A pool of at most `max_connections` that connects on first use: hearthd starts while PostgreSQL is still
/// coming up, and `/readyz` says what it waits for.
pub fn lazy_pool(
    config: &DatabaseConfig,
    credentials_dir: Option<&Path>,
    max_connections: u32,
) -> Result<sqlx::PgPool, DatabaseConfigError> {
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(3))
        .connect_lazy_with(connect_options(config, credentials_dir)?))
}

/// `database.url` with the password from `database.password_file`, else from the `postgres-password`
/// credential when systemd passed one, else whatever the URL says.
pub fn connect_options(
    config: &DatabaseConfig,
    credentials_dir: Option<&Path>,
) -> Result<PgConnectOptions, DatabaseConfigError> {
    let options = PgConnectOptions::from_str(&config.url)
        .map_err(|error| DatabaseConfigError::Url(crate::config::redact_url_password(&error.to_string())))?;
    let options = options.application_name(APPLICATION_NAME);
    Ok(match password(config, credentials_dir)? {
        Some(password) => options.password(&password),
        None => options,
    })
}

/// The name hearthd gives its sessions (`application_name`), so that a restore can tell it is still connected.
pub const APPLICATION_NAME: &str = "hearthd";

/// The same connection for PostgreSQL's own tools (pg_dump, pg_restore, psql), as libpq environment variables:
/// the password travels in `PGPASSWORD`, never on a command line another user could read.
pub fn libpq_env(
    config: &DatabaseConfig,
    credentials_dir: Option<&Path>,
) -> Result<Vec<(&'static str, String)>, DatabaseConfigError> {
    let options = connect_options(config, credentials_dir)?;
    let host = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => options.get_host().to_owned(),
    };
    let mut env = vec![
        ("PGHOST", host),
        ("PGPORT", options.get_port().to_string()),
        ("PGUSER", options.get_username().to_owned()),
        ("PGAPPNAME", "hearth-backup".to_owned()),
        (
            "PGSSLMODE",
            format!("{:?}", options.get_ssl_mode())
                .to_lowercase()
                .replace("verify", "verify-"),
        ),
    ];
    if let Some(database) = options.get_database() {
        env.push(("PGDATABASE", database.to_owned()));
    }
    let from_url = reqwest::Url::parse(&config.url).ok().and_then(|url| {
        let password = url.password()?;
        Some(percent_decoded(password))
    });
    if let Some(password) = password(config, credentials_dir)?.or(from_url) {
        env.push(("PGPASSWORD", password));
    }
    Ok(env)
}

fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The password from a file, if one is configured or passed; `None` leaves the URL's.
fn password(
    config: &DatabaseConfig,
    credentials_dir: Option<&Path>,
) -> Result<Option<String>, DatabaseConfigError> {
    let file = config.password_file.clone().or_else(|| {
        credentials_dir
            .map(|dir| dir.join(PASSWORD_CREDENTIAL))
            .filter(|path| path.is_file())
    });
    let Some(path) = file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| DatabaseConfigError::Password {
        path: path.clone(),
        source,
    })?;
    let password = text.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(DatabaseConfigError::EmptyPassword(path));
    }
    Ok(Some(password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, password_file: Option<PathBuf>) -> DatabaseConfig {
        DatabaseConfig {
            url: url.to_owned(),
            password_file,
        }
    }

    #[test]
    fn a_password_file_wins_over_the_credential_and_the_url() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-the-file\n").expect("write");
        std::fs::write(dir.path().join(PASSWORD_CREDENTIAL), "from-the-credential").expect("write");
        let url = "postgres://hearth:in-url@db/hearth";
        let chosen = password(&config(url, Some(file)), Some(dir.path())).expect("password");
        assert_eq!(chosen.as_deref(), Some("from-the-file"));
        let chosen = password(&config(url, None), Some(dir.path())).expect("password");
        assert_eq!(chosen.as_deref(), Some("from-the-credential"));
        assert_eq!(
            password(&config(url, None), None).expect("password"),
            None,
            "the URL's own stays"
        );
        connect_options(&config(url, None), Some(dir.path())).expect("a valid URL with a password file");
    }

    #[test]
    fn a_missing_or_empty_password_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing");
        let error =
            password(&config("postgres://db/hearth", Some(missing.clone())), None).expect_err("missing file");
        assert!(
            error.to_string().contains(&missing.display().to_string()),
            "{error}"
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").expect("write");
        let error = password(&config("postgres://db/hearth", Some(empty)), None).expect_err("empty");
        assert!(error.to_string().contains("is empty"), "{error}");
    }
}
