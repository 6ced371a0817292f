//! Logs and traces keep secrets out and cannot be forged: a run seeds known secrets
//! (passwords, access and refresh tokens, an API key, a provider key, a TOTP secret, a
//! device token) and sign-in attempts whose email carries CR/LF and a fake log line, at
//! debug level with traces exported over OTLP; then no log line and no exported span holds
//! any secret, and every log line is one the logger wrote.

mod common;

use common::chat::Chat;
use common::device::Device;
use common::otlp::{start_collector, Received};
use common::{Backend, OWNER_EMAIL, PASSWORD};
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

/// The line a forger would like to see in the log.
const FORGED: &str = "2026-01-01T00:00:00.000000Z  INFO bastion::request: forged=yes";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_line_or_a_span_and_no_line_is_forged() {
    let received = Received::default();
    let collector = start_collector(received.clone()).await;
    let c = Chat::start_with_env(
        Backend::Sqlite,
        "You help.",
        vec![
            ("BASTION_LOG_LEVEL".into(), "debug".into()),
            ("BASTION_OTLP_ENDPOINT".into(), collector),
        ],
    )
    .await;
    let s = &c.s;
    let a = s.tenant.assistant_id.clone();
    let mut secrets: Vec<String> = vec![PASSWORD.into(), c.secret.clone(), c.owner.clone()];

    // Sign-in: a token pair, refreshed once.
    let signed = s.sign_in(OWNER_EMAIL).await;
    let refresh = signed["refresh_token"].as_str().unwrap().to_string();
    secrets.push(signed["access_token"].as_str().unwrap().into());
    secrets.push(refresh.clone());
    let (status, refreshed) = s
        .call(
            reqwest::Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    secrets.push(refreshed["refresh_token"].as_str().unwrap().into());
    secrets.push(refreshed["access_token"].as_str().unwrap().into());

    // Forgery attempts: CR/LF and a fake line in the email, with a canary password.
    let canary = "canary-password-7f3a9c2e51";
    secrets.push(canary.into());
    for email in [
        format!("x@y.test\r\n{FORGED}"),
        format!("x@y.test\n{FORGED}"),
        format!("x@y.test\r{FORGED}"),
        format!("x@y.test\u{2028}{FORGED}"),
    ] {
        let (status, _) = s
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": canary})),
            )
            .await;
        assert!(status.is_client_error(), "{status}");
    }

    // An API key used; a TOTP secret handed out; a chat turn; a provider refusing the key.
    let (status, key) = s
        .post(
            &format!("/api/v1/assistants/{a}/api-keys"),
            &c.owner,
            json!({"name": "logs", "capabilities": ["chat"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let key = key["key"].as_str().unwrap().to_string();
    secrets.push(key.clone());
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            "/v1/chat/completions",
            Some(&key),
            Some(json!({"model": "any", "messages": [{"role": "user", "content": "hi"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, totp) = s.post("/api/v1/auth/mfa/totp", &c.owner, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{totp}");
    secrets.push(totp["secret"].as_str().unwrap().into());
    let conv = c.conversation(&c.owner).await;
    c.say(&c.owner, &conv, "hello").await;
    c.fake.reject_key(c.secret.clone());
    let (_, events) = c.say(&c.owner, &conv, "again").await;
    assert_eq!(
        events.last().map(|e| e.0.as_str()),
        Some("error"),
        "{events:?}"
    );

    // A device: its secret and channel token.
    let mut d = Device::new();
    let (_, first) = d.handshake(s).await;
    let code = first["activation"]["code"].as_str().unwrap().to_string();
    let (status, _) = s
        .post(
            &format!("/api/v1/assistants/{a}/devices/bind"),
            &c.owner,
            json!({"code": code, "confirm": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, creds) = d.handshake(s).await;
    secrets.push(d.secret.clone().expect("a device secret"));
    secrets.push(creds["websocket"]["token"].as_str().unwrap().into());

    // Spans are exported in batches: wait for the model calls' to arrive.
    for _ in 0..100 {
        if !received.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let logs = s.logs();
    assert!(
        logs.len() > 20,
        "the run logged too little to mean anything"
    );
    for line in &logs {
        for secret in &secrets {
            assert!(
                !line.contains(secret.as_str()),
                "a secret in the log: {line}"
            );
        }
        assert!(
            !line.contains(FORGED) || !line.starts_with("2026-01-01"),
            "a forged line: {line}"
        );
        // Every line is the logger's (it starts with a timestamp), or the one `serve`
        // prints for scripts.
        assert!(
            (line.starts_with("20") && line.as_bytes().get(4) == Some(&b'-'))
                || line.starts_with("bastion listening on "),
            "a line the logger did not write: {line:?}"
        );
    }
    assert!(
        logs.iter()
            .any(|l| l.contains("route=/api/v1/auth/login") && l.contains("status=401")),
        "the refused sign-ins are logged"
    );
    let spans = received.lock().unwrap().join("\n");
    assert!(!spans.is_empty(), "no span was exported");
    for secret in &secrets {
        assert!(
            !spans.contains(secret.as_str()),
            "a secret in an exported span"
        );
    }
}
