//! One extraction request: the numbered chunks in a prompt, the JSON schema the answer must follow, and the
//! answer read back, checked against the same bounds whatever the provider did with the schema.

use hearth_api::concepts::RELATIONS;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::reasoning::Message;
use crate::store::concepts::SourceChunk;

/// Most concepts one request may name.
pub const MAX_CONCEPTS: usize = 12;
/// Most relations one request may name.
pub const MAX_RELATIONS: usize = 12;
/// The longest concept name or alias kept, in characters.
pub const MAX_NAME_CHARS: usize = 60;
/// Most aliases one concept may bring.
pub const MAX_ALIASES: usize = 3;

const INSTRUCTIONS: &str = "You build a concept map of a library. Read the numbered passages and name the concepts \
they talk about: people, places, organisations, techniques, ideas; not generic words. Name each concept as the \
text does, in at most 60 characters, with up to 3 other names the text uses for it, and list the numbers of the \
passages that mention it. Then list relations between your concepts by their positions in your list (1 is the \
first concept), each one of: is_a, part_of, uses, causes, contrasts_with, related_to. Answer with JSON only, \
following the schema.";

/// The prompt for these chunks, numbered from 1.
pub fn messages(chunks: &[SourceChunk]) -> Vec<Message> {
    let passages: Vec<String> = chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| format!("[{}] {}", i + 1, chunk.text))
        .collect();
    vec![
        Message {
            role: "system",
            content: INSTRUCTIONS.to_owned(),
        },
        Message {
            role: "user",
            content: passages.join("\n\n"),
        },
    ]
}

/// The answer's JSON schema for `passages` numbered passages: every list bounded and every number an enum, so a
/// grammar-constrained provider can only produce an answer of bounded size that this side accepts.
pub fn schema(passages: usize) -> Value {
    let passage_numbers: Vec<usize> = (1..=passages.max(1)).collect();
    let concept_numbers: Vec<usize> = (1..=MAX_CONCEPTS).collect();
    let name = json!({"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS});
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["concepts", "relations"],
        "properties": {
            "concepts": {
                "type": "array",
                "maxItems": MAX_CONCEPTS,
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name", "aliases", "passages"],
                    "properties": {
                        "name": name,
                        "aliases": {"type": "array", "maxItems": MAX_ALIASES, "items": name},
                        "passages": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": passages.max(1),
                            "items": {"type": "integer", "enum": passage_numbers},
                        },
                    },
                },
            },
            "relations": {
                "type": "array",
                "maxItems": MAX_RELATIONS,
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["source", "relation", "target"],
                    "properties": {
                        "source": {"type": "integer", "enum": concept_numbers},
                        "relation": {"type": "string", "enum": RELATIONS},
                        "target": {"type": "integer", "enum": concept_numbers},
                    },
                },
            },
        },
    })
}

#[derive(Debug, Deserialize)]
struct RawAnswer {
    concepts: Vec<RawConcept>,
    #[serde(default)]
    relations: Vec<RawRelation>,
}

#[derive(Debug, Deserialize)]
struct RawConcept {
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    passages: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct RawRelation {
    source: Value,
    relation: String,
    target: Value,
}

/// A concept as kept: its name cleaned, its aliases, and the chunks (indexes into the request's) it is in.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub name: String,
    pub aliases: Vec<String>,
    pub chunks: Vec<usize>,
}

/// A relation between two kept concepts (indexes into [`Extracted::concepts`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FoundRelation {
    pub source: usize,
    pub relation: &'static str,
    pub target: usize,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extracted {
    pub concepts: Vec<Found>,
    pub relations: Vec<FoundRelation>,
}

/// Reads a provider's answer for `passages` chunks. Not JSON or not the schema's shape is an error (the provider
/// is asked again later); within the shape, whatever is out of bounds (an unknown passage, an empty name, a
/// relation to nothing) is dropped rather than trusted.
pub fn parse(content: &str, passages: usize) -> Result<Extracted, String> {
    let raw: RawAnswer = serde_json::from_str(strip_fence(content))
        .map_err(|e| format!("the provider's answer does not follow the concept schema: {e}"))?;
    let mut extracted = Extracted::default();
    // Positions in the provider's list, 1-based, to the kept concepts' indexes.
    let mut kept_at = vec![None; raw.concepts.len().min(MAX_CONCEPTS) + 1];
    for (position, concept) in raw.concepts.into_iter().take(MAX_CONCEPTS).enumerate() {
        let Some(name) = clean_name(&concept.name) else {
            continue;
        };
        let mut chunks: Vec<usize> = concept
            .passages
            .iter()
            .filter_map(Value::as_u64)
            .filter(|n| (1..=passages as u64).contains(n))
            .map(|n| n as usize - 1)
            .collect();
        chunks.sort_unstable();
        chunks.dedup();
        if chunks.is_empty() {
            continue;
        }
        let key = normalize(&name);
        let mut aliases: Vec<String> = Vec::new();
        for alias in concept
            .aliases
            .iter()
            .take(MAX_ALIASES)
            .filter_map(|a| clean_name(a))
        {
            let alias_key = normalize(&alias);
            if alias_key != key && !aliases.iter().any(|a| normalize(a) == alias_key) {
                aliases.push(alias);
            }
        }
        kept_at[position + 1] = Some(extracted.concepts.len());
        extracted.concepts.push(Found {
            name,
            aliases,
            chunks,
        });
    }
    let kept = |position: &Value| {
        position
            .as_u64()
            .and_then(|p| kept_at.get(p as usize).copied().flatten())
    };
    for relation in raw.relations.into_iter().take(MAX_RELATIONS) {
        let known = RELATIONS.iter().find(|r| **r == relation.relation.trim());
        if let (Some(source), Some(target), Some(known)) =
            (kept(&relation.source), kept(&relation.target), known)
            && source != target
        {
            extracted.relations.push(FoundRelation {
                source,
                relation: known,
                target,
            });
        }
    }
    Ok(extracted)
}

