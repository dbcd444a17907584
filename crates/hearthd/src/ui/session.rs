//! Signing a browser in and out, and knowing, on each page, which session it is. The cookie holds a random
//! secret; the session row (keyed by the secret's sha256) says who signed it in and until when.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_api::ErrorCode;
use hearth_core::auth::Identity;
use hearth_core::library::{Library, SessionRow};
use serde::Deserialize;

use super::{UiError, UiState, html_page, layout, see_other};
use crate::auth::Auth;
use crate::error::ApiError;

/// The cookie naming a browser's session.
pub const SESSION_COOKIE: &str = "hearth_session";

/// A signed-in browser: the session its cookie names. Pages take it as an argument; without one the browser is
/// sent to sign in (and back to where it was going).
pub struct SignedIn {
    pub session: SessionRow,
}

impl FromRequestParts<UiState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &UiState) -> Result<Self, Response> {
        if changes_state(&parts.method) && !from_a_page(&parts.headers) {
            return Err(UiError(not_from_a_page()).into_response());
        }
        let found = match cookie(&parts.headers) {
            Some(secret) => live_session(&state.auth, &state.app.library, &secret)
                .await
                .map_err(|e| UiError::from(e).into_response())?,
            None => None,
        };
        match found {
            Some(session) => {
                if let Some(slot) = parts.extensions.get::<IdentitySlot>() {
                    *slot.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(identity(&session));
                }
                Ok(SignedIn { session })
            }
            None => {
                let next = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                let next = if parts.method == Method::GET { next } else { "/" };
                Err(see_other(&format!(
                    "/signin?next={}",
                    super::library::urlencode(next)
                )))
            }
        }
    }
}

/// Where a page's [`SignedIn`] leaves its identity for [`log_identity`] to hand to the request log, which reads it
/// from the response.
#[derive(Clone, Default)]
struct IdentitySlot(std::sync::Arc<Mutex<Option<Identity>>>);

pub async fn log_identity(mut request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let slot = IdentitySlot::default();
    request.extensions_mut().insert(slot.clone());
    let mut response = next.run(request).await;
    let identity = slot
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(identity) = identity {
        response.extensions_mut().insert(identity);
    }
    response
}

/// The identity a session's requests are logged under: the session and the secret that created it.
fn identity(session: &SessionRow) -> Identity {
    Identity::Session {
        // The random end of the id: its start is a timestamp, shared by sessions made in the same minute.
        session: session.id.simple().to_string()[24..].to_owned(),
        created_by: session.created_by.clone(),
    }
}

/// For the API: the identity of a request that carries a live session cookie and no bearer token. A state change
/// must come from one of hearth's pages: a browser's request carries `Origin` (which the browser guard has
/// already checked is this host) or `Sec-Fetch-Site: same-origin`.
pub async fn session_identity(
    auth: &Auth,
    library: &Library,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<Identity>, ApiError> {
    let Some(secret) = cookie(headers) else {
        return Ok(None);
    };
    let Some(session) = live_session(auth, library, &secret).await? else {
        return Ok(None);
    };
    if changes_state(method) && !from_a_page(headers) {
        return Err(not_from_a_page());
    }
    Ok(Some(identity(&session)))
}

/// The session a cookie names, if it exists, has not expired, and was signed in with a secret that still opens
/// this hearth; one whose token or setup code has since been replaced is ended here.
async fn live_session(auth: &Auth, library: &Library, secret: &str) -> Result<Option<SessionRow>, ApiError> {
    let Some(session) = library.session(secret).await? else {
        return Ok(None);
    };
    if auth.tokens.still_valid(&session.created_by) {
        return Ok(Some(session));
    }
    library.end_session(session.id).await?;
    tracing::info!(session = %identity(&session), "ended a session whose secret no longer opens this hearth");
    Ok(None)
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn from_a_page(headers: &HeaderMap) -> bool {
    let same_origin = headers
        .get("sec-fetch-site")
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"same-origin"));
    same_origin || headers.contains_key(header::ORIGIN)
}

fn not_from_a_page() -> ApiError {
    ApiError::Forbidden {
        code: ErrorCode::CrossSite,
        message:
            "a signed-in browser can change things only from hearth's own pages (the request carried no \
                  Origin): use the page's button, or call the API with a bearer token"
                .into(),
    }
}

/// The session cookie's value, if the request has one.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

#[derive(Debug, Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

pub async fn sign_in_page(Query(query): Query<SignInQuery>) -> Response {
    let notice = query.signed_out.is_some().then_some("You are signed out.");
    html_page(
        StatusCode::OK,
        layout::sign_in(safe_next(query.next.as_deref()), notice, None),
    )
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    secret: String,
    next: Option<String>,
}

