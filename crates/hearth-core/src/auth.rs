//! Bearer tokens for LAN clients. Tokens are read from files (a systemd credential or `auth.token_files`) and only
//! their sha256 is kept: a presented token is hashed and compared in constant time, and the first 6 hex digits of
//! that hash are the identity that logs carry.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

/// The credential name hearthd picks up from `$CREDENTIALS_DIRECTORY` (what hearth-firstboot mints).
pub const TOKEN_CREDENTIAL: &str = "api-token";

/// A second bearer token from `$CREDENTIALS_DIRECTORY`: the one a fleet's boxes share, so the workstation accepts the
/// Pis that embed on it (`hearth-firstboot fleet-secrets` mints it once for the whole fleet). It opens only
/// [`FLEET_ROUTES`]: every box holds it, and it crosses the LAN.
pub const FLEET_TOKEN_CREDENTIAL: &str = "fleet-token";

/// What the fleet token may call: embedding and what a box checks before it sends any.
pub const FLEET_ROUTES: &[&str] = &[
    "/v1/embeddings",
    "/v1/capabilities",
    "/v1/models",
    "/readyz",
    "/healthz",
];

/// Shortest token accepted: 32 random bytes in URL-safe base64 are 43 characters, so anything much shorter was not
/// minted and is guessable.
pub const MIN_TOKEN_CHARS: usize = 32;

/// The credential name of the web UI's setup code (what hearth-firstboot mints and the console shows).
pub const SETUP_CODE_CREDENTIAL: &str = "setup-code";

/// Shortest setup code accepted, counting letters and digits only: 12 base32 characters are 60 bits, which the
/// sign-in rate limit makes unguessable.
pub const MIN_SETUP_CODE_CHARS: usize = 12;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Files each holding one bearer token. `$CREDENTIALS_DIRECTORY/api-token` is added when it exists.
    pub token_files: Vec<PathBuf>,
    /// Routes reachable without a token from any address.
    pub open_routes: Vec<String>,
    /// Requests from a loopback address need no token (the box's own CLI and health checks). Never for a
    /// request a browser makes (it carries `Origin` or `Sec-Fetch-Site`): a page must sign in.
    pub trust_loopback: bool,
    /// A file holding the setup code that signs a browser in to the web UI, besides the api-token.
    /// `$CREDENTIALS_DIRECTORY/setup-code` is used when it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_code_file: Option<PathBuf>,
    /// How long a browser stays signed in to the web UI, in hours.
    #[serde(default = "default_session_hours")]
    pub session_hours: u64,
}

fn default_session_hours() -> u64 {
    7 * 24
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            token_files: Vec::new(),
            open_routes: vec!["/healthz".into()],
            trust_loopback: true,
            setup_code_file: None,
            session_hours: default_session_hours(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("token file {path}: {problem}")]
    TokenFile { path: PathBuf, problem: String },
    #[error(
        "refusing to listen on {listen} without a bearer token: anyone on the network could use this hearthd. \
         Give it a token (auth.token_files = [\"/path/to/api-token\"], or the `api-token` systemd credential that \
         hearth-firstboot mints), or listen on loopback (listen = \"127.0.0.1:8080\")"
    )]
    OpenToTheNetwork { listen: std::net::SocketAddr },
}

/// Loopback is always allowed; anything else only with at least one bearer token to protect it.
pub fn check_bind_policy(addresses: &[std::net::SocketAddr], tokens: &Tokens) -> Result<(), AuthError> {
    match addresses.iter().find(|address| !address.ip().is_loopback()) {
        Some(&listen) if tokens.is_empty() => Err(AuthError::OpenToTheNetwork { listen }),
        _ => Ok(()),
    }
}

/// Who made a request, as logs show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Localhost,
    /// The first 6 hex digits of the token's sha256.
    Token(String),
    /// An open route reached from elsewhere without a token.
    Anonymous,
    /// A browser signed in to the web UI: the last 8 hex digits of its session's id, and what signed it in
    /// (`token:<fingerprint>` or `setup-code:<fingerprint>`).
    Session {
        session: String,
        created_by: String,
    },
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Localhost => f.write_str("localhost"),
            Identity::Token(fingerprint) => write!(f, "token:{fingerprint}"),
            Identity::Anonymous => f.write_str("anonymous"),
            Identity::Session { session, created_by } => write!(f, "session:{session}/{created_by}"),
        }
    }
}