/// Some models wrap JSON in a Markdown fence even when told not to.
fn strip_fence(content: &str) -> &str {
    let trimmed = content.trim();
    trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.strip_suffix("```"))
        .map_or(trimmed, str::trim)
}

/// A name as stored: no control characters, single spaces, at most [`MAX_NAME_CHARS`]; `None` if nothing is left.
pub fn clean_name(name: &str) -> Option<String> {
    let words: Vec<&str> = name
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect();
    let cleaned: String = words.join(" ").chars().take(MAX_NAME_CHARS).collect();
    let cleaned = cleaned.trim().to_owned();
    cleaned.chars().any(char::is_alphanumeric).then_some(cleaned)
}

/// What makes two names one concept: lower case, single spaces.
pub fn normalize(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Where the chunk says one of the names: document character offsets of the first occurrence (case-insensitive),
/// and `true`; else the whole chunk and `false`.
pub fn locate(chunk: &SourceChunk, names: &[&str]) -> ((i32, i32), bool) {
    let haystack: Vec<char> = chunk.text.chars().flat_map(char::to_lowercase).collect();
    // Lower-casing can change the length of some characters: only trust offsets when it did not.
    if haystack.len() == chunk.text.chars().count() {
        for name in names {
            let needle: Vec<char> = name.chars().flat_map(char::to_lowercase).collect();
            if needle.is_empty() || needle.len() > haystack.len() {
                continue;
            }
            if let Some(at) = haystack
                .windows(needle.len())
                .position(|w| w == needle.as_slice())
            {
                let start = chunk.char_start + at as i32;
                return ((start, start + needle.len() as i32), true);
            }
        }
    }
    ((chunk.char_start, chunk.char_end), false)
}

/// A rough token count for a budget check before anything is sent: about four characters a token.
pub fn estimate_tokens(messages: &[Message], max_output_tokens: u32) -> u64 {
    let chars: usize = messages.iter().map(|m| m.content.chars().count()).sum();
    (chars as u64).div_ceil(4) + 64 + u64::from(max_output_tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(text: &str, start: i32) -> SourceChunk {
        SourceChunk {
            id: 1,
            text: text.into(),
            char_start: start,
            char_end: start + text.chars().count() as i32,
        }
    }

    #[test]
    fn answers_are_kept_within_bounds_and_relations_follow_kept_concepts() {
        let answer = r#"```json
        {"concepts": [
            {"name": "  Harbour\u0007 lights ", "aliases": ["harbour  LIGHTS", "beacons"], "passages": [2, 9, 2]},
            {"name": "   ", "aliases": [], "passages": [1]},
            {"name": "Tides", "aliases": [], "passages": [0, 7]},
            {"name": "Fog", "aliases": [], "passages": [1]}
         ],
         "relations": [
            {"source": 1, "relation": "causes", "target": 4},
            {"source": 1, "relation": "causes", "target": 2},
            {"source": 4, "relation": "eats", "target": 1},
            {"source": 4, "relation": "part_of", "target": 4}
         ]}
        ```"#;
        let extracted = parse(answer, 3).expect("parses");
        assert_eq!(
            extracted.concepts,
            [
                Found {
                    name: "Harbour lights".into(),
                    aliases: vec!["beacons".into()],
                    chunks: vec![1],
                },
                Found {
                    name: "Fog".into(),
                    aliases: vec![],
                    chunks: vec![0],
                },
            ],
            "an empty name and a concept in no known passage are dropped, as is an alias equal to the name"
        );
        assert_eq!(
            extracted.relations,
            [FoundRelation {
                source: 0,
                relation: "causes",
                target: 1
            }],
            "relations to dropped concepts, unknown types and self-loops are dropped"
        );
        assert!(parse("{\"concepts\": \"none\"}", 3).is_err());
        assert!(parse("the concepts are fog and tides", 3).is_err());
    }

    #[test]
    fn a_name_is_located_in_its_chunk_or_the_chunk_stands_for_it() {
        let text = chunk("The Harbour Lights shine.", 100);
        assert_eq!(locate(&text, &["harbour lights"]), ((104, 118), true));
        assert_eq!(locate(&text, &["lighthouse", "shine"]), ((119, 124), true));
        assert_eq!(locate(&text, &["fog"]), ((100, 125), false));
        assert_eq!(normalize(" Harbour\tLIGHTS "), "harbour lights");
        assert_eq!(clean_name("\u{1}\u{2}"), None);
        assert_eq!(
            clean_name(&"x".repeat(200)).map(|n| n.len()),
            Some(MAX_NAME_CHARS)
        );
    }

    #[test]
    fn the_schema_bounds_every_list_and_numbers_only_real_passages() {
        let schema = schema(3);
        let concepts = &schema["properties"]["concepts"];
        assert_eq!(concepts["maxItems"], MAX_CONCEPTS);
        assert_eq!(
            concepts["items"]["properties"]["passages"]["items"]["enum"],
            json!([1, 2, 3])
        );
        assert_eq!(
            concepts["items"]["properties"]["name"]["maxLength"],
            MAX_NAME_CHARS
        );
        assert_eq!(
            schema["properties"]["relations"]["items"]["properties"]["relation"]["enum"],
            json!(RELATIONS)
        );
    }
}
