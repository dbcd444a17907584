//! Marking the query's words in a passage, so a person sees why it was found.

use maud::{Markup, html};

/// Words too common to be worth marking.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "how", "in", "is", "it", "of", "on",
    "or", "that", "the", "this", "to", "was", "what", "when", "where", "which", "who", "why", "with",
];

/// Most distinct words of a query that are marked: the work is words × terms, and a query may be 4096 characters.
const MAX_TERMS: usize = 32;

fn terms(query: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()).map(str::to_lowercase) {
        if !word.is_empty() && !STOPWORDS.contains(&word.as_str()) && !terms.contains(&word) {
            terms.push(word);
        }
        if terms.len() == MAX_TERMS {
            break;
        }
    }
    terms
}

/// A word matches a term when they are equal or, both being at least 4 characters long, one begins with the
/// other ("tide" finds "tides").
fn matches(word: &str, terms: &[String]) -> bool {
    let word = word.to_lowercase();
    terms.iter().any(|term| {
        word == *term
            || (word.chars().count().min(term.chars().count()) >= 4
                && (word.starts_with(term.as_str()) || term.starts_with(word.as_str())))
    })
}

/// `text` split into runs, each marked or not.
fn runs<'a>(text: &'a str, query: &str) -> Vec<(bool, &'a str)> {
    let terms = terms(query);
    let mut runs: Vec<(bool, &'a str)> = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut index = 0;
    while index < chars.len() {
        let (at, c) = chars[index];
        if c.is_alphanumeric() {
            let mut end = index;
            while end < chars.len() && chars[end].1.is_alphanumeric() {
                end += 1;
            }
            let until = chars.get(end).map_or(text.len(), |(offset, _)| *offset);
            let word = &text[at..until];
            if !terms.is_empty() && matches(word, &terms) {
                if start < at {
                    runs.push((false, &text[start..at]));
                }
                runs.push((true, word));
                start = until;
            }
            index = end;
        } else {
            index += 1;
        }
    }
    if start < text.len() {
        runs.push((false, &text[start..]));
    }
    runs
}

/// The whole passage with the query's words in `<mark>`.
pub fn highlighted(text: &str, query: &str) -> Markup {
    html! {
        @for (marked, piece) in runs(text, query) {
            @if marked { mark { (piece) } } @else { (piece) }
        }
    }
}

/// About `width` characters of the passage around its first marked word, with the query's words marked.
pub fn excerpt(text: &str, query: &str, width: usize) -> Markup {
    let runs = runs(text, query);
    let total = text.chars().count();
    // No word marked (a hit by meaning alone): the passage's beginning.
    let from = match runs.iter().position(|(marked, _)| *marked) {
        Some(first) => {
            let before: usize = runs[..first].iter().map(|(_, piece)| piece.chars().count()).sum();
            before.saturating_sub(width / 3).min(total.saturating_sub(width))
        }
        None => 0,
    };
    let window: String = text.chars().skip(from).take(width).collect();
    html! {
        @if from > 0 { "… " }
        (highlighted(&window, query))
        @if from + width < total { " …" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_querys_words_are_marked_and_common_words_are_not() {
        let marked = |text, query| {
            runs(text, query)
                .into_iter()
                .filter(|(m, _)| *m)
                .map(|(_, p)| p.to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            marked(
                "The tides of the harbour rise twice a day.",
                "when do the tide rise"
            ),
            ["tides", "rise"]
        );
        assert_eq!(marked("Ångström units", "ångström"), ["Ångström"]);
        assert!(marked("nothing in common", "harbour").is_empty());
        assert!(marked("anything", "").is_empty());
        let all: String = runs("a <b> & c", "b").into_iter().map(|(_, p)| p).collect();
        assert_eq!(all, "a <b> & c", "the runs cover the text exactly");
    }

    #[test]
    fn markup_is_escaped_and_the_excerpt_centres_on_the_first_match() {
        let html = highlighted("<script>alert(1)</script> tide", "tide").into_string();
        assert_eq!(html, "&lt;script&gt;alert(1)&lt;/script&gt; <mark>tide</mark>");
        let long = format!("{} harbour {}", "x ".repeat(300), "y ".repeat(300));
        let excerpt = excerpt(&long, "harbour", 120).into_string();
        assert!(excerpt.starts_with("… ") && excerpt.ends_with(" …"), "{excerpt}");
        assert!(excerpt.contains("<mark>harbour</mark>"), "{excerpt}");
        let unmarked = super::excerpt(&long, "lighthouse", 120).into_string();
        assert!(
            unmarked.starts_with("x x") && unmarked.ends_with(" …"),
            "{unmarked}"
        );
        let many: String = (0..1000).map(|i| format!("w{i} ")).collect();
        assert_eq!(terms(&many).len(), MAX_TERMS);
    }
}
