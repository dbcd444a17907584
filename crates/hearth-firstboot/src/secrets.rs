//! The per-instance secrets: what each one is, how it is generated and how an existing one is judged.
//! Adding a secret is one entry in [`SECRETS`].

use std::fmt;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// When a secret is needed at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Always,
    /// Only when hearth reaches PostgreSQL over TCP; the default local socket uses peer auth and no password.
    PostgresOverTcp,
}

/// How a secret is encoded in its file. Files never carry a trailing newline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// URL-safe base64 without padding of `bytes` random bytes (longer values are accepted).
    UrlSafe { bytes: usize },
    /// `prefix` followed by exactly `bytes` random bytes as lower-case hex.
    Hex { prefix: &'static str, bytes: usize },
    /// Exactly `bytes` raw random bytes.
    Raw { bytes: usize },
    /// `groups` groups of 4 characters of Crockford's base32 (no I, L, O, U), joined by dashes: a code a person
    /// reads off a screen and types. 5 random bits a character.
    Code { groups: usize },
}

/// Crockford's base32: digits and letters that cannot be misread as each other.
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

#[derive(Debug)]
pub struct SecretSpec {
    /// The file name, and the credential name services load it under.
    pub name: &'static str,
    pub format: Format,
    pub need: Need,
    pub purpose: &'static str,
}

pub const SECRETS: &[SecretSpec] = &[
    SecretSpec {
        name: "api-token",
        format: Format::UrlSafe { bytes: 32 },
        need: Need::Always,
        purpose: "bearer token for LAN clients of hearthd",
    },
    SecretSpec {
        name: "encryption-key",
        format: Format::Raw { bytes: 32 },
        need: Need::Always,
        purpose: "encrypts stored reasoning-provider keys",
    },
    SecretSpec {
        name: "garage-rpc-secret",
        // Garage requires exactly 32 bytes, hex-encoded.
        format: Format::Hex {
            prefix: "",
            bytes: 32,
        },
        need: Need::Always,
        purpose: "Garage cluster RPC secret",
    },
    SecretSpec {
        name: "garage-admin-token",
        format: Format::UrlSafe { bytes: 32 },
        need: Need::Always,
        purpose: "Garage admin API token",
    },
    SecretSpec {
        name: "garage-metrics-token",
        format: Format::UrlSafe { bytes: 32 },
        need: Need::Always,
        purpose: "Garage metrics endpoint token",
    },
    SecretSpec {
        name: "s3-access-key-id",
        // Garage's key id format: "GK" and 12 bytes of hex.
        format: Format::Hex {
            prefix: "GK",
            bytes: 12,
        },
        need: Need::Always,
        purpose: "S3 access key id of hearth's bucket",
    },
    SecretSpec {
        name: "s3-secret-key",
        format: Format::Hex {
            prefix: "",
            bytes: 32,
        },
        need: Need::Always,
        purpose: "S3 secret key of hearth's bucket",
    },
    SecretSpec {
        name: "setup-code",
        // 80 bits; hearthd limits wrong sign-ins to 10 a minute.
        format: Format::Code { groups: 4 },
        need: Need::Always,
        purpose: "signs a browser in to the web UI; shown on the console",
    },
    SecretSpec {
        name: "postgres-password",
        format: Format::UrlSafe { bytes: 32 },
        need: Need::PostgresOverTcp,
        purpose: "hearth's PostgreSQL password (TCP only)",
    },
];

/// Values that mean "somebody forgot to fill this in". Compared case-insensitively after trimming whitespace.
const PLACEHOLDERS: &[&str] = &[
    "changeme",
    "change-me",
    "change_me",
    "password",
    "secret",
    "token",
    "admin",
    "test",
    "example",
    "placeholder",
    "replaceme",
    "replace-me",
    "todo",
    "xxx",
    "none",
    "null",
];

pub fn spec(name: &str) -> Option<&'static SecretSpec> {
    SECRETS.iter().find(|spec| spec.name == name)
}

/// The secrets this instance needs.
pub fn needed(postgres_over_tcp: bool) -> impl Iterator<Item = &'static SecretSpec> {
    SECRETS
        .iter()
        .filter(move |spec| spec.need == Need::Always || postgres_over_tcp)
}

/// Secret bytes: wiped from memory on drop, redacted in `Debug`.
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The first 6 hex digits of the sha256: enough to tell secrets apart in logs, useless for guessing one.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.expose());
        hex::encode(&digest[..3])
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(redacted, fp={})", self.fingerprint())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read random bytes from the kernel: {0}")]
pub struct RandomError(#[from] std::io::Error);

pub(crate) fn random_bytes(len: usize) -> Result<Zeroizing<Vec<u8>>, RandomError> {
    let mut buf = Zeroizing::new(vec![0u8; len]);
    let mut filled = 0;
    while filled < len {
        filled += rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty())
            .map_err(std::io::Error::from)?;
    }
    Ok(buf)
}

