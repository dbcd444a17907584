//! Home: is everything working, and if not, what to do; what the box holds and runs.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use hearth_api::status::{
    BlobsState, Capabilities, ComponentStatus, DatabaseState, ModelInfo, ModelState, Readiness, ReadyStatus,
    RemoteEmbeddingState, RemoteEmbeddingStatus, SchemaState, SchemaStatus,
};
use maud::{Markup, html};

use super::layout::{self, Nav};
use super::session::SignedIn;
use super::{UiState, html_page, human_bytes};
use crate::{capabilities, http};

/// One line of the readiness list: the component, whether it works, and in words what it is or what to do.
struct Component {
    name: &'static str,
    ok: bool,
    words: String,
}

pub async fn page(State(state): State<UiState>, _signed_in: SignedIn) -> Response {
    let readiness = http::readiness(&state.app).await;
    let capabilities = capabilities::capabilities(State(state.app.clone())).await.0;
    let library = &state.app.library;
    let counts = library.document_counts().await.unwrap_or_default();
    let disk = library.disk_usage().await.ok();
    let body = html! {
        h1 { "Home" }
        (status_section(&readiness))
        (library_section(&counts, &readiness, disk))
        (system_section(&capabilities))
    };
    html_page(StatusCode::OK, layout::signed_in("Home", Nav::Home, body))
}

fn status_section(readiness: &Readiness) -> Markup {
    let ready = readiness.status == ReadyStatus::Ready;
    html! {
        section aria-labelledby="status-heading" {
            h2 #status-heading { "Status" }
            @if ready {
                p.ok #readiness role="status" { "Everything is working: documents are indexed and searchable." }
            } @else {
                p.error #readiness role="status" { "Something needs attention: see below." }
            }
            ul.components {
                @for component in components(readiness) {
                    li data-ok=(component.ok) {
                        strong { (component.name) } ": "
                        span.state { (if component.ok { "working" } else { "not working" }) }
                        " — " (component.words)
                    }
                }
            }
        }
    }
}

fn components(readiness: &Readiness) -> Vec<Component> {
    let mut components = vec![
        database(&readiness.database),
        schema(&readiness.schema),
        blobs(&readiness.blobs),
        model(&readiness.model),
    ];
    components.extend(readiness.remote_embedding.as_ref().map(remote_embedder));
    components
}

fn remote_embedder(state: &RemoteEmbeddingState) -> Component {
    let fallback = if state.ingest_fallback == "wait" {
        "new documents wait for it"
    } else {
        "this box embeds meanwhile"
    };
    let (ok, words) = match state.status {
        RemoteEmbeddingStatus::Ready => (true, format!("{} embeds new documents", state.url)),
        RemoteEmbeddingStatus::Checking => (true, format!("checking {}", state.url)),
        RemoteEmbeddingStatus::Mismatch | RemoteEmbeddingStatus::Unreachable => (
            false,
            format!(
                "{} — {}; {fallback}, searches are answered here",
                state.url,
                state.message.as_deref().unwrap_or("not usable")
            ),
        ),
    };
    Component {
        name: "Remote embedder",
        ok,
        words,
    }
}

fn database(state: &DatabaseState) -> Component {
    let words = match (&state.error, &state.postgres) {
        (Some(error), _) => {
            format!("{error}. Check that PostgreSQL runs (systemctl status postgresql) and `hearth doctor`.")
        }
        (None, Some(postgres)) => format!(
            "PostgreSQL {postgres} with pgvector {}",
            state.pgvector.as_deref().unwrap_or("?")
        ),
        (None, None) => "no answer yet".into(),
    };
    Component {
        name: "Database",
        ok: state.error.is_none() && state.postgres.is_some(),
        words,
    }
}

