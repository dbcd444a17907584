//! Library: the documents, a page at a time, with upload, one document's page and deletion.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use hearth_api::documents::{Document, DocumentStatus, ListParams};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::highlight::highlighted;
use super::layout::{self, Nav};
use super::session::SignedIn;
use super::{UiError, UiState, html_page, human_bytes};
use crate::input::Path;

/// Documents per page of the Library.
const PAGE_SIZE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct LibraryQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    metadata: String,
    cursor: Option<String>,
}

pub async fn page(
    State(state): State<UiState>,
    _signed_in: SignedIn,
    Query(query): Query<LibraryQuery>,
) -> Result<Response, UiError> {
    let params = ListParams {
        status: Some(query.status.clone()).filter(|s| !s.is_empty()),
        metadata: Some(query.metadata.clone()).filter(|m| !m.trim().is_empty()),
        limit: Some(PAGE_SIZE),
        cursor: query.cursor.clone(),
        content_sha256: None,
    };
    let list = state.app.library.list(&params).await?;
    let body = html! {
        h1 { "Library" }
        (upload_section())
        (filter_form(&query))
        (documents_table(&list.documents))
        @if let Some(cursor) = &list.next_cursor {
            p {
                a rel="next" href={ "/library?status=" (urlencode(&query.status)) "&metadata="
                    (urlencode(&query.metadata)) "&cursor=" (urlencode(cursor)) } { "Next page" }
            }
        }
    };
    Ok(html_page(
        StatusCode::OK,
        layout::signed_in("Library", Nav::Library, body),
    ))
}

fn upload_section() -> Markup {
    html! {
        section #upload aria-labelledby="upload-heading" {
            h2 #upload-heading { "Add documents" }
            div #dropzone {
                p { "Drop files here, or choose them: text, Markdown, HTML or PDF." }
                input #files type="file" multiple
                    accept=".txt,.text,.md,.markdown,.html,.htm,.pdf,text/plain,text/markdown,text/html,application/pdf";
                label for="files" { "Choose files" }
            }
            noscript { p.help { "Uploading from this page needs JavaScript; the CLI (`hearth ingest`) does not." } }
            ul #uploads aria-live="polite" {}
        }
    }
}

fn filter_form(query: &LibraryQuery) -> Markup {
    html! {
        form.filters method="get" action="/library" role="search" aria-label="Filter documents" {
            label for="status" { "Status" }
            select #status name="status" {
                option value="" selected[query.status.is_empty()] { "any" }
                @for status in DocumentStatus::ALL {
                    option value=(status.as_str()) selected[query.status == status.as_str()] { (status.as_str()) }
                }
            }
            label for="metadata" { "Metadata contains" }
            input #metadata type="text" name="metadata" value=(query.metadata)
                placeholder=r#"{"project": "x"}"# spellcheck="false";
            button type="submit" { "Filter" }
        }
    }
}

fn documents_table(documents: &[Document]) -> Markup {
    html! {
        @if documents.is_empty() {
            p #no-documents { "No documents here yet." }
        }
        div.scroll {
            table #documents {
                caption.visually-hidden { "Documents" }
                thead {
                    tr { th scope="col" { "Title" } th scope="col" { "Status" } th scope="col" { "Type" }
                         th scope="col" { "Size" } th scope="col" { "Chunks" } th scope="col" { "Updated" } }
                }
                tbody {
                    @for document in documents { (document_row(document)) }
                }
            }
        }
    }
}

fn document_row(document: &Document) -> Markup {
    html! {
        tr data-id=(document.id) {
            td { a href={ "/library/" (document.id) } { (title(document)) } }
            td {
                span.status data-status=(document.status.as_str()) { (document.status.as_str()) }
                @if let Some(error) = &document.error { br; small.error { (error) } }
            }
            td { (document.content_type) }
            td { (human_bytes(document.byte_size)) }
            td.chunks { (document.chunk_count) }
            td { time datetime=(document.updated_at.to_rfc3339()) { (document.updated_at.format("%Y-%m-%d %H:%M")) } }
        }
    }
}

fn title(document: &Document) -> String {
    document
        .title
        .clone()
        .or_else(|| document.external_id.clone())
        .unwrap_or_else(|| format!("untitled {}", &document.id.simple().to_string()[..8]))
}

