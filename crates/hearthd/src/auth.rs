//! Who may call what: a bearer token, or a loopback peer when that is trusted, or an open route. The identity goes
//! into the request log line (`observe.rs`) as a token's fingerprint, never the token.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hearth_core::auth::{AuthConfig, Identity, Tokens};
use hearth_core::library::Library;

use crate::error::ApiError;

#[derive(Debug)]
pub struct Auth {
    pub tokens: Tokens,
    pub config: AuthConfig,
}

/// The caller's identity: a bearer token, else loopback trust or an open route, else a signed-in browser's
/// session cookie; or the refusal that says what to send.
/// `library`: where browser sessions are looked up; `None` where a session cookie must not count (the metrics
/// listener, which has no browser guard in front of it).
pub async fn authenticate(
    State((auth, library)): State<(Arc<Auth>, Option<Arc<Library>>)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    // A browser on this box running another site's page is not the box's own client.
    let local = peer.ip().to_canonical().is_loopback()
        && request.extensions().get::<crate::browser::CrossSite>().is_none();
    let bearer = request.headers().get(header::AUTHORIZATION);
    let cross_site = request.extensions().get::<crate::browser::CrossSite>().is_some();
    let identified = match (identify(&auth, local, path, bearer), &library) {
        // A page of another site (even another port of this host) gets nothing through the visitor's session.
        (Err(refusal), Some(library)) if bearer.is_none() && !cross_site => {
            match crate::ui::session_identity(&auth, library, request.method(), request.headers()).await {
                Ok(Some(identity)) => Ok(identity),
                Ok(None) => Err(refusal),
                Err(error) => Err(error),
            }
        }
        (other, _) => other,
    };
    match identified {
        Ok(identity) => {
            request.extensions_mut().insert(identity.clone());
            let mut response = next.run(request).await;
            // For the request log line, written by the outermost middleware.
            response.extensions_mut().insert(identity);
            response
        }
        Err(error) => error.into_response(),
    }
}

/// `local`: the peer is a loopback address and not a browser running another site's page.
fn identify(
    auth: &Auth,
    local: bool,
    path: &str,
    authorization: Option<&header::HeaderValue>,
) -> Result<Identity, ApiError> {
    let open = auth.config.open_routes.iter().any(|route| route == path);
    // Who the caller is without a (valid) token, if that is enough for this route.
    let fallback = if local && auth.config.trust_loopback {
        Some(Identity::Localhost)
    } else if open {
        Some(if local {
            Identity::Localhost
        } else {
            Identity::Anonymous
        })
    } else {
        None
    };
    let Some(value) = authorization else {
        return fallback.ok_or_else(|| {
            ApiError::Unauthorized(
                "this route needs a bearer token: send `Authorization: Bearer <token>` with this appliance's \
                 api-token (on the box: /var/lib/hearth/secrets/api-token, readable by root)"
                    .into(),
            )
        });
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    if let Some(identity) = presented.and_then(|token| auth.tokens.verify(token.trim().as_bytes())) {
        return Ok(identity);
    }
    if let Some(identity) = presented.and_then(|token| auth.tokens.verify_fleet(token.trim().as_bytes())) {
        if hearth_core::auth::FLEET_ROUTES.contains(&path) {
            return Ok(identity);
        }
        return fallback.ok_or_else(|| {
            ApiError::Unauthorized(format!(
                "the fleet token opens only {}: use this appliance's api-token for {path}",
                hearth_core::auth::FLEET_ROUTES.join(", ")
            ))
        });
    }
    // OpenAI-style clients always send some key: where no token is needed, a wrong one changes nothing.
    fallback.ok_or_else(|| {
        ApiError::Unauthorized(match presented {
            None => "the Authorization header must be `Bearer <token>`".into(),
            Some(_) => "the bearer token is not valid here: use this appliance's api-token \
                        (`hearth-firstboot status` shows its fingerprint)"
                .into(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const TOKEN: &str = "a-token-that-is-long-enough-to-be-accepted-000";

    fn auth(trust_loopback: bool) -> Auth {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("api-token");
        std::fs::write(&path, TOKEN).expect("write");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o400)).expect("chmod");
        let config = AuthConfig {
            token_files: vec![path],
            trust_loopback,
            ..AuthConfig::default()
        };
        Auth {
            tokens: Tokens::load(&config, None).expect("tokens"),
            config,
        }
    }

    fn who(auth: &Auth, peer: &str, path: &str, header: Option<&str>) -> Result<Identity, String> {
        let header = header.map(|h| HeaderValue::from_str(h).expect("header"));
        let peer: SocketAddr = peer.parse().expect("addr");
        identify(
            auth,
            peer.ip().to_canonical().is_loopback(),
            path,
            header.as_ref(),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn lan_callers_need_the_token_except_on_open_routes() {
        let auth = auth(true);
        let lan = "192.168.1.20:50000";
        let bearer = format!("Bearer {TOKEN}");
        assert!(
            who(&auth, lan, "/metrics", None)
                .expect_err("no token")
                .contains("needs a bearer token")
        );
        let wrong = who(
            &auth,
            lan,
            "/metrics",
            Some("Bearer wrong-wrong-wrong-wrong-wrong-wrong"),
        );
        assert!(wrong.expect_err("wrong token").contains("not valid here"));
        let basic = who(&auth, lan, "/metrics", Some("Basic abc"));
        assert!(basic.expect_err("basic").contains("Bearer <token>"));
        let fingerprint = hearth_core::digest::fingerprint(TOKEN.as_bytes());
        assert_eq!(
            who(&auth, lan, "/metrics", Some(&bearer)),
            Ok(Identity::Token(fingerprint))
        );
        assert_eq!(who(&auth, lan, "/healthz", None), Ok(Identity::Anonymous));
        assert_eq!(
            who(&auth, lan, "/healthz", Some("Bearer wrong")),
            Ok(Identity::Anonymous)
        );
    }

    #[test]
    fn loopback_is_trusted_only_when_configured() {
        let trusting = auth(true);
        for peer in ["127.0.0.1:1", "[::1]:1", "[::ffff:127.0.0.1]:1"] {
            assert_eq!(
                who(&trusting, peer, "/metrics", None),
                Ok(Identity::Localhost),
                "{peer}"
            );
            assert_eq!(
                who(&trusting, peer, "/metrics", Some("Bearer sk-x")),
                Ok(Identity::Localhost)
            );
        }
        let strict = auth(false);
        assert!(who(&strict, "127.0.0.1:1", "/metrics", None).is_err());
        assert_eq!(
            who(&strict, "127.0.0.1:1", "/healthz", None),
            Ok(Identity::Localhost)
        );
    }
}
