//! One log line and the HTTP series for every request, whoever answered it (a limit, authentication or a
//! handler), and the series read at scrape time: documents by status, the database pool, build info.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use hearth_core::auth::Identity;
use hearth_core::library::{Library, LibraryError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::capabilities::git_revision;

const DOCUMENT_STATUSES: [&str; 4] = ["pending", "processing", "ready", "failed"];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The route pattern (`/v1/documents/{id}`), never the raw path, so ids do not multiply series.
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabel {
    pub state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: &'static str,
    pub revision: &'static str,
}

#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabel, Histogram>,
    documents: Family<StatusLabel, Gauge>,
    pool_connections: Family<PoolLabel, Gauge>,
    pool_max: Gauge,
}

impl HttpMetrics {
    /// Registers `hearth_http_*`, `hearth_documents`, `hearth_db_pool_*` and `hearth_build_info`.
    pub fn register(registry: &mut Registry, pool_max: u32) -> Arc<Self> {
        let metrics = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.5, 16))),
            documents: Family::default(),
            pool_connections: Family::default(),
            pool_max: Gauge::default(),
        };
        metrics.pool_max.set(i64::from(pool_max));
        for status in DOCUMENT_STATUSES {
            drop(metrics.documents.get_or_create(&StatusLabel {
                status: status.into(),
            }));
        }
        for state in ["idle", "in_use"] {
            drop(metrics.pool_connections.get_or_create(&PoolLabel { state }));
        }
        registry.register(
            "hearth_http_requests",
            "HTTP requests answered, by method, route and status",
            metrics.requests.clone(),
        );
        registry.register(
            "hearth_http_request_duration_seconds",
            "Time to answer an HTTP request (until the response head), by route",
            metrics.duration.clone(),
        );
        registry.register(
            "hearth_documents",
            "Documents by status (pending, processing, ready, failed), read at scrape time",
            metrics.documents.clone(),
        );
        registry.register(
            "hearth_db_pool_connections",
            "Database pool connections by state (idle, in_use)",
            metrics.pool_connections.clone(),
        );
        registry.register(
            "hearth_db_pool_max_connections",
            "Most connections the database pool opens",
            metrics.pool_max.clone(),
        );
        // An OpenMetrics info series: `hearth_build_info{version, revision} 1`.
        let build = Info::new(BuildLabels {
            version: env!("CARGO_PKG_VERSION"),
            revision: git_revision(),
        });
        registry.register("hearth_build", "hearthd's version and source revision", build);
        Arc::new(metrics)
    }

    /// Reads what is only known by asking: document counts (skipped, keeping the last values, when the database
    /// does not answer within a second) and the pool's connections.
    pub async fn refresh(&self, library: &Library) {
        let (size, idle) = library.connections();
        let size = i64::from(size);
        let idle = i64::try_from(idle).unwrap_or(i64::MAX);
        self.pool_connections
            .get_or_create(&PoolLabel { state: "idle" })
            .set(idle);
        self.pool_connections
            .get_or_create(&PoolLabel { state: "in_use" })
            .set(size - idle);
        let counts = library.document_counts();
        match tokio::time::timeout(Duration::from_secs(1), counts).await {
            Ok(Ok(rows)) => {
                for status in DOCUMENT_STATUSES {
                    let count = rows.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
                    self.documents
                        .get_or_create(&StatusLabel {
                            status: status.into(),
                        })
                        .set(count);
                }
            }
            // Before the schema is ready there is nothing to count yet.
            Ok(Err(LibraryError::Starting)) => {}
            Ok(Err(error)) => tracing::debug!(%error, "cannot count documents for the metrics"),
            Err(_) => tracing::debug!("counting documents for the metrics took over a second"),
        }
    }
}

/// The methods hearth serves, and `other` for anything a client makes up: a label from a closed set, so a stream
/// of invented methods cannot grow the series without bound.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Outermost middleware: logs each request once with route, status, duration and identity, and counts it.
pub async fn observe(State(metrics): State<Arc<HttpMetrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status();
    // Set by authentication; absent when it refused the request, or something before it did (headers, limits).
    let identity = match response.extensions().get::<Identity>() {
        Some(identity) => identity.to_string(),
        None if status == StatusCode::UNAUTHORIZED => "rejected".to_owned(),
        None => "unauthenticated".to_owned(),
    };
    tracing::info!(
        target: "hearthd::request",
        %method,
        route = path,
        status = status.as_u16(),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        identity = %identity,
        "request"
    );
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method_label(&method).to_owned(),
            route: route.clone(),
            status: status.as_u16(),
        })
        .inc();
    metrics
        .duration
        .get_or_create(&RouteLabel { route })
        .observe(elapsed.as_secs_f64());
    response
}