fn schema(state: &SchemaState) -> Component {
    let (ok, words) = match state.status {
        SchemaStatus::Current => (true, format!("version {}", state.version.unwrap_or_default())),
        SchemaStatus::Migrating => (
            false,
            format!(
                "being upgraded to version {}: wait a moment",
                state.expected.unwrap_or_default()
            ),
        ),
        SchemaStatus::BackingUp => (
            false,
            format!(
                "backing up the database before upgrading it to version {}: wait a moment",
                state.expected.unwrap_or_default()
            ),
        ),
        SchemaStatus::Blocked | SchemaStatus::Incompatible => (
            false,
            state.reason.clone().unwrap_or_else(|| "held: see /readyz".into()),
        ),
        SchemaStatus::Unknown => (false, "unknown until the database answers".into()),
    };
    Component {
        name: "Schema",
        ok,
        words,
    }
}

fn blobs(state: &BlobsState) -> Component {
    let ok = state.status == ComponentStatus::Ready;
    let words = match &state.error {
        Some(error) => format!("{} — {error}. Check the store's service and disk.", state.store),
        None => state.store.clone(),
    };
    Component {
        name: "Originals",
        ok,
        words,
    }
}

fn model(state: &ModelState) -> Component {
    let (ok, words) = match state {
        ModelState::Ready { id, dims } => (true, format!("{id}, {dims} dimensions")),
        ModelState::Loading {
            model,
            elapsed_seconds,
        } => (false, format!("loading {model} ({elapsed_seconds} s so far)")),
        ModelState::Loaded { id, waiting_for, .. } => {
            (false, format!("{id} loaded, waiting for {waiting_for}"))
        }
        ModelState::Failed { model, error } => (
            false,
            format!("{model} failed to load: {error}. Run `hearth doctor` on the box."),
        ),
    };
    Component {
        name: "Embedding model",
        ok,
        words,
    }
}

fn library_section(counts: &[(String, i64)], readiness: &Readiness, disk: Option<(i64, i64)>) -> Markup {
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    html! {
        section aria-labelledby="library-heading" {
            h2 #library-heading { "Library" }
            dl.facts {
                dt { "Documents" } dd #documents-total { (total) }
                @for (status, count) in counts {
                    dt { a href={ "/library?status=" (status) } { (status) } } dd { (count) }
                }
                @if let Some(queue) = readiness.queue {
                    dt { "Waiting to be indexed" }
                    dd {
                        (queue.depth)
                        @if let Some(age) = queue.oldest_seconds {
                            " (oldest " (format!("{age:.0}")) " s)"
                        }
                    }
                }
                @if let Some((database, originals)) = disk {
                    dt { "Originals on disk" } dd { (human_bytes(originals)) }
                    dt { "Database on disk" } dd { (human_bytes(database)) }
                }
            }
        }
    }
}

fn system_section(capabilities: &Capabilities) -> Markup {
    html! {
        section aria-labelledby="system-heading" {
            h2 #system-heading { "System" }
            dl.facts {
                dt { "hearth" }
                dd { (capabilities.hearth.version) " (" (capabilities.hearth.revision) ")" }
                dt { "NixOS generation" }
                dd { (capabilities.system.nixos_generation.as_deref().unwrap_or("not running on NixOS")) }
                @match &capabilities.model {
                    ModelInfo::Ready(model) => {
                        dt { "Model" } dd #model-id { (model.id) " (" (model.quantization) ")" }
                        dt { "Dimensions" } dd { (model.dims) }
                        @if let Some(spaces) = &capabilities.embedding_space {
                            dt { "Space digest" } dd.digest { (spaces.active.digest) }
                        }
                        dt { "Files" }
                        dd {
                            details {
                                summary { (model.files.len()) " files, verified at load" }
                                ul.files {
                                    @for file in &model.files {
                                        li { (file.path) ": " span.digest { (file.sha256) } }
                                    }
                                }
                            }
                        }
                    }
                    ModelInfo::Loading { id } | ModelInfo::Loaded { id } | ModelInfo::Failed { id } => {
                        dt { "Model" } dd { (id) }
                    }
                }
            }
        }
    }
}
