//! A fake OTLP/HTTP collector (JSON encoding): what bastion exports as traces.

use axum::extract::State;
use axum::routing::post;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// What the fake collector received: each `POST /v1/traces` body as sent.
pub type Received = Arc<Mutex<Vec<String>>>;

/// A collector on a free loopback port; its base URL.
pub async fn start_collector(received: Received) -> String {
    async fn traces(State(received): State<Received>, body: String) -> axum::Json<Value> {
        received.lock().unwrap().push(body);
        // An ExportTraceServiceResponse with nothing rejected.
        axum::Json(json!({}))
    }
    let app = axum::Router::new()
        .route("/v1/traces", post(traces))
        .with_state(received);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("collector port");
    let addr = listener.local_addr().expect("collector address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}
