//! A browser is hostile until proven otherwise, for the whole API: a page on another name must not reach hearthd
//! by pointing a name it controls at the box (DNS rebinding), nor make a visitor's browser change anything here
//! (cross-site requests), nor get hearth's trust in loopback callers by running in a browser on the box, nor have
//! an uploaded page run as hearth's own. Every response carries headers that keep it from being framed, sniffed
//! or run.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The names a request's `Host` may carry.
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    names: Vec<String>,
}

impl AllowedHosts {
    /// Loopback's names, this machine's host name and its mDNS name, `hearth.local`, and `extra`
    /// (`api.allowed_hosts`); IP addresses are always allowed (a rebinding page cannot send one as its Host).
    pub fn new(extra: &[String]) -> Self {
        let hostname = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .to_ascii_lowercase();
        let mut names = vec!["localhost".to_owned(), "hearth.local".to_owned()];
        if !hostname.is_empty() {
            names.push(format!("{hostname}.local"));
            names.push(hostname);
        }
        names.extend(extra.iter().map(|name| name.trim().to_ascii_lowercase()));
        Self { names }
    }

    fn allows(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        host.parse::<IpAddr>().is_ok() || host.ends_with(".localhost") || self.names.contains(&host)
    }
}

/// `host[:port]`, `[v6]:port` → the host.
fn host_part(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.rsplit_once(':').map_or(authority, |(host, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            host
        } else {
            authority
        }
    })
}

/// Marks a request that a browser made on behalf of another site: loopback trust does not apply to it.
#[derive(Debug, Clone, Copy)]
pub struct CrossSite;

/// Outermost after the header checks: the Host allowlist, cross-site refusals, and the response headers.
pub async fn guard(State(hosts): State<Arc<AllowedHosts>>, mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok());
    if let Some(host) = host
        && !hosts.allows(host_part(host))
    {
        return secured(
            ApiError::Forbidden {
                code: hearth_api::ErrorCode::HostNotAllowed,
                message: format!(
                    "this hearth does not answer to the name '{}': if you reach it by that name, add it to \
                     api.allowed_hosts",
                    host_part(host).chars().take(100).collect::<String>()
                ),
            }
            .into_response(),
        );
    }
    let cross_site = cross_site(headers, host, &hosts);
    let changes_state = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if cross_site && changes_state {
        return secured(
            ApiError::Forbidden {
                code: hearth_api::ErrorCode::CrossSite,
                message:
                    "a request from another site's page cannot change anything here: call the API from a \
                          client, or from a page hearth serves"
                        .into(),
            }
            .into_response(),
        );
    }
    if cross_site {
        request.extensions_mut().insert(CrossSite);
    }
    secured(next.run(request).await)
}

/// Whether a browser says the request comes from another site: `Sec-Fetch-Site: cross-site` (or `same-site`,
/// another name under the same registrable domain), or an `Origin` that is not this Host on an allowed name.
fn cross_site(headers: &HeaderMap, host: Option<&str>, hosts: &AllowedHosts) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|value| value.to_str().ok())
        .map(str::to_ascii_lowercase);
    if matches!(fetch_site.as_deref(), Some("cross-site" | "same-site")) {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let authority = origin
        .to_str()
        .ok()
        .and_then(|origin| origin.split_once("://"))
        .map(|(_, authority)| authority.trim_end_matches('/'));
    match (authority, host) {
        (Some(authority), Some(host)) => {
            !authority.eq_ignore_ascii_case(host) || !hosts.allows(host_part(authority))
        }
        // `Origin: null` (a sandboxed frame, a file) or no Host to compare with.
        _ => true,
    }
}

/// Headers every response carries: nothing hearthd answers is to be sniffed into another type, framed, or run as
/// a page with hearth's origin, and no URL of it leaks in a Referer.
fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'; sandbox",
        ));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Pages say `same-origin` instead: under `no-referrer` a browser sends their own form posts as `Origin: null`.
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("no-referrer"));
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> AllowedHosts {
        AllowedHosts::new(&["notes.example.org".to_owned()])
    }

    #[test]
    fn loopback_addresses_local_names_and_configured_ones_are_allowed_and_nothing_else() {
        let hosts = hosts();
        for host in [
            "localhost",
            "127.0.0.1",
            "::1",
            "192.168.1.7",
            "hearth.local",
            "notes.example.org",
            "app.localhost",
        ] {
            assert!(hosts.allows(host), "{host}");
        }
        for host in [
            "evil.example",
            "hearth.local.evil.example",
            "notes.example.org.evil",
            "",
        ] {
            assert!(!hosts.allows(host), "{host}");
        }
        assert_eq!(host_part("hearth.local:8080"), "hearth.local");
        assert_eq!(host_part("[::1]:8080"), "::1");
        assert_eq!(host_part("127.0.0.1"), "127.0.0.1");
    }

    #[test]
    fn an_origin_is_foreign_unless_it_is_this_host_on_an_allowed_name() {
        let hosts = hosts();
        let with = |pairs: &[(&str, &str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(
                    axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                    HeaderValue::from_str(value).expect("value"),
                );
            }
            headers
        };
        let host = Some("hearth.local:8080");
        assert!(
            !cross_site(&with(&[]), host, &hosts),
            "no Origin: not a browser's cross-site request"
        );
        assert!(!cross_site(
            &with(&[("origin", "http://hearth.local:8080")]),
            host,
            &hosts
        ));
        assert!(cross_site(
            &with(&[("origin", "https://evil.example")]),
            host,
            &hosts
        ));
        assert!(cross_site(
            &with(&[("origin", "http://hearth.local:9999")]),
            host,
            &hosts
        ));
        assert!(cross_site(&with(&[("origin", "null")]), host, &hosts));
        assert!(cross_site(
            &with(&[("sec-fetch-site", "cross-site")]),
            host,
            &hosts
        ));
        assert!(!cross_site(
            &with(&[("sec-fetch-site", "same-origin")]),
            host,
            &hosts
        ));
    }
}
