//! Ask: a question answered from the library by the reasoning provider, with its sources as links to the
//! passages. A plain GET form, so it works without JavaScript and an answer has a URL; the page says what was
//! sent where.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use hearth_api::reasoning::{Answer, Citation, DEFAULT_ANSWER_K};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Nav};
use super::library::urlencode;
use super::session::SignedIn;
use super::{UiState, html_page};
use crate::error::ApiError;

#[derive(Debug, Default, Deserialize)]
pub struct AskQuery {
    #[serde(default)]
    q: String,
}

pub async fn page(
    State(state): State<UiState>,
    _signed_in: SignedIn,
    Query(query): Query<AskQuery>,
) -> Response {
    let reasoning = &state.app.reasoning;
    let sends = reasoning
        .settings()
        .await
        .map(|settings| settings.sends)
        .unwrap_or_else(|error| ApiError::from(error).parts().2);
    let (status, result) = if query.q.trim().is_empty() {
        (StatusCode::OK, html! {})
    } else {
        match reasoning.answer(&query.q, DEFAULT_ANSWER_K, None).await {
            Ok(answer) => (StatusCode::OK, answer_view(&answer, &query.q)),
            Err(error) => {
                let (status, _, message) = ApiError::from(error).parts();
                (
                    status,
                    html! {
                        p.error #answer-error role="alert" { (message) }
                        p { a href="/settings#reasoning" { "Reasoning settings" } }
                    },
                )
            }
        }
    };
    let body = html! {
        h1 { "Ask" }
        form.search method="get" action="/ask" role="search" {
            label for="q" { "Question" }
            input #q type="search" name="q" value=(query.q) maxlength="2000" required;
            button type="submit" { "Ask" }
        }
        p.help #sends { "Sent when you ask: " (sends) "." }
        (result)
    };
    html_page(status, layout::signed_in("Ask", Nav::Ask, body))
}

fn answer_view(answer: &Answer, question: &str) -> Markup {
    html! {
        section #answer aria-labelledby="answer-heading" {
            h2 #answer-heading { "Answer" }
            p.answer { (with_source_links(&answer.answer, &answer.citations, question)) }
            @if !answer.citations.is_empty() {
                h3 { "Sources sent" }
                ol #sources {
                    @for citation in &answer.citations {
                        li value=(citation.n) {
                            a href=(passage_link(citation, question)) {
                                (citation.title.as_deref().unwrap_or("untitled"))
                            }
                            @if citation.cited { " " small { "(cited)" } }
                        }
                    }
                }
            }
        }
    }
}

fn passage_link(citation: &Citation, question: &str) -> String {
    format!(
        "/library/{}?chunk={}&q={}#chunk-{}",
        citation.document_id,
        citation.chunk_id,
        urlencode(question),
        citation.chunk_id
    )
}

/// The answer's text with each `[n]` it cites made a link to that passage (the text itself stays text: maud
/// escapes it).
fn with_source_links(text: &str, citations: &[Citation], question: &str) -> Markup {
    let mut parts: Vec<(String, Option<String>)> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']').map(|c| open + c) else {
            break;
        };
        let citation = rest[open + 1..close]
            .trim()
            .parse::<usize>()
            .ok()
            .and_then(|n| citations.iter().find(|c| c.n == n));
        match citation {
            Some(citation) => {
                parts.push((rest[..open].to_owned(), None));
                parts.push((
                    rest[open..=close].to_owned(),
                    Some(passage_link(citation, question)),
                ));
            }
            None => parts.push((rest[..=close].to_owned(), None)),
        }
        rest = &rest[close + 1..];
    }
    parts.push((rest.to_owned(), None));
    html! {
        @for (text, link) in &parts {
            @if let Some(link) = link { a.cite href=(link) { (text) } } @else { (text) }
        }
    }
}
