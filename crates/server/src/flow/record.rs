//! Step 4: record. One log line and one set of metrics per request, whatever happened, with
//! the request id, route, status, latency, principal and assistant.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use bastion_core::{AssistantId, Principal};
use std::time::Instant;

/// What the gate learned about a request, carried out on the response for the log line.
#[derive(Clone, Default, Debug)]
pub struct Recorded {
    pub principal: Option<Principal>,
    pub assistant: Option<AssistantId>,
}

pub async fn record(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let res = next.run(req).await;
    let elapsed = started.elapsed();
    let status = res.status().as_u16();
    let recorded = res
        .extensions()
        .get::<Recorded>()
        .cloned()
        .unwrap_or_default();
    let principal = recorded
        .principal
        .map(|p| p.to_string())
        .unwrap_or_else(|| "anonymous".into());
    let assistant = recorded
        .assistant
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(
        target: "bastion::request",
        request_id = %request_id,
        method = %method,
        route = %route,
        status,
        latency_us = elapsed.as_micros() as u64,
        principal = %principal,
        assistant = %assistant,
    );
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("bastion_http_requests_total", &labels).increment(1);
    metrics::histogram!("bastion_http_request_duration_seconds", &labels[..2])
        .record(elapsed.as_secs_f64());
    res
}
