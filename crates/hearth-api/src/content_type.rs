//! The document types hearth reads, by media type and by file extension.

use serde::{Deserialize, Serialize};

/// The document types hearth can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ContentType {
    Plain,
    Markdown,
    Html,
    Pdf,
}

/// The media types accepted, as listed in a 415 answer and in `/v1/capabilities`.
pub const SUPPORTED: &[&str] = &["text/plain", "text/markdown", "text/html", "application/pdf"];

impl ContentType {
    /// The type of a media type's essence (`text/plain`, no parameters), or `None` when hearth does not read it.
    pub fn from_essence(essence: &str) -> Option<Self> {
        match essence.trim().to_ascii_lowercase().as_str() {
            "text/plain" => Some(ContentType::Plain),
            "text/markdown" | "text/x-markdown" => Some(ContentType::Markdown),
            "text/html" | "application/xhtml+xml" => Some(ContentType::Html),
            "application/pdf" => Some(ContentType::Pdf),
            _ => None,
        }
    }

    /// The type a file name's extension suggests, for clients uploading files.
    pub fn from_extension(extension: &str) -> Option<Self> {
        match extension.to_ascii_lowercase().as_str() {
            "txt" | "text" => Some(ContentType::Plain),
            "md" | "markdown" => Some(ContentType::Markdown),
            "html" | "htm" | "xhtml" => Some(ContentType::Html),
            "pdf" => Some(ContentType::Pdf),
            _ => None,
        }
    }

    /// The `Content-Type` to send a document of this type with.
    pub fn mime(self) -> &'static str {
        match self {
            ContentType::Plain => "text/plain; charset=utf-8",
            ContentType::Markdown => "text/markdown; charset=utf-8",
            ContentType::Html => "text/html; charset=utf-8",
            ContentType::Pdf => "application/pdf",
        }
    }

    /// The extension an original of this type is downloaded with.
    pub fn extension(self) -> &'static str {
        match self {
            ContentType::Plain => "txt",
            ContentType::Markdown => "md",
            ContentType::Html => "html",
            ContentType::Pdf => "pdf",
        }
    }
}

impl std::fmt::Display for ContentType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.mime())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_media_type_and_its_extension_name_the_same_type() {
        for essence in SUPPORTED {
            let kind = ContentType::from_essence(essence).expect("a supported type parses");
            assert_eq!(ContentType::from_extension(kind.extension()), Some(kind));
            assert!(kind.mime().starts_with(essence), "{kind:?}: {}", kind.mime());
        }
        assert_eq!(ContentType::from_essence("image/png"), None);
        assert_eq!(ContentType::from_extension("exe"), None);
    }
}
