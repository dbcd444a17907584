//! The web UI: server-rendered pages (maud, checked at compile time) and one small script, all compiled into
//! hearthd. Reading works without JavaScript; the script adds uploads with progress and live statuses, through
//! the same `/v1` API a client uses, authenticated by the session cookie.
//!
//! A browser signs in with the api-token or the setup code and gets an HttpOnly, SameSite=Strict cookie naming a
//! server-side session (`session.rs`); the token itself never reaches a page or a script.

mod ask;
mod assets;
mod concepts;
mod highlight;
mod home;
mod layout;
mod library;
mod search;
mod session;
mod settings;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::Markup;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::http::AppState;

pub use session::session_identity;

/// What the pages need: the API's state, the secrets a sign-in is checked against, and the sign-in rate limit.
#[derive(Clone)]
pub struct UiState {
    pub app: AppState,
    pub auth: Arc<Auth>,
    pub sign_ins: Arc<session::SignInLimiter>,
}

/// The pages and their assets; everything but `/signin` and the assets needs a signed-in browser.
pub fn router(app: AppState, auth: Arc<Auth>) -> Router {
    let state = UiState {
        app,
        auth,
        sign_ins: Arc::new(session::SignInLimiter::default()),
    };
    Router::new()
        .route("/", get(home::page))
        .route("/library", get(library::page))
        .route("/library/{id}", get(library::document))
        .route(
            "/library/{id}/delete",
            get(library::confirm_delete).post(library::delete),
        )
        .route("/search", get(search::page))
        .route("/concepts", get(concepts::page))
        .route("/concepts/{id}", get(concepts::concept))
        .route("/ask", get(ask::page))
        .route("/settings", get(settings::page))
        .route("/settings/reasoning", post(settings::set_reasoning))
        .route("/settings/reasoning/test", post(settings::test_reasoning))
        .route("/settings/reasoning/delete", post(settings::delete_reasoning))
        .route("/settings/sessions/{id}/revoke", post(settings::revoke))
        .route("/signin", get(session::sign_in_page).post(session::sign_in))
        .route("/signout", post(session::sign_out))
        .route("/ui/{file}", get(assets::serve))
        .layer(axum::middleware::from_fn(session::log_identity))
        .with_state(state)
}

/// Every page's headers: a policy that runs only hearth's own script and style, submits forms only to hearth,
/// and is never cached (pages show live state and, signed in, private data).
fn html_page(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Not `no-referrer`: with it a browser sends the page's own form posts as `Origin: null`, which the browser
    // guard must refuse. Other sites still get no URL of hearth's.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                           connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A failure shown as a page: the same status and message the API would give, in words, with a way back.
pub struct UiError(pub ApiError);

impl<E: Into<ApiError>> From<E> for UiError {
    fn from(error: E) -> Self {
        UiError(error.into())
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, _, message) = self.0.parts();
        if status.is_server_error() {
            tracing::warn!(error = %self.0, "a page could not be shown");
        }
        let title = status.canonical_reason().unwrap_or("Error");
        html_page(status, layout::error_page(title, &message))
    }
}

/// `303 See Other` to `location`: the answer to a form's POST, so a reload does not post it again.
fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Bytes for people: `1.4 MB`.
fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes.max(0) as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(super::human_bytes(0), "0 B");
        assert_eq!(super::human_bytes(999), "999 B");
        assert_eq!(super::human_bytes(1_400_000), "1.4 MB");
        assert_eq!(super::human_bytes(3_200_000_000), "3.2 GB");
    }
}
