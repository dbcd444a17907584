//! The prompt an answer is asked with: the question and the retrieved chunks, numbered, so the provider can cite
//! them as `[n]` and hearth can turn each number back into a document and a span.

use hearth_api::reasoning::Citation;
use hearth_api::search::Hit;
use serde_json::Value;

use super::Message;

/// Most characters of one chunk put in a prompt.
const MAX_CHUNK_CHARS: usize = 4000;

const SYSTEM: &str = "You are hearth, answering questions from the user's own documents. Use only the numbered \
                      sources you are given. Cite every source you use by its number in square brackets, like [1]. \
                      If the sources do not answer the question, say that the library does not say.";

/// What one answer sends, and the sources its numbers stand for.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub messages: Vec<Message>,
    pub citations: Vec<Citation>,
}

/// Whether a document's metadata keeps it on the box: `"private": true`.
pub fn is_private(metadata: &Value) -> bool {
    metadata.get("private") == Some(&Value::Bool(true))
}

/// The messages for `question` over `hits`, after `history` (earlier turns of a chat, user and assistant only).
/// Hits of private documents are dropped here, whatever the caller passed.
pub fn prepare(question: &str, hits: &[Hit], history: &[Message]) -> Prepared {
    let sendable: Vec<&Hit> = hits.iter().filter(|hit| !is_private(&hit.metadata)).collect();
    let mut sources = String::new();
    let mut citations = Vec::with_capacity(sendable.len());
    for (index, hit) in sendable.iter().enumerate() {
        let n = index + 1;
        let title = hit.title.as_deref().unwrap_or("untitled");
        let text: String = hit.text.chars().take(MAX_CHUNK_CHARS).collect();
        sources.push_str(&format!("[{n}] {title}\n{text}\n\n"));
        citations.push(Citation {
            n,
            document_id: hit.document_id,
            title: hit.title.clone(),
            chunk_id: hit.chunk_id,
            span: hit.span,
            cited: false,
        });
    }
    let mut messages = vec![Message {
        role: "system",
        content: SYSTEM.to_owned(),
    }];
    messages.extend(history.iter().cloned());
    messages.push(Message {
        role: "user",
        content: format!("Sources:\n\n{sources}Question: {question}"),
    });
    Prepared { messages, citations }
}

/// The source numbers `[n]` (also `[1, 3]`) an answer cites, limited to `1..=count`.
pub fn cited_numbers(answer: &str, count: usize) -> Vec<usize> {
    let mut cited = Vec::new();
    for group in answer.split('[').skip(1) {
        let Some((inside, _)) = group.split_once(']') else {
            continue;
        };
        for part in inside.split(',') {
            if let Ok(n) = part.trim().parse::<usize>()
                && (1..=count).contains(&n)
                && !cited.contains(&n)
            {
                cited.push(n);
            }
        }
    }
    cited.sort_unstable();
    cited
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(chunk_id: i64, private: bool) -> Hit {
        Hit {
            chunk_id,
            document_id: uuid::Uuid::new_v4(),
            title: Some(format!("doc {chunk_id}")),
            external_id: None,
            metadata: serde_json::json!({"private": private}),
            text: format!("text of chunk {chunk_id}"),
            span: [0, 10],
            score: 1.0,
            retrievers: Vec::new(),
            concepts: Vec::new(),
        }
    }

    #[test]
    fn private_chunks_never_reach_the_prompt_and_numbers_follow_the_sent_ones() {
        let prepared = prepare("why?", &[hit(1, false), hit(2, true), hit(3, false)], &[]);
        let prompt = &prepared.messages.last().expect("user message").content;
        assert!(prompt.contains("text of chunk 1") && prompt.contains("text of chunk 3"));
        assert!(!prompt.contains("text of chunk 2"), "{prompt}");
        assert_eq!(
            prepared.citations.iter().map(|c| c.chunk_id).collect::<Vec<_>>(),
            [1, 3]
        );
        assert!(prompt.contains("[2] doc 3"), "numbered as sent: {prompt}");
        assert!(
            !is_private(&serde_json::json!({"private": "true"})),
            "only the JSON boolean true"
        );
    }

    #[test]
    fn citations_are_read_from_the_answer_within_range() {
        assert_eq!(
            cited_numbers("A [2] and [1, 3]; not [9] or [x] [2]", 3),
            [1, 2, 3]
        );
        assert!(cited_numbers("no sources", 3).is_empty());
    }
}
