//! Token-aware chunking with the model's own tokenizer: every chunk fits the model, so nothing is silently cut.

use serde::{Deserialize, Serialize};
use text_splitter::{ChunkConfig, MarkdownSplitter, TextSplitter};
use tokenizers::Tokenizer;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChunkingConfig {
    /// Largest chunk, in the model's tokens (capped at what the model accepts after its prefix).
    pub max_tokens: usize,
    /// Tokens shared by neighbouring chunks, so a sentence cut at a boundary is still found whole.
    pub overlap_tokens: usize,
}

impl Default for ChunkingConfig {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            overlap_tokens: 32,
        }
    }
}

/// One piece of a document's text and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub text: String,
    /// Offsets in characters (Unicode scalar values) into the extracted text.
    pub char_start: usize,
    pub char_end: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("chunking: {0}")]
    Config(String),
}

/// Splits `text` into chunks of at most `capacity` tokens with `overlap` tokens shared between neighbours.
pub fn split(
    text: &str,
    markdown: bool,
    tokenizer: &Tokenizer,
    capacity: usize,
    overlap: usize,
) -> Result<Vec<Chunk>, ChunkError> {
    let overlap = overlap.min(capacity.saturating_sub(1));
    let config = ChunkConfig::new(capacity.max(1))
        .with_sizer(tokenizer)
        .with_overlap(overlap)
        .map_err(|e| ChunkError::Config(e.to_string()))?;
    let pieces: Vec<(usize, &str)> = if markdown {
        MarkdownSplitter::new(config).chunk_indices(text).collect()
    } else {
        TextSplitter::new(config).chunk_indices(text).collect()
    };
    // Byte offsets to character offsets, walking the text once.
    let mut chunks = Vec::with_capacity(pieces.len());
    let mut chars_before = 0;
    let mut bytes_seen = 0;
    for (byte_start, piece) in pieces {
        chars_before += text[bytes_seen..byte_start].chars().count();
        bytes_seen = byte_start;
        let length = piece.chars().count();
        if piece.trim().is_empty() {
            continue;
        }
        chunks.push(Chunk {
            text: piece.to_owned(),
            char_start: chars_before,
            char_end: chars_before + length,
        });
    }
    Ok(chunks)
}
