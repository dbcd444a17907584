//! From an original's bytes to the plain text that is chunked and searched. Parsing PDF and HTML is done by
//! [`Sandbox`] in a child process, since a hostile file can crash or exhaust a parser; [`ContentType::extract`]
//! is what that child runs.

mod child;
mod sandbox;

pub use child::run_child;
pub use sandbox::{ExtractFailure, ExtractionLimits, Sandbox};

pub use hearth_api::content_type::{ContentType, SUPPORTED};

/// Why a document's text cannot be had; the same whichever process finds it (the sandbox's child sends it back).
#[derive(Debug, thiserror::Error, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExtractError {
    #[error("unsupported content type '{0}': hearth reads {list}", list = SUPPORTED.join(", "))]
    Unsupported(String),
    #[error("the document is empty")]
    Empty,
    #[error("the document is not valid UTF-8 (first bad byte at offset {offset}); send UTF-8 text")]
    InvalidUtf8 { offset: usize },
    #[error("charset '{0}' is not supported for text: send UTF-8")]
    Charset(String),
    #[error("the PDF cannot be read: {0}")]
    Pdf(String),
    #[error("the HTML cannot be read: {0}")]
    Html(String),
    #[error("no text found in the document (a scanned PDF without a text layer, or markup without content?)")]
    NoText,
    #[error(
        "the PDF has {pages} pages; at most {max} are read (ingest.extraction.max_pages): split it, or raise the limit"
    )]
    TooManyPages { pages: usize, max: usize },
    #[error("the PDF is encrypted with a password: upload it without the password protection")]
    Encrypted,
}

/// What hearth does with a [`ContentType`]: parse a header into one, check and extract a document's text.
pub trait ContentTypeExt: Sized {
    /// Parses a `Content-Type` value; parameters other than a UTF-8 charset are ignored.
    fn parse(value: &str) -> Result<Self, ExtractError>;
    /// Checks at upload time what can be checked cheaply, so bad input is a 4xx and not a failed job.
    fn validate(self, bytes: &[u8]) -> Result<(), ExtractError>;
    /// Whether extracting this type parses the bytes (and so runs in the sandbox), or only checks UTF-8.
    fn needs_parser(self) -> bool;
    /// The document's text. Blocking, and for PDF and HTML a parser run on untrusted bytes: hearthd calls it only
    /// in the sandbox's child ([`Sandbox`]).
    fn extract(self, bytes: &[u8], max_pages: usize) -> Result<String, ExtractError>;
}

impl ContentTypeExt for ContentType {
    fn parse(value: &str) -> Result<Self, ExtractError> {
        let mut parts = value.split(';');
        let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let content_type = ContentType::from_essence(&essence).ok_or(ExtractError::Unsupported(essence))?;
        for parameter in parts {
            if let Some((key, charset)) = parameter.split_once('=')
                && key.trim().eq_ignore_ascii_case("charset")
            {
                let charset = charset.trim().trim_matches('"').to_ascii_lowercase();
                if content_type != ContentType::Pdf && charset != "utf-8" && charset != "us-ascii" {
                    return Err(ExtractError::Charset(charset));
                }
            }
        }
        Ok(content_type)
    }

    fn validate(self, bytes: &[u8]) -> Result<(), ExtractError> {
        if bytes.is_empty() {
            return Err(ExtractError::Empty);
        }
        if self != ContentType::Pdf {
            let text = std::str::from_utf8(bytes).map_err(|e| ExtractError::InvalidUtf8 {
                offset: e.valid_up_to(),
            })?;
            if text.trim().is_empty() {
                return Err(ExtractError::Empty);
            }
        }
        Ok(())
    }

    fn needs_parser(self) -> bool {
        matches!(self, ContentType::Html | ContentType::Pdf)
    }

    fn extract(self, bytes: &[u8], max_pages: usize) -> Result<String, ExtractError> {
        let text = match self {
            ContentType::Plain | ContentType::Markdown => {
                let text = std::str::from_utf8(bytes).map_err(|e| ExtractError::InvalidUtf8 {
                    offset: e.valid_up_to(),
                })?;
                text.strip_prefix('\u{feff}').unwrap_or(text).to_owned()
            }
            ContentType::Html => html_text(bytes)?,
            ContentType::Pdf => pdf_text(bytes, max_pages)?,
        };
        if text.trim().is_empty() {
            return Err(ExtractError::NoText);
        }
        Ok(text)
    }
}

/// Readable text of an HTML page: scripts, styles and markup dropped, block structure kept as line breaks.
fn html_text(bytes: &[u8]) -> Result<String, ExtractError> {
    std::str::from_utf8(bytes).map_err(|e| ExtractError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    // Wide enough that html2text never re-wraps paragraphs (wrapping would split sentences mid-phrase).
    let text = html2text::config::plain()
        .no_link_wrapping()
        .string_from_read(bytes, 10_000)
        .map_err(|e| ExtractError::Html(e.to_string()))?;
    Ok(text)
}

fn pdf_text(bytes: &[u8], max_pages: usize) -> Result<String, ExtractError> {
    // pdf-extract panics on some malformed files: that is a readable failure, not a crash of the child.
    let result = std::panic::catch_unwind(|| {
        let mut document =
            pdf_extract::Document::load_mem(bytes).map_err(|e| ExtractError::Pdf(e.to_string()))?;
        if document.is_encrypted() && document.decrypt("").is_err() {
            return Err(ExtractError::Encrypted);
        }
        let pages = document.get_pages().len();
        if pages > max_pages {
            return Err(ExtractError::TooManyPages {
                pages,
                max: max_pages,
            });
        }
        let mut text = String::new();
        pdf_extract::output_doc(&document, &mut pdf_extract::PlainTextOutput::new(&mut text))
            .map_err(|e| ExtractError::Pdf(e.to_string()))?;
        Ok(text)
    });
    match result {
        Ok(outcome) => outcome,
        Err(_) => Err(ExtractError::Pdf(
            "the parser gave up on this file (malformed PDF)".into(),
        )),
    }
}