#[derive(Debug, Default, Deserialize)]
pub struct PassageQuery {
    /// The chunk a search hit pointed at, and the query whose words to mark in it.
    chunk: Option<i64>,
    #[serde(default)]
    q: String,
}

/// One document: its details, the original, and its text as passages, the one a search pointed at marked.
pub async fn document(
    State(state): State<UiState>,
    _signed_in: SignedIn,
    Path(id): Path<Uuid>,
    Query(query): Query<PassageQuery>,
) -> Result<Response, UiError> {
    let library = &state.app.library;
    let detail = library.document(id).await?;
    let chunks = library.chunks(id).await?;
    let document = &detail.document;
    let name = title(document);
    let body = html! {
        h1 { (name) }
        (document_facts(document))
        p.actions {
            a.button href={ "/v1/documents/" (id) "/content" } download { "Download the original" }
            " "
            a.button.danger href={ "/library/" (id) "/delete" } { "Delete…" }
        }
        section aria-labelledby="text-heading" {
            h2 #text-heading { "Text" }
            @if chunks.is_empty() { p { "No text yet: the document is " (document.status.as_str()) "." } }
            @for chunk in &chunks {
                @let target = query.chunk == Some(chunk.id);
                article.passage .target[target] #{ "chunk-" (chunk.id) } {
                    h3 { "Passage " (chunk.ordinal + 1) }
                    p { @if target { (highlighted(&chunk.text, &query.q)) } @else { (chunk.text) } }
                }
            }
        }
    };
    Ok(html_page(
        StatusCode::OK,
        layout::signed_in(&name, Nav::Library, body),
    ))
}

fn document_facts(document: &Document) -> Markup {
    html! {
        dl.facts {
            dt { "Status" } dd { span.status data-status=(document.status.as_str()) { (document.status.as_str()) } }
            @if let Some(error) = &document.error { dt { "Error" } dd.error { (error) } }
            @for note in &document.notes { dt { "Note" } dd { (note) } }
            dt { "Type" } dd { (document.content_type) }
            dt { "Size" } dd { (human_bytes(document.byte_size)) }
            dt { "Version" } dd { (document.version) }
            dt { "Chunks" } dd { (document.chunk_count) }
            @if let Some(external_id) = &document.external_id { dt { "External id" } dd { (external_id) } }
            dt { "Metadata" } dd { code { (document.metadata) } }
            dt { "Added" } dd { (document.created_at.format("%Y-%m-%d %H:%M UTC")) }
        }
    }
}

/// The confirmation a deletion needs, as a page: it works without JavaScript and cannot be clicked by accident.
pub async fn confirm_delete(
    State(state): State<UiState>,
    _signed_in: SignedIn,
    Path(id): Path<Uuid>,
) -> Result<Response, UiError> {
    let detail = state.app.library.document(id).await?;
    let name = title(&detail.document);
    let body = html! {
        h1 { "Delete “" (name) "”?" }
        p { "Its original, text and vectors are removed from this box. This cannot be undone." }
        form method="post" action={ "/library/" (id) "/delete" } {
            button.danger type="submit" { "Delete it" }
            " "
            a href={ "/library/" (id) } { "Keep it" }
        }
    };
    Ok(html_page(
        StatusCode::OK,
        layout::signed_in("Delete?", Nav::Library, body),
    ))
}

#[derive(Debug, Deserialize)]
pub struct Empty {}

pub async fn delete(
    State(state): State<UiState>,
    _signed_in: SignedIn,
    Path(id): Path<Uuid>,
    Form(_): Form<Empty>,
) -> Result<Response, UiError> {
    let library = &state.app.library;
    let name = title(&library.document(id).await?.document);
    library.delete(id).await?;
    // A page, not a redirect carrying the name: a link could then show any text as hearth's notice.
    let body = html! {
        h1 { "Deleted" }
        p.notice role="status" { "“" (name) "” is gone: its original, text and vectors." }
        p { a href="/library" { "Back to the Library" } }
    };
    Ok(html_page(
        StatusCode::OK,
        layout::signed_in("Deleted", Nav::Library, body),
    ))
}

/// Percent-encodes everything but unreserved characters, for a query string.
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
