//! The UI's script, style sheet and icon, compiled into hearthd. Pages link them with the content's hash in the
//! query, so a browser may cache them for good and still gets a new version the moment hearthd has one.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const FILES: [(&str, &str, &str); 3] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../ui/app.css"),
    ),
    ("icon.svg", "image/svg+xml", include_str!("../../ui/icon.svg")),
];

/// Each file's sha256, the first 12 hex digits.
static VERSIONS: LazyLock<Vec<String>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(_, _, body)| hearth_core::digest::sha256_hex(body.as_bytes())[..12].to_owned())
        .collect()
});

/// The URL a page links the asset by.
pub fn url(name: &str) -> String {
    let version = FILES
        .iter()
        .position(|(file, _, _)| *file == name)
        .map_or("", |index| VERSIONS[index].as_str());
    format!("/ui/{name}?v={version}")
}

pub async fn serve(Path(file): Path<String>) -> Response {
    let Some((_, content_type, body)) = FILES.iter().find(|(name, _, _)| *name == file) else {
        return crate::error::ApiError::NoRoute {
            path: format!("/ui/{}", file.chars().take(100).collect::<String>()),
        }
        .into_response();
    };
    let mut response = (StatusCode::OK, *body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}