#[derive(Clone, Default)]
pub struct Tokens {
    digests: Vec<[u8; 32]>,
    sources: Vec<PathBuf>,
    /// The sha256 of the normalised setup code, when one is configured.
    setup_code: Option<[u8; 32]>,
    /// The sha256 of the fleet token, which opens only [`FLEET_ROUTES`].
    fleet: Option<[u8; 32]>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("fingerprints", &self.fingerprints())
            .field("sources", &self.sources)
            .field("setup_code", &self.setup_code.map(|d| hex::encode(&d[..3])))
            .field("fleet", &self.fleet.map(|d| hex::encode(&d[..3])))
            .finish()
    }
}

impl Tokens {
    /// Reads every configured token file, plus the `api-token` and `fleet-token` credentials when systemd passed
    /// them.
    pub fn load(config: &AuthConfig, credentials_dir: Option<&Path>) -> Result<Self, AuthError> {
        let credential = |name: &str| {
            credentials_dir
                .map(|dir| dir.join(name))
                .filter(|path| path.exists())
        };
        let mut tokens = Tokens::default();
        let configured = config
            .token_files
            .iter()
            .map(|path| (path.clone(), Source::TokenFile));
        let api_token = credential(TOKEN_CREDENTIAL).map(|path| (path, Source::Credential));
        for (path, source) in configured.chain(api_token) {
            let digest = read_token_digest(&path, source)?;
            if !tokens.digests.contains(&digest) {
                tokens.digests.push(digest);
                tokens.sources.push(path);
            }
        }
        if let Some(path) = credential(FLEET_TOKEN_CREDENTIAL) {
            tokens.fleet = Some(read_token_digest(&path, Source::Credential)?);
        }
        let setup_credential = credential(SETUP_CODE_CREDENTIAL).map(|path| (path, Source::Credential));
        let setup_file = config
            .setup_code_file
            .clone()
            .map(|path| (path, Source::TokenFile));
        if let Some((path, source)) = setup_file.or(setup_credential) {
            tokens.setup_code = Some(read_setup_code_digest(&path, source)?);
        }
        Ok(tokens)
    }

    /// The fingerprint of the setup code, when it matches the configured one (compared in constant time).
    /// Dashes, spaces and letter case do not matter: people type it off a screen.
    pub fn verify_setup_code(&self, presented: &str) -> Option<String> {
        let known = self.setup_code?;
        let digest: [u8; 32] = Sha256::digest(normalize_setup_code(presented).as_bytes()).into();
        bool::from(known.ct_eq(&digest)).then(|| hex::encode(&digest[..3]))
    }

    pub fn has_setup_code(&self) -> bool {
        self.setup_code.is_some()
    }

