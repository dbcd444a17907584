//! Known-item retrieval corpora built from text that packages on this machine ship, for the quality test and
//! `cargo xtask bench quality`. Each item is a document and a query that describes it without quoting it; the
//! item's own document is the one right answer. The scripts that build them are in `corpora/`.

use std::path::Path;
use std::process::Command;

use serde::Deserialize;

use crate::{KitError, test_python};

#[derive(Debug, Clone, Deserialize)]
pub struct KnownItem {
    /// Unique within a corpus: how a hit is matched to its item.
    pub title: String,
    pub query: String,
    pub text: String,
}

/// Where a corpus's text comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corpus {
    /// Python standard library modules' documentation, queried by each module's one-line summary.
    PythonStdlib,
    /// Linux man-pages (Debian's manpages-dev) of a section, queried by each page's NAME description.
    ManPages { section: u8 },
}

impl Corpus {
    pub fn name(self) -> String {
        match self {
            Corpus::PythonStdlib => "Python standard library docs".into(),
            Corpus::ManPages { section } => format!("Linux man-pages, section {section}"),
        }
    }

    /// The first `count` items (fewer if the machine has fewer).
    pub fn load(self, count: usize) -> Result<Vec<KnownItem>, KitError> {
        let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpora");
        let mut command = Command::new(test_python()?);
        match self {
            Corpus::PythonStdlib => command.arg(scripts.join("stdlib_corpus.py")),
            Corpus::ManPages { section } => command
                .arg(scripts.join("manpages_corpus.py"))
                .arg(section.to_string()),
        };
        let output = command
            .arg(count.to_string())
            .output()
            .map_err(KitError::io(format!("building the corpus '{}'", self.name())))?;
        if !output.status.success() {
            return Err(KitError::Command {
                command: format!("{command:?}"),
                status: output.status.to_string(),
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        serde_json::from_slice(&output.stdout).map_err(|error| KitError::Command {
            command: format!("{command:?}"),
            status: "output is not the corpus JSON".into(),
            output: error.to_string(),
        })
    }
}

/// recall@k and mean reciprocal rank (within the first k) of a known-item run. `ranked[i]` holds the titles of
/// the documents found for item i, best first; a document found more than once (several chunks) counts once,
/// at its best rank.
pub fn known_item_scores(items: &[KnownItem], ranked: &[Vec<String>], k: usize) -> (f64, f64) {
    let (mut found, mut reciprocal) = (0usize, 0f64);
    for (item, titles) in items.iter().zip(ranked) {
        let mut seen: Vec<&str> = Vec::new();
        for title in titles {
            if !seen.contains(&title.as_str()) {
                seen.push(title);
            }
        }
        if let Some(rank) = seen.iter().take(k).position(|t| *t == item.title) {
            found += 1;
            reciprocal += 1.0 / (rank as f64 + 1.0);
        }
    }
    let n = items.len().max(1) as f64;
    (found as f64 / n, reciprocal / n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(title: &str) -> KnownItem {
        KnownItem {
            title: title.into(),
            query: String::new(),
            text: String::new(),
        }
    }

    #[test]
    fn repeated_documents_count_once_at_their_best_rank() {
        let items = [item("a"), item("b"), item("c")];
        let ranked = [
            vec!["a".to_owned(), "x".into()],
            vec!["x".into(), "x".into(), "y".into(), "b".into()],
            vec!["x".into(), "y".into(), "z".into(), "c".into()],
        ];
        let (recall, mrr) = known_item_scores(&items, &ranked, 3);
        // a at 1, b at 3 (x counted once), c at 4: beyond k.
        assert!((recall - 2.0 / 3.0).abs() < 1e-9, "{recall}");
        assert!((mrr - (1.0 + 1.0 / 3.0) / 3.0).abs() < 1e-9, "{mrr}");
    }
}
