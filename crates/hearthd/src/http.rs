//! Routes. Every error body is `{code, message}`; details stay in the log.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sqlx::PgPool;

pub fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(pool)
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn readyz(State(pool): State<PgPool>) -> Response {
    let probe = sqlx::query_as::<_, (String, Option<String>)>(
        "SELECT current_setting('server_version'), \
                (SELECT extversion FROM pg_extension WHERE extname = 'vector')",
    )
    .fetch_one(&pool)
    .await;
    match probe {
        Ok((postgres, Some(pgvector))) => Json(json!({
            "status": "ready",
            "postgres": postgres,
            "pgvector": pgvector,
        }))
        .into_response(),
        Ok((_, None)) => {
            not_ready("the database has no pgvector: run `CREATE EXTENSION vector` as superuser")
        }
        Err(error) => {
            tracing::warn!(%error, "database not reachable");
            not_ready("waiting for the database")
        }
    }
}

fn not_ready(message: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "code": "not_ready", "message": message })),
    )
        .into_response()
}