    /// Whether a session's `created_by` (`token:<fp>` or `setup-code:<fp>`) names a secret that still opens this
    /// hearth: a session signed in with a token or code since replaced ends with it.
    pub fn still_valid(&self, created_by: &str) -> bool {
        match created_by.split_once(':') {
            Some(("token", fingerprint)) => self.fingerprints().iter().any(|known| known == fingerprint),
            Some(("setup-code", fingerprint)) => self
                .setup_code
                .is_some_and(|digest| hex::encode(&digest[..3]) == fingerprint),
            _ => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    pub fn sources(&self) -> &[PathBuf] {
        &self.sources
    }

    pub fn fingerprints(&self) -> Vec<String> {
        self.digests.iter().map(|d| hex::encode(&d[..3])).collect()
    }

    /// The identity of a presented token, or `None` when it matches no configured token. Every configured token is
    /// compared, each in constant time, so timing tells nothing about which or how much matched.
    pub fn verify(&self, presented: &[u8]) -> Option<Identity> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let mut matched = subtle::Choice::from(0);
        for known in &self.digests {
            matched |= known.ct_eq(&digest);
        }
        bool::from(matched).then(|| Identity::Token(hex::encode(&digest[..3])))
    }

    /// The identity of a presented fleet token (compared in constant time); the caller allows it only on
    /// [`FLEET_ROUTES`].
    pub fn verify_fleet(&self, presented: &[u8]) -> Option<Identity> {
        let known = self.fleet?;
        let digest: [u8; 32] = Sha256::digest(presented).into();
        bool::from(known.ct_eq(&digest))
            .then(|| Identity::Token(format!("fleet-{}", hex::encode(&digest[..3]))))
    }

    /// The fleet token's fingerprint, when one is loaded.
    pub fn fleet_fingerprint(&self) -> Option<String> {
        self.fleet.map(|digest| hex::encode(&digest[..3]))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// A file named in `auth.token_files`: 0400 or 0600, nothing for group or others.
    TokenFile,
    /// systemd's copy in `$CREDENTIALS_DIRECTORY`. For a service with `User=`, systemd grants that user read
    /// access through an ACL, which shows as group read in the mode (0440); the directory is private to the unit.
    /// Write access or anything for others is still refused.
    Credential,
}

/// A setup code as typed: letters and digits only, upper case.
pub fn normalize_setup_code(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn read_setup_code_digest(path: &Path, source: Source) -> Result<[u8; 32], AuthError> {
    let bytes = read_secret_file(path, source)?;
    let code = normalize_setup_code(&String::from_utf8_lossy(&bytes));
    if code.len() < MIN_SETUP_CODE_CHARS {
        return Err(AuthError::TokenFile {
            path: path.to_owned(),
            problem: format!(
                "holds a setup code of {} letters and digits; at least {MIN_SETUP_CODE_CHARS} are required \
                 (`hearth-firstboot mint` writes 16)",
                code.len()
            ),
        });
    }
    Ok(Sha256::digest(code.as_bytes()).into())
}

/// A secret file's bytes, refused when group or others may read or write it (see [`Source`]).
pub(crate) fn read_secret_file(
    path: &Path,
    source: Source,
) -> Result<zeroize::Zeroizing<Vec<u8>>, AuthError> {
    let problem = |problem: String| AuthError::TokenFile {
        path: path.to_owned(),
        problem,
    };
    let mut file = File::open(path).map_err(|e| problem(format!("cannot open: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| problem(format!("cannot inspect: {e}")))?;
    if !meta.is_file() {
        return Err(problem("is not a regular file".into()));
    }
    let forbidden = match source {
        Source::TokenFile => 0o077,
        Source::Credential => 0o037,
    };
    if meta.mode() & forbidden != 0 {
        return Err(problem(format!(
            "is readable or writable by group/others (mode {:04o}); `chmod 0400` it",
            meta.mode() & 0o7777
        )));
    }
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    file.read_to_end(&mut bytes)
        .map_err(|e| problem(format!("cannot read: {e}")))?;
    Ok(bytes)
}

fn read_token_digest(path: &Path, source: Source) -> Result<[u8; 32], AuthError> {
    let token = read_token(path, source)?;
    Ok(Sha256::digest(token.as_bytes()).into())
}

/// A token file's token (one line of printable ASCII, long enough to have been minted).
pub(crate) fn read_token(path: &Path, source: Source) -> Result<zeroize::Zeroizing<String>, AuthError> {
    let problem = |problem: String| AuthError::TokenFile {
        path: path.to_owned(),
        problem,
    };
    let bytes = read_secret_file(path, source)?;
    let token = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    if token.len() < MIN_TOKEN_CHARS {
        return Err(problem(format!(
            "holds a token of {} characters; at least {MIN_TOKEN_CHARS} are required (`hearth-firstboot mint` \
             writes 43)",
            token.len()
        )));
    }
    if !token.iter().all(u8::is_ascii_graphic) {
        return Err(problem(
            "holds spaces or control characters; a token is printable ASCII on one line".into(),
        ));
    }
    // Printable ASCII is UTF-8.
    Ok(zeroize::Zeroizing::new(
        String::from_utf8_lossy(token).into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn token_file(dir: &Path, name: &str, content: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    #[test]
    fn a_credential_may_be_group_readable_as_systemds_acl_shows_it_but_a_token_file_may_not() {
        let credentials = tempfile::tempdir().expect("tempdir");
        token_file(credentials.path(), TOKEN_CREDENTIAL, &"t".repeat(43), 0o440);
        let tokens = Tokens::load(&AuthConfig::default(), Some(credentials.path())).expect("0440 credential");
        assert_eq!(tokens.sources().len(), 1);

        token_file(credentials.path(), TOKEN_CREDENTIAL, &"t".repeat(43), 0o460);
        let error =
            Tokens::load(&AuthConfig::default(), Some(credentials.path())).expect_err("group-writable");
        assert!(error.to_string().contains("mode 0460"), "{error}");

        let dir = tempfile::tempdir().expect("tempdir");
        let config = AuthConfig {
            token_files: vec![token_file(dir.path(), "token", &"t".repeat(43), 0o440)],
            ..AuthConfig::default()
        };
        let error = Tokens::load(&config, None).expect_err("group-readable token file");
        assert!(error.to_string().contains("mode 0440"), "{error}");
    }

    #[test]
    fn configured_and_credential_tokens_verify_and_others_do_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = "a".repeat(20) + &"b".repeat(23);
        let b = "c".repeat(40) + "-_x";
        let config = AuthConfig {
            token_files: vec![token_file(dir.path(), "a", &format!("{a}\n"), 0o400)],
            ..AuthConfig::default()
        };
        let credentials = tempfile::tempdir().expect("tempdir");
        token_file(credentials.path(), TOKEN_CREDENTIAL, &b, 0o400);
        let tokens = Tokens::load(&config, Some(credentials.path())).expect("load");
        assert_eq!(tokens.sources().len(), 2);
        let expected = crate::digest::fingerprint(a.as_bytes());
        assert_eq!(tokens.verify(a.as_bytes()), Some(Identity::Token(expected)));
        assert!(tokens.verify(b.as_bytes()).is_some());
        assert_eq!(tokens.verify(format!("{a}x").as_bytes()), None);
        assert_eq!(tokens.verify(b""), None);
        assert!(!format!("{tokens:?}").contains(&a));
    }

    #[test]
    fn the_setup_code_verifies_as_typed_off_a_screen_and_a_short_one_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = AuthConfig {
            setup_code_file: Some(token_file(dir.path(), "code", "K7QM-4XWD-9RTB-HN2P\n", 0o400)),
            ..AuthConfig::default()
        };
        let tokens = Tokens::load(&config, None).expect("load");
        assert!(tokens.has_setup_code());
        let fingerprint = tokens
            .verify_setup_code("k7qm 4xwd 9rtb hn2p")
            .expect("typed loosely");
        assert_eq!(
            tokens.verify_setup_code("K7QM4XWD9RTBHN2P"),
            Some(fingerprint.clone())
        );
        assert_eq!(tokens.verify_setup_code("K7QM-4XWD-9RTB-HN2Q"), None);
        assert!(tokens.still_valid(&format!("setup-code:{fingerprint}")));
        assert!(!tokens.still_valid("setup-code:000000"));
        assert!(!tokens.still_valid(&format!("token:{fingerprint}")));
        assert_eq!(tokens.verify_setup_code(""), None);
        assert!(
            Tokens::default()
                .verify_setup_code("K7QM-4XWD-9RTB-HN2P")
                .is_none()
        );
        assert!(!format!("{tokens:?}").contains("K7QM"));
        let short = AuthConfig {
            setup_code_file: Some(token_file(dir.path(), "short", "AB-CD", 0o400)),
            ..AuthConfig::default()
        };
        let error = Tokens::load(&short, None).expect_err("too short").to_string();
        assert!(error.contains("at least 12"), "{error}");
    }

    #[test]
    fn weak_or_exposed_token_files_are_refused_by_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (content, mode, expected) in [
            ("x".repeat(43), 0o644, "group/others"),
            ("short".to_owned(), 0o400, "at least 32"),
            (format!("{} {}", "x".repeat(20), "y".repeat(20)), 0o400, "spaces"),
        ] {
            let path = token_file(dir.path(), "t", &content, mode);
            let config = AuthConfig {
                token_files: vec![path.clone()],
                ..AuthConfig::default()
            };
            let error = Tokens::load(&config, None).expect_err("refused").to_string();
            assert!(error.contains(expected), "{error}");
            assert!(error.contains(&path.display().to_string()), "{error}");
            std::fs::remove_file(&path).expect("remove");
        }
    }
}
