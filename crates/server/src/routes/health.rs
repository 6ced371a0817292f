//! Liveness, readiness and Prometheus metrics.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "alive")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "ready"), (status = 503, body = crate::error::Problem)))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::Unavailable
    })?;
    Ok(Json(json!({"status": "ready"})))
}

/// Prometheus metrics. With `metrics_token` set, a matching bearer token is required;
/// without it, metrics are served only when bastion is bound to loopback.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format"), (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<impl IntoResponse> {
    match &state.settings.metrics_token {
        Some(expected) => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            let expected = expected.expose_secret().as_bytes();
            if !constant_time_eq(given.as_bytes(), expected) {
                return Err(ApiError::Unauthenticated);
            }
        }
        None if state.settings.is_public_bind() => return Err(ApiError::NotFound),
        None => {}
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    ))
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    // Comparing digests keeps the time independent of where the inputs first differ.
    Sha256::digest(a) == Sha256::digest(b)
}