/// Checks the secret against the api-token, then the setup code; on success creates the session and sets its
/// cookie. The token is never limited (256 bits cannot be guessed, and its owner must not be locked out by others'
/// wrong attempts); the setup code is checked only while fewer than 10 wrong secrets came in the last minute.
pub async fn sign_in(
    State(state): State<UiState>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    if !from_a_page(&headers) {
        return UiError(not_from_a_page()).into_response();
    }
    let secret = form.secret.trim();
    let created_by = match state.auth.tokens.verify(secret.as_bytes()) {
        Some(Identity::Token(fingerprint)) => format!("token:{fingerprint}"),
        _ => match check_setup_code(&state, secret) {
            Ok(fingerprint) => format!("setup-code:{fingerprint}"),
            Err((status, message)) => {
                return html_page(status, layout::sign_in(next, None, Some(&message)));
            }
        },
    };
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let lifetime = Duration::from_secs(state.auth.config.session_hours.saturating_mul(3600));
    let library = &state.app.library;
    // A browser signing in again leaves no older session of its own behind.
    if let Some(previous) = cookie(&headers)
        && let Ok(Some(session)) = library.session(&previous).await
    {
        let _ = library.end_session(session.id).await;
    }
    match library.create_session(&created_by, user_agent, lifetime).await {
        Ok(created) => {
            tracing::info!(session = %identity(&created.session), "a browser signed in");
            let cookie = format!(
                "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                created.secret,
                lifetime.as_secs()
            );
            with_cookie(see_other(next), &cookie)
        }
        Err(error) => UiError::from(error).into_response(),
    }
}

/// The setup code's fingerprint, or the status and words of the refusal (wrong, or too many wrong lately).
fn check_setup_code(state: &UiState, secret: &str) -> Result<String, (StatusCode, String)> {
    if let Err(wait) = state.sign_ins.check() {
        let message = format!(
            "Too many wrong attempts: wait {} seconds and try again, or sign in with the API token.",
            wait.as_secs().max(1)
        );
        return Err((StatusCode::TOO_MANY_REQUESTS, message));
    }
    state.auth.tokens.verify_setup_code(secret).ok_or_else(|| {
        state.sign_ins.failed();
        tracing::warn!("a browser's sign-in was refused: wrong api-token or setup code");
        let message = "That is neither this appliance's API token nor its setup code. The setup code is on the \
                       box's console (and `hearth setup-code` prints it); the token is \
                       /var/lib/hearth/secrets/api-token.";
        (StatusCode::UNAUTHORIZED, message.to_owned())
    })
}

/// Ends the session and clears its cookie.
pub async fn sign_out(State(state): State<UiState>, signed_in: SignedIn) -> Response {
    if let Err(error) = state.app.library.end_session(signed_in.session.id).await {
        return UiError::from(error).into_response();
    }
    tracing::info!(session = %identity(&signed_in.session), "a browser signed out");
    signed_out()
}

/// To the sign-in page, with the cookie cleared.
pub fn signed_out() -> Response {
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    with_cookie(see_other("/signin?signed_out=1"), &cookie)
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Where to go after signing in: a path on this site only, never another site (`//evil`, `/\evil`).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && !next.contains('\\')
                && !next.chars().any(char::is_control) =>
        {
            next
        }
        _ => "/",
    }
}

/// Wrong sign-ins across all browsers: at most [`Self::MAX_FAILURES`] a minute, so a setup code of 60 bits
/// cannot be guessed.
#[derive(Debug, Default)]
pub struct SignInLimiter {
    failures: Mutex<Vec<Instant>>,
}

impl SignInLimiter {
    const MAX_FAILURES: usize = 10;
    const WINDOW: Duration = Duration::from_secs(60);

    /// `Err(wait)` while the limit is reached.
    fn check(&self) -> Result<(), Duration> {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failures.retain(|at| at.elapsed() < Self::WINDOW);
        match failures.first() {
            Some(oldest) if failures.len() >= Self::MAX_FAILURES => {
                Err(Self::WINDOW.saturating_sub(oldest.elapsed()))
            }
            _ => Ok(()),
        }
    }

    fn failed(&self) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failures.push(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_site_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/library?status=ready")), "/library?status=ready");
        for hostile in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "evil",
            "/a\nb",
        ] {
            assert_eq!(safe_next(Some(hostile)), "/", "{hostile:?}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn the_cookie_is_found_among_others_and_an_empty_one_is_none() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; hearth_session=abc123; other=1"),
        );
        assert_eq!(cookie(&headers).as_deref(), Some("abc123"));
        headers.insert(header::COOKIE, HeaderValue::from_static("hearth_session="));
        assert_eq!(cookie(&headers), None);
    }

    #[test]
    fn the_limiter_refuses_after_ten_failures_in_a_minute() {
        let limiter = SignInLimiter::default();
        for _ in 0..SignInLimiter::MAX_FAILURES {
            assert!(limiter.check().is_ok());
            limiter.failed();
        }
        let wait = limiter.check().expect_err("limited");
        assert!(
            wait <= SignInLimiter::WINDOW && wait > Duration::from_secs(50),
            "{wait:?}"
        );
    }
}
