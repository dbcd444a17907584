//! Browser sessions of the web UI. A session is a random secret in an HttpOnly cookie and a row keyed by the
//! secret's sha256; signing in is checked by hearthd against the api-token or the setup code, never here.

use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::{Library, LibraryError};
use crate::store::sessions;
pub use crate::store::sessions::SessionRow;

/// Longest cookie value accepted: a minted one is 43 characters; anything far longer is not ours.
const MAX_SECRET_CHARS: usize = 128;

/// A session just created: the cookie's value (shown to nobody but the browser) and its row.
#[derive(Debug)]
pub struct NewSession {
    pub secret: String,
    pub session: SessionRow,
}

impl Library {
    /// Creates a session for a browser that proved it holds the secret whose fingerprint is `created_by`.
    pub async fn create_session(
        &self,
        created_by: &str,
        user_agent: &str,
        lifetime: Duration,
    ) -> Result<NewSession, LibraryError> {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes)?;
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let user_agent: String = user_agent.chars().filter(|c| !c.is_control()).take(200).collect();
        let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        let session = sessions::insert(
            self.pool()?,
            Uuid::now_v7(),
            &Sha256::digest(secret.as_bytes()),
            created_by,
            &user_agent,
            lifetime,
        )
        .await?;
        Ok(NewSession { secret, session })
    }

    /// The live session a cookie's value belongs to, if any.
    pub async fn session(&self, secret: &str) -> Result<Option<SessionRow>, LibraryError> {
        if secret.is_empty() || secret.len() > MAX_SECRET_CHARS {
            return Ok(None);
        }
        Ok(sessions::touch(self.pool()?, &Sha256::digest(secret.as_bytes())).await?)
    }

    /// Live sessions, most recently seen first; expired ones are removed on the way.
    pub async fn sessions(&self) -> Result<Vec<SessionRow>, LibraryError> {
        let pool = self.pool()?;
        sessions::delete_expired(pool).await?;
        Ok(sessions::list(pool).await?)
    }

    /// Ends a session (sign-out, or revoking it from Settings); whether it existed.
    pub async fn end_session(&self, id: Uuid) -> Result<bool, LibraryError> {
        Ok(sessions::delete(self.pool()?, id).await?)
    }

    /// The document's chunks in order, for its page.
    pub async fn chunks(&self, id: Uuid) -> Result<Vec<crate::store::chunks::StoredChunk>, LibraryError> {
        Ok(crate::store::chunks::of_document(self.pool()?, id).await?)
    }

    /// Bytes used by the database and by the originals.
    pub async fn disk_usage(&self) -> Result<(i64, i64), LibraryError> {
        Ok(crate::store::disk_usage(self.pool()?).await?)
    }
}

fn fill_random(buf: &mut [u8]) -> Result<(), LibraryError> {
    let mut filled = 0;
    while filled < buf.len() {
        filled += rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty())
            .map_err(|e| LibraryError::Internal(format!("reading random bytes: {e}")))?;
    }
    Ok(())
}
