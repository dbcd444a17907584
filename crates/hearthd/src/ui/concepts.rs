//! Concepts: the graph the reasoning provider extracted. A search box over names and aliases, and for each
//! concept its documents, the passages that mention it and its neighbours drawn as a small graph (inline SVG:
//! links, no script).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use hearth_api::concepts::{ConceptDetail, ConceptQuery, Direction, ExtractionStatus, Neighbour};
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::layout::{self, Nav};
use super::session::SignedIn;
use super::{UiError, UiState, html_page};
use crate::error::ApiError;

/// Neighbours drawn around a concept.
const DRAWN: usize = 12;

#[derive(Debug, Default, Deserialize)]
pub struct ConceptsQuery {
    #[serde(default)]
    q: String,
}

pub async fn page(
    State(state): State<UiState>,
    _signed_in: SignedIn,
    Query(query): Query<ConceptsQuery>,
) -> Response {
    let status_line = match state.app.concepts.status().await {
        Ok(status) => status_view(&status),
        Err(error) => html! { p.error role="alert" { (ApiError::from(error).parts().2) } },
    };
    let listing = ConceptQuery {
        query: Some(query.q.clone()).filter(|q| !q.trim().is_empty()),
        limit: Some(50),
    };
    let (status, list) = match state.app.concepts.list(&listing).await {
        Ok(list) if list.concepts.is_empty() => (
            StatusCode::OK,
            html! { p #no-concepts role="status" { "No concepts yet." } },
        ),
        Ok(list) => (
            StatusCode::OK,
            html! {
                ol #concepts {
                    @for concept in &list.concepts {
                        li {
                            a.concept href={ "/concepts/" (concept.id) } { (concept.name) }
                            " " small { (concept.documents) " document(s), " (concept.mentions) " passage(s)" }
                        }
                    }
                }
            },
        ),
        Err(error) => {
            let (status, _, message) = ApiError::from(error).parts();
            (
                status,
                html! { p.error #concepts-error role="alert" { (message) } },
            )
        }
    };
    let body = html! {
        h1 { "Concepts" }
        form.search method="get" action="/concepts" role="search" {
            label for="q" { "Concept" }
            input #q type="search" name="q" value=(query.q) maxlength="200";
            button type="submit" { "Find" }
        }
        (status_line)
        (list)
    };
    html_page(status, layout::signed_in("Concepts", Nav::Concepts, body))
}

fn status_view(status: &ExtractionStatus) -> Markup {
    html! {
        p.help #extraction {
            @if let Some(waiting) = &status.waiting { (waiting) ". " }
            (status.done) " document(s) extracted, " (status.pending) " waiting, " (status.failed) " failed, "
            (status.private) " private (never sent). Tokens today: " (status.budget.used_today) " of "
            (status.budget.daily_tokens) ". "
            a href="/settings#reasoning" { "Reasoning settings" }
        }
    }
}

pub async fn concept(
    State(state): State<UiState>,
    _signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let id = Uuid::parse_str(&id).map_err(|_| {
        ApiError::BadRequest(format!(
            "'{id}' is not a concept id (a UUID, as on the Concepts page)"
        ))
    })?;
    let detail = state.app.concepts.detail(id).await?;
    let body = html! {
        h1 { (detail.concept.name) }
        @if !detail.concept.aliases.is_empty() {
            p #aliases { "Also: " (detail.concept.aliases.join(", ")) }
        }
        p { a href={ "/search?q=" (super::library::urlencode(&detail.concept.name)) } { "Search for it" } }
        (graph(&detail))
        h2 { "Documents" }
        ul #concept-documents {
            @for document in &detail.documents {
                li {
                    a href={ "/library/" (document.id) } { (document.title.as_deref().unwrap_or("untitled")) }
                    " " small { (document.mentions) " passage(s)" }
                }
            }
        }
        h2 { "Passages" }
        ol #mentions {
            @for mention in &detail.mentions {
                li {
                    a href={ "/library/" (mention.document_id) "?chunk=" (mention.chunk_id) "#chunk-" (mention.chunk_id) } {
                        "passage " (mention.ordinal + 1)
                    }
                    p.context { (mention.snippet) }
                }
            }
        }
    };
    Ok(html_page(
        StatusCode::OK,
        layout::signed_in(&detail.concept.name, Nav::Concepts, body),
    ))
}

/// The concept in the middle, its neighbours on a circle, each edge named by its relation; the same as a list.
fn graph(detail: &ConceptDetail) -> Markup {
    let drawn: Vec<&Neighbour> = detail.neighbours.iter().take(DRAWN).collect();
    let (cx, cy, radius) = (300.0_f64, 170.0_f64, 130.0_f64);
    let at = |i: usize| {
        let angle =
            std::f64::consts::TAU * i as f64 / drawn.len().max(1) as f64 - std::f64::consts::FRAC_PI_2;
        (cx + radius * 1.6 * angle.cos(), cy + radius * angle.sin())
    };
    html! {
        h2 { "Neighbours" }
        @if drawn.is_empty() {
            p #no-neighbours { "No related concepts yet." }
        } @else {
            svg.graph #concept-graph viewBox="0 0 600 340" role="img"
                aria-label={ (detail.concept.name) " and " (drawn.len()) " related concepts" } {
                @for (i, neighbour) in drawn.iter().enumerate() {
                    @let (x, y) = at(i);
                    line.edge x1=(cx) y1=(cy) x2=(format!("{x:.1}")) y2=(format!("{y:.1}")) {}
                    text.relation x=(format!("{:.1}", (cx + x) / 2.0)) y=(format!("{:.1}", (cy + y) / 2.0)) {
                        (neighbour.relation.replace('_', " "))
                    }
                }
                @for (i, neighbour) in drawn.iter().enumerate() {
                    @let (x, y) = at(i);
                    a href={ "/concepts/" (neighbour.id) } {
                        circle.node cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="6" {}
                        text.label x=(format!("{x:.1}")) y=(format!("{:.1}", y - 10.0)) { (neighbour.name) }
                    }
                }
                circle.node.centre cx=(cx) cy=(cy) r="9" {}
                text.label.centre x=(cx) y=(cy - 14.0) { (detail.concept.name) }
            }
            ul #neighbours {
                @for neighbour in &detail.neighbours {
                    li {
                        (arrow(neighbour)) " "
                        a href={ "/concepts/" (neighbour.id) } { (neighbour.name) }
                        " " small { "×" (neighbour.weight) }
                    }
                }
            }
        }
    }
}

fn arrow(neighbour: &Neighbour) -> String {
    let relation = neighbour.relation.replace('_', " ");
    match neighbour.direction {
        Direction::Out => format!("{relation} →"),
        Direction::In => format!("← {relation}"),
        Direction::Both => relation,
    }
}
