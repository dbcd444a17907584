//! Search: a box, the mode, a metadata filter, and hits with the query's words marked in context. The form is a
//! plain GET, so results have a URL and work without JavaScript.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use hearth_api::search::{Hit, SearchFilter, SearchMode, SearchRequest};
use hearth_core::library::parse_metadata;
use maud::{Markup, html};
use serde::Deserialize;

use super::highlight::excerpt;
use super::layout::{self, Nav};
use super::library::urlencode;
use super::session::SignedIn;
use super::{UiError, UiState, html_page};

/// Hits a search page shows.
const HITS: usize = 20;
/// Characters of context shown around a hit's first matched word.
const CONTEXT_CHARS: usize = 320;

#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    metadata: String,
}

pub async fn page(
    State(state): State<UiState>,
    _signed_in: SignedIn,
    Query(query): Query<SearchQuery>,
) -> Response {
    let mode = query
        .mode
        .as_deref()
        .and_then(|mode| SearchMode::ALL.into_iter().find(|m| m.label() == mode))
        .unwrap_or_default();
    let (status, results) = if query.q.trim().is_empty() {
        (StatusCode::OK, html! {})
    } else {
        match run(&state, &query, mode).await {
            Ok(hits) => (StatusCode::OK, hits_list(&hits, &query.q)),
            Err(UiError(error)) => {
                let (status, _, message) = error.parts();
                (status, html! { p.error #search-error role="alert" { (message) } })
            }
        }
    };
    let body = html! {
        h1 { "Search" }
        (search_form(&query, mode))
        (results)
    };
    html_page(status, layout::signed_in("Search", Nav::Search, body))
}

async fn run(state: &UiState, query: &SearchQuery, mode: SearchMode) -> Result<Vec<Hit>, UiError> {
    let metadata = match query.metadata.trim() {
        "" => None,
        text => Some(parse_metadata(text)?),
    };
    let request = SearchRequest {
        query: query.q.clone(),
        k: HITS,
        mode,
        filter: metadata.map(|metadata| SearchFilter {
            metadata: Some(metadata),
            document_ids: None,
            concept: None,
        }),
    };
    Ok(state.app.library.search(&request).await?)
}

fn search_form(query: &SearchQuery, mode: SearchMode) -> Markup {
    html! {
        form.search method="get" action="/search" role="search" {
            label for="q" { "Search for" }
            input #q type="search" name="q" value=(query.q) required maxlength="4096" autofocus;
            fieldset.modes {
                legend { "Mode" }
                @for each in SearchMode::ALL {
                    @let id = format!("mode-{}", each.label());
                    input id=(id) type="radio" name="mode" value=(each.label()) checked[each == mode];
                    label for=(id) { (each.label()) }
                }
            }
            label for="search-metadata" { "Metadata contains" }
            input #search-metadata type="text" name="metadata" value=(query.metadata)
                placeholder=r#"{"project": "x"}"# spellcheck="false";
            button type="submit" { "Search" }
        }
    }
}

fn hits_list(hits: &[Hit], query: &str) -> Markup {
    html! {
        @if hits.is_empty() {
            p #no-hits role="status" { "Nothing found. Try other words, or the vector mode for meaning." }
        } @else {
            p.visually-hidden role="status" { (hits.len()) " hits" }
            ol #hits {
                @for hit in hits {
                    li.hit {
                        a href={ "/library/" (hit.document_id) "?chunk=" (hit.chunk_id) "&q=" (urlencode(query))
                                 "#chunk-" (hit.chunk_id) } {
                            (hit.title.as_deref().or(hit.external_id.as_deref()).unwrap_or("untitled"))
                        }
                        " "
                        small.score { "score " (format!("{:.3}", hit.score)) }
                        p.context { (excerpt(&hit.text, query, CONTEXT_CHARS)) }
                        @if !hit.concepts.is_empty() {
                            ul.chips aria-label="Concepts" {
                                @for chip in &hit.concepts {
                                    li { a.chip href={ "/concepts/" (chip.id) } { (chip.name) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
