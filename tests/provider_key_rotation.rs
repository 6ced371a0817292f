//! Zero-downtime rotation of a provider key under load: while programs call the assistant
//! through `/v1/chat/completions` without pause, a standby key is added, promoted, and the
//! old key revoked — and then refused by the provider, as an operator would revoke it there
//! too. Not one request fails, and the calls move to the new key.

mod common;

use common::chat::{self, Chat};
use common::Backend;
use reqwest::StatusCode;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

async fn rotation_under_load_fails_no_request(b: Backend) {
    let c = Arc::new(Chat::start(b, "").await);
    let (status, made) =
        c.s.post(
            &c.s.assistant_path("/api-keys"),
            &c.owner,
            json!({"name": "load", "capabilities": ["chat"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let key = made["key"].as_str().unwrap().to_string();
    c.fake.set_token_delay(Duration::from_millis(2));

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..6 {
        let (c, key, stop, ok, failed) = (
            c.clone(),
            key.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let stream = (w + n) % 2 == 0;
                let res = c
                    .s
                    .http
                    .post(c.s.url("/v1/chat/completions"))
                    .bearer_auth(&key)
                    .json(&json!({"model": "any", "stream": stream,
                                  "messages": [{"role": "user", "content": format!("ping {w} {n}")}]}))
                    .send()
                    .await;
                let outcome = match res {
                    Ok(r) if r.status() == StatusCode::OK => {
                        let body = r.text().await.unwrap_or_default();
                        let fine = if stream {
                            body.contains("[DONE]") && !body.contains("\"error\"")
                        } else {
                            body.contains("You said: ping")
                        };
                        if fine { Ok(()) } else { Err(body) }
                    }
                    Ok(r) => Err(format!("{} {}", r.status(), r.text().await.unwrap_or_default())),
                    Err(e) => Err(e.to_string()),
                };
                match outcome {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failed.lock().unwrap().push(e),
                }
            }
        }));
    }
    let settle = || tokio::time::sleep(Duration::from_millis(400));
    settle().await;

    // The rotation: standby → active → revoke the old one.
    let keys = format!(
        "/api/v1/workspaces/{}/provider-keys",
        c.s.tenant.workspace_id
    );
    let new_secret = chat::random_secret();
    let new_id = chat::add_provider_key(&c.s, &c.owner, &c.fake, &new_secret, "standby").await;
    settle().await;
    let (status, body) =
        c.s.patch(
            &format!("{keys}/{new_id}"),
            &c.owner,
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    settle().await;
    let (status, body) =
        c.s.patch(
            &format!("{keys}/{}", c.provider_key_id),
            &c.owner,
            json!({"status": "revoked"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    settle().await;
    let revoked_at_provider = c.fake.request_count();
    c.fake.reject_key(c.secret.clone());
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    let failures = failed.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let served = ok.load(Ordering::Relaxed);
    assert!(
        served > 50,
        "too little load to mean anything: {served} requests"
    );
    let sent = c.fake.requests();
    assert!(
        sent.iter().any(|r| r.api_key == c.secret),
        "the old key was never used"
    );
    let after = &sent[revoked_at_provider as usize..];
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|r| r.api_key == new_secret),
        "a call used the revoked key after the provider stopped taking it"
    );
}

use std::sync::Mutex;

on_both_backends!(rotation_under_load_fails_no_request);
