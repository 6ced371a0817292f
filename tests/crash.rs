//! Crash safety: a write load (chat messages, assistant changes that write audit events,
//! API keys created) runs while the server is killed with SIGKILL at a random moment,
//! several times over. After each restart every write the server acknowledged is there,
//! and the audit log still verifies.

mod common;

use common::chat::{self, Chat};
use common::Backend;
use futures::StreamExt;
use rand::Rng;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server said it stored.
#[derive(Default)]
struct Acknowledged {
    /// (conversation path, message content): the `message` event came back.
    messages: Vec<(String, String)>,
    /// Assistant names whose change answered 200.
    names: Vec<String>,
    /// API key ids answered 201.
    keys: Vec<String>,
}

/// One writer: the same kind of write until the server stops answering.
async fn writer(
    kind: usize,
    base: String,
    token: String,
    assistant: String,
    ack: Arc<Mutex<Acknowledged>>,
) {
    let web = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for n in 0.. {
        let tag = format!("w{kind}-{n}-{}", uuid::Uuid::new_v4().simple());
        let ok = match kind {
            0 => {
                // A conversation per message: one turn at a time runs in a conversation.
                let created = web
                    .post(format!(
                        "{base}/api/v1/assistants/{assistant}/conversations"
                    ))
                    .bearer_auth(&token)
                    .json(&json!({}))
                    .send()
                    .await;
                let Ok(created) = created else { return };
                if created.status() != StatusCode::CREATED {
                    return;
                }
                let created: Value = created.json().await.unwrap_or_default();
                let Some(id) = created["id"].as_str() else {
                    return;
                };
                let conv = format!("/api/v1/assistants/{assistant}/conversations/{id}");
                let res = web
                    .post(format!("{base}{conv}/messages"))
                    .bearer_auth(&token)
                    .json(&json!({"content": tag}))
                    .send()
                    .await;
                let Ok(res) = res else { return };
                if res.status() != StatusCode::OK {
                    return;
                }
                // Acknowledged by the first event: the stored user message.
                let mut body = res.bytes_stream();
                let mut text = String::new();
                let mut acked = false;
                while let Some(Ok(chunk)) = body.next().await {
                    text.push_str(&String::from_utf8_lossy(&chunk));
                    if chat::parse_sse(&text)
                        .first()
                        .is_some_and(|(e, _)| e == "message")
                    {
                        acked = true;
                        break;
                    }
                }
                if acked {
                    ack.lock().unwrap().messages.push((conv.clone(), tag));
                }
                acked
            }
            1 => {
                let res = web
                    .patch(format!("{base}/api/v1/assistants/{assistant}"))
                    .bearer_auth(&token)
                    .json(&json!({"name": tag}))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == StatusCode::OK => {
                        ack.lock().unwrap().names.push(tag);
                        true
                    }
                    _ => false,
                }
            }
            _ => {
                let res = web
                    .post(format!("{base}/api/v1/assistants/{assistant}/api-keys"))
                    .bearer_auth(&token)
                    .json(&json!({"name": &tag[..30.min(tag.len())], "capabilities": ["chat"]}))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == StatusCode::CREATED => {
                        let body: Value = r.json().await.unwrap_or_default();
                        if let Some(id) = body["api_key"]["id"].as_str() {
                            ack.lock().unwrap().keys.push(id.to_string());
                        }
                        true
                    }
                    _ => false,
                }
            }
        };
        if !ok {
            return;
        }
    }
}

async fn acknowledged_writes_survive_sigkill(b: Backend) {
    let mut c = Chat::start(b, "").await;
    let a = c.s.tenant.assistant_id.clone();
    let ws = c.s.tenant.workspace_id.clone();
    let ack = Arc::new(Mutex::new(Acknowledged::default()));
    let seed: u64 = rand::thread_rng().gen();
    eprintln!("kill points from seed {seed}");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let args: Vec<String> = c.config_args.clone();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for round in 0..4 {
        let base = c.s.url("");
        let writers: Vec<_> = (0..3)
            .map(|kind| {
                tokio::spawn(writer(
                    kind,
                    base.clone(),
                    c.owner.clone(),
                    a.clone(),
                    ack.clone(),
                ))
            })
            .collect();
        let at = Duration::from_millis(rng.gen_range(150..1200));
        tokio::time::sleep(at).await;
        // SIGKILL: nothing is flushed or drained.
        c.s.restart(&args);
        for w in writers {
            let _ = tokio::time::timeout(Duration::from_secs(15), w).await;
        }
        eprintln!("round {round}: killed after {at:?}");
    }

    let ack = std::mem::take(&mut *ack.lock().unwrap());
    assert!(
        !ack.messages.is_empty() && !ack.names.is_empty() && !ack.keys.is_empty(),
        "the load wrote nothing: {} messages, {} names, {} keys",
        ack.messages.len(),
        ack.names.len(),
        ack.keys.len()
    );
    for (conv, m) in &ack.messages {
        let (status, stored) = c.s.get(conv, &c.owner).await;
        assert_eq!(status, StatusCode::OK, "{conv}: {stored}");
        assert_eq!(
            stored["messages"][0]["content"],
            m.as_str(),
            "acknowledged message {m} lost"
        );
    }
    let (_, keys) =
        c.s.get(&format!("/api/v1/assistants/{a}/api-keys"), &c.owner)
            .await;
    let key_ids: std::collections::HashSet<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["id"].as_str())
        .collect();
    for k in &ack.keys {
        assert!(key_ids.contains(k.as_str()), "acknowledged key {k} lost");
    }
    // Every acknowledged change left its audit event.
    let mut audited = std::collections::HashSet::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/api/v1/workspaces/{ws}/audit?limit=200&before={b}"),
            None => format!("/api/v1/workspaces/{ws}/audit?limit=200"),
        };
        let (status, page) = c.s.get(&path, &c.owner).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for e in page["items"].as_array().unwrap() {
            if e["action"] == "assistant.update" {
                if let Some(n) = e["detail"]["name"].as_str() {
                    audited.insert(n.to_string());
                }
            }
        }
        match page["next_before"].as_i64() {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    for n in &ack.names {
        assert!(audited.contains(n), "the change to {n} has no audit event");
    }
    let out = c.s.cli(&["audit", "verify"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    eprintln!(
        "acknowledged and found after 4 kills: {} messages, {} changes, {} keys",
        ack.messages.len(),
        ack.names.len(),
        ack.keys.len()
    );
}

on_both_backends!(acknowledged_writes_survive_sigkill);
