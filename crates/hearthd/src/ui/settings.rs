//! Settings: which secrets open this hearth (fingerprints only), the signed-in browsers, and where reasoning
//! will be configured.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use hearth_core::library::SessionRow;
use maud::{Markup, html};
use uuid::Uuid;

use super::layout::{self, Nav};
use super::session::SignedIn;
use super::{UiError, UiState, html_page, see_other};
use crate::input::Path;

pub async fn page(State(state): State<UiState>, signed_in: SignedIn) -> Result<Response, UiError> {
    let sessions = state.app.library.sessions().await?;
    let tokens = &state.auth.tokens;
    let body = html! {
        h1 { "Settings" }
        section aria-labelledby="access-heading" {
            h2 #access-heading { "Access" }
            dl.facts {
                dt { "API token" }
                @if tokens.is_empty() {
                    dd { "none: only this box's own clients can use the API" }
                }
                @for fingerprint in tokens.fingerprints() {
                    dd #token-fingerprint { "fingerprint " code { (fingerprint) } }
                }
                dt { "Setup code" }
                dd { (if tokens.has_setup_code() { "configured" } else { "not configured" }) }
            }
            p.help { "Fingerprints are the first 6 hex digits of a secret's sha256: they tell secrets apart and \
                      reveal nothing. Logs name callers the same way." }
        }
        (sessions_section(&sessions, signed_in.session.id))
        section #reasoning aria-labelledby="reasoning-heading" {
            h2 #reasoning-heading { "Reasoning provider" }
            p { "Answers and concept extraction will use a remote provider you choose here: an OpenAI-compatible \
                 service with your key, or the GPU workstation on your LAN. None is configured, so nothing leaves \
                 this box." }
        }
    };
    Ok(html_page(
        StatusCode::OK,
        layout::signed_in("Settings", Nav::Settings, body),
    ))
}

fn sessions_section(sessions: &[SessionRow], current: Uuid) -> Markup {
    html! {
        section aria-labelledby="sessions-heading" {
            h2 #sessions-heading { "Signed-in browsers" }
            div.scroll {
                table #sessions {
                    caption.visually-hidden { "Signed-in browsers" }
                    thead { tr { th scope="col" { "Browser" } th scope="col" { "Signed in with" }
                                 th scope="col" { "Last seen" } th scope="col" { "Expires" }
                                 th scope="col" { span.visually-hidden { "Action" } } } }
                    tbody {
                        @for session in sessions {
                            tr {
                                td { (session.user_agent) @if session.id == current { " " strong { "(this one)" } } }
                                td { code { (session.created_by) } }
                                td { (session.last_seen_at.format("%Y-%m-%d %H:%M UTC")) }
                                td { (session.expires_at.format("%Y-%m-%d %H:%M UTC")) }
                                td {
                                    form method="post" action={ "/settings/sessions/" (session.id) "/revoke" } {
                                        button type="submit" {
                                            (if session.id == current { "Sign out" } else { "Revoke" })
                                            span.visually-hidden { " the browser signed in at "
                                                (session.created_at.format("%Y-%m-%d %H:%M UTC")) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub async fn revoke(
    State(state): State<UiState>,
    signed_in: SignedIn,
    Path(id): Path<Uuid>,
) -> Result<Response, UiError> {
    state.app.library.end_session(id).await?;
    tracing::info!(revoked = %id, by = %signed_in.session.id, "a browser session was revoked");
    Ok(if id == signed_in.session.id {
        super::session::signed_out()
    } else {
        see_other("/settings")
    })
}
