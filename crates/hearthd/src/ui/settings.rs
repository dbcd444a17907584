//! Settings: which secrets open this hearth (fingerprints only), the signed-in browsers, and the reasoning
//! provider (its key only as a fingerprint) with what is sent to it.

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use hearth_api::reasoning::{ProviderSettings, ProviderSource, ReasoningSettings};
use hearth_core::library::SessionRow;
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::layout::{self, Nav};
use super::session::SignedIn;
use super::{UiError, UiState, html_page, see_other};
use crate::input::Path;

pub async fn page(State(state): State<UiState>, signed_in: SignedIn) -> Result<Response, UiError> {
    let sessions = state.app.library.sessions().await?;
    let reasoning = state.app.reasoning.settings().await?;
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
        (reasoning_section(&reasoning))
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

fn reasoning_section(settings: &ReasoningSettings) -> Markup {
    let provider = settings.provider.as_ref();
    let declared = provider.is_some_and(|p| p.source == ProviderSource::Config);
    html! {
        section #reasoning aria-labelledby="reasoning-heading" {
            h2 #reasoning-heading { "Reasoning provider" }
            p { "Answers come from a remote provider you choose: an OpenAI-compatible service with your key, or the \
                 GPU workstation on your LAN. Only the text of the passages retrieved for a question is sent, only \
                 while answers are on, and never a passage of a document whose metadata says "
                code { "\"private\": true" } "." }
            p #reasoning-sends role="status" { strong { "Sent: " } (settings.sends) "." }
            @if let Some(provider) = provider {
                dl.facts {
                    dt { "Address" } dd { code { (provider.base_url) } }
                    dt { "Model" } dd { code { (provider.model) } }
                    dt { "Key" }
                    dd #provider-key { @match &provider.key_fingerprint {
                        Some(fingerprint) => { "fingerprint " code { (fingerprint) } }
                        None => "none",
                    } }
                    dt { "Answers" } dd { (if provider.answers { "on" } else { "off" }) }
                }
                form method="post" action="/settings/reasoning/test" {
                    button type="submit" { "Test connection" }
                }
            }
            @if declared {
                p.help { "This provider is declared in hearth's configuration (reasoning.provider); change it there." }
            } @else {
                (provider_form(settings))
            }
        }
    }
}

fn provider_form(settings: &ReasoningSettings) -> Markup {
    let provider = settings.provider.as_ref();
    html! {
        form #provider-form method="post" action="/settings/reasoning" {
            label for="base_url" { "Address (OpenAI-compatible, up to /v1)" }
            input #base_url name="base_url" type="url" list="provider-presets" required
                value=(provider.map_or("", |p| p.base_url.as_str()));
            datalist #provider-presets {
                option value="http://workstation.local:8000/v1" { "the GPU workstation on the LAN" }
                option value="https://api.openai.com/v1" { "OpenAI" }
            }
            label for="model" { "Model" }
            input #model name="model" required value=(provider.map_or("", |p| p.model.as_str()));
            label for="api_key" { "API key " small { "(empty: keep the stored one; none for a LAN engine)" } }
            input #api_key name="api_key" type="password" autocomplete="off";
            @if !settings.can_store_keys {
                p.help { "hearthd has no encryption key, so a key cannot be stored: give it the encryption-key \
                          credential first." }
            }
            label { input name="answers" type="checkbox" value="on" checked[provider.is_some_and(|p| p.answers)];
                    " Send passages to answer questions" }
            label { input name="concepts" type="checkbox" value="on" checked[provider.is_some_and(|p| p.concepts)];
                    " Send every document's passages to extract concepts (within the daily token budget; never \
                      private documents)" }
            label { input name="remove_key" type="checkbox" value="on"; " Remove the stored key" }
            button type="submit" { "Save" }
        }
        @if provider.is_some() {
            form method="post" action="/settings/reasoning/delete" {
                button type="submit" { "Remove the provider" }
            }
        }
    }
}

/// The Settings form's fields (a checkbox is absent when not ticked). No `Debug`: it holds the key.
#[derive(Deserialize)]
#[allow(missing_debug_implementations)]
pub struct ProviderForm {
    base_url: String,
    model: String,
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    answers: Option<String>,
    #[serde(default)]
    concepts: Option<String>,
    #[serde(default)]
    remove_key: Option<String>,
}

pub async fn set_reasoning(
    State(state): State<UiState>,
    signed_in: SignedIn,
    Form(form): Form<ProviderForm>,
) -> Result<Response, UiError> {
    let settings = ProviderSettings {
        base_url: form.base_url,
        model: form.model,
        api_key: Some(form.api_key).filter(|key| !key.trim().is_empty()),
        remove_key: form.remove_key.is_some(),
        answers: form.answers.is_some(),
        concepts: form.concepts.is_some(),
    };
    let by = format!("session:{}", signed_in.session.id);
    state.app.reasoning.put(settings, &by).await?;
    state.app.concepts.provider_changed().await?;
    Ok(see_other("/settings#reasoning"))
}

pub async fn test_reasoning(State(state): State<UiState>, _signed_in: SignedIn) -> Result<Response, UiError> {
    let test = state.app.reasoning.test().await?;
    let body = html! {
        h1 { "Test connection" }
        p #provider-test role="status" class=(if test.ok { "notice" } else { "error" }) { (test.message) }
        @if test.ok && !test.model_listed {
            p.error { "The configured model is not among the models it lists: check the model name." }
        }
        @if !test.models.is_empty() {
            p { "Models: " @for (i, model) in test.models.iter().enumerate() {
                @if i > 0 { ", " } code { (model) } } }
        }
        p { a href="/settings#reasoning" { "Back to Settings" } }
    };
    Ok(html_page(
        StatusCode::OK,
        layout::signed_in("Test connection", Nav::Settings, body),
    ))
}

pub async fn delete_reasoning(
    State(state): State<UiState>,
    signed_in: SignedIn,
    Form(_): Form<super::library::Empty>,
) -> Result<Response, UiError> {
    let by = format!("session:{}", signed_in.session.id);
    state.app.reasoning.delete(&by).await?;
    Ok(see_other("/settings#reasoning"))
}