impl SecretSpec {
    pub fn generate(&self) -> Result<Secret, RandomError> {
        let encoded = match self.format {
            Format::UrlSafe { bytes } => base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(random_bytes(bytes)?.as_slice())
                .into_bytes(),
            Format::Hex { prefix, bytes } => {
                format!("{prefix}{}", hex::encode(random_bytes(bytes)?.as_slice())).into_bytes()
            }
            Format::Raw { bytes } => random_bytes(bytes)?.to_vec(),
            Format::Code { groups } => {
                // 256 is a multiple of 32, so the low 5 bits of a random byte are uniform.
                let characters: Vec<u8> = random_bytes(groups * 4)?
                    .iter()
                    .map(|byte| CODE_ALPHABET[usize::from(byte & 31)])
                    .collect();
                characters.chunks(4).collect::<Vec<_>>().join(&b'-')
            }
        };
        Ok(Secret::new(encoded))
    }

    /// Why an existing value is unusable, or `None` when it is fine. Never includes the value itself.
    pub fn problem(&self, value: &[u8]) -> Option<String> {
        if value.is_empty() {
            return Some("is empty".into());
        }
        if value.iter().all(|b| *b == value[0]) {
            return Some("is one character repeated (a placeholder)".into());
        }
        if let Ok(text) = std::str::from_utf8(value) {
            let trimmed = text.trim().to_ascii_lowercase();
            if PLACEHOLDERS.contains(&trimmed.as_str()) {
                return Some("is a known placeholder value".into());
            }
        }
        match self.format {
            Format::Code { groups } => {
                let characters: Vec<u8> = value.iter().copied().filter(|b| *b != b'-').collect();
                if value.ends_with(b"\n") {
                    Some("ends with a newline; write it without one (printf, not echo)".into())
                } else if !characters.iter().all(|b| CODE_ALPHABET.contains(b)) {
                    Some(
                        "must be upper-case Crockford base32 (0-9, A-Z without I, L, O, U) and dashes".into(),
                    )
                } else if characters.len() != groups * 4 {
                    Some(format!(
                        "must have {} characters besides dashes, found {}",
                        groups * 4,
                        characters.len()
                    ))
                } else {
                    None
                }
            }
            Format::Raw { bytes } => (value.len() != bytes)
                .then(|| format!("must be exactly {bytes} raw bytes, found {}", value.len())),
            Format::UrlSafe { bytes } => {
                let min = (bytes * 4).div_ceil(3);
                if value.ends_with(b"\n") {
                    Some("ends with a newline; write it without one (printf, not echo)".into())
                } else if !value
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
                {
                    Some("must be URL-safe base64 (A-Z a-z 0-9 - _)".into())
                } else if value.len() < min {
                    Some(format!(
                        "is too short: {} characters, at least {min} needed",
                        value.len()
                    ))
                } else {
                    None
                }
            }
            Format::Hex { prefix, bytes } => {
                let expected = prefix.len() + 2 * bytes;
                if value.ends_with(b"\n") {
                    Some("ends with a newline; write it without one (printf, not echo)".into())
                } else if !value.starts_with(prefix.as_bytes())
                    || !value[prefix.len()..].iter().all(u8::is_ascii_hexdigit)
                {
                    Some(format!("must be '{prefix}' followed by hex digits"))
                } else if value.len() != expected {
                    Some(format!(
                        "must be {expected} characters ({prefix}{} hex digits), found {}",
                        2 * bytes,
                        value.len()
                    ))
                } else {
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_secret_passes_its_own_check_and_differs_between_runs() {
        for spec in SECRETS {
            let a = spec.generate().expect("random");
            let b = spec.generate().expect("random");
            assert_eq!(spec.problem(a.expose()), None, "{}", spec.name);
            assert_ne!(a.expose(), b.expose(), "{}", spec.name);
        }
    }

    #[test]
    fn names_are_unique_and_safe_as_file_and_credential_names() {
        let mut names: Vec<_> = SECRETS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SECRETS.len());
        for name in names {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{name}"
            );
        }
    }

    #[test]
    fn bad_values_are_named_without_echoing_them() {
        let token = spec("api-token").expect("known");
        assert!(token.problem(b"").expect("empty").contains("empty"));
        assert!(
            token
                .problem(b"CHANGEME\n")
                .expect("placeholder")
                .contains("placeholder")
        );
        assert!(
            token
                .problem(b"short-but-valid")
                .expect("short")
                .contains("too short")
        );
        let key_id = spec("s3-access-key-id").expect("known");
        assert!(key_id.problem(b"AK0123456789abcdef01234567").is_some());
        assert_eq!(key_id.problem(b"GK0123456789abcdef01234567"), None);
        let raw = spec("encryption-key").expect("known");
        assert!(raw.problem(&[7u8; 31]).is_some());
        assert!(raw.problem(&[0u8; 32]).expect("zeros").contains("repeated"));
    }

    #[test]
    fn debug_never_shows_the_bytes() {
        let secret = Secret::new(b"hunter2-hunter2-hunter2".to_vec());
        let shown = format!("{secret:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains(&secret.fingerprint()));
    }
}
