//! Conversations: a turn streams token by token over SSE and WebSocket, is stored before it
//! is shown, and is traced; each user sees only their own conversations and memories; the
//! assistant's limits and spend caps refuse before the provider is reached; provider
//! failures are problems without secrets; a crash mid-stream loses nothing acknowledged.

mod common;

use common::chat::{self, Chat, MODEL};
use common::{Backend, Server};
use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

async fn a_turn_streams_is_stored_and_traced(b: Backend) {
    let c = Chat::start(b, "You are the tenant's helper.").await;
    let (status, fact) =
        c.s.post(
            &c.s.assistant_path("/memories"),
            &c.owner,
            json!({"content": "My name is Ada."}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{fact}");
    let conv = c.conversation(&c.owner).await;
    // Parts that arrive together are stored and sent together; spaced out, each is its own.
    c.fake.set_token_delay(Duration::from_millis(30));
    let (status, events) = c.say(&c.owner, &conv, "hello there bastion").await;
    c.fake.set_token_delay(Duration::ZERO);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        events.first().map(|e| e.0.as_str()),
        Some("message"),
        "{events:?}"
    );
    assert_eq!(
        events[0].1["user_message"]["content"],
        "hello there bastion"
    );
    let deltas = events.iter().filter(|e| e.0 == "delta").count();
    assert!(
        deltas >= 4,
        "one delta per word expected, got {deltas}: {events:?}"
    );
    assert_eq!(Chat::answer_of(&events), "You said: hello there bastion");
    let done = &events.last().expect("events").1;
    assert_eq!(events.last().unwrap().0, "done", "{events:?}");
    assert_eq!(done["answer"]["status"], "complete");
    assert_eq!(done["finish_reason"], "stop");

    // What the provider got: the key, the model, the system prompt with the memory.
    let sent = c.fake.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].api_key, c.secret);
    assert_eq!(sent[0].body["model"], MODEL);
    let system = sent[0].body["messages"][0].clone();
    assert_eq!(system["role"], "system");
    let system = system["content"].as_str().unwrap();
    assert!(
        system.starts_with("You are the tenant's helper."),
        "{system}"
    );
    assert!(system.contains("My name is Ada."), "{system}");

    // Stored: both messages, the answer complete with its tokens.
    let (status, stored) = c.s.get(&conv, &c.owner).await;
    assert_eq!(status, StatusCode::OK);
    let msgs = stored["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["role"], "user");
    assert_eq!(msgs[1]["content"], "You said: hello there bastion");
    assert_eq!(msgs[1]["status"], "complete");
    assert!(msgs[1]["output_tokens"].as_i64().unwrap() > 0);

    // A second turn carries the history.
    let (_, events) = c.say(&c.owner, &conv, "again").await;
    assert_eq!(events.last().unwrap().0, "done");
    let sent = c.fake.requests();
    let roles: Vec<&str> = sent[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);

    // Traced: model, tokens, cost from the configured price, time to first token.
    let traces = c.traces(&c.owner, &conv, 2).await;
    let t = &traces[0];
    assert_eq!(t["model"], MODEL);
    assert_eq!(t["finish_reason"], "stop");
    assert!(t["input_tokens"].as_i64().unwrap() > 0);
    let (i, o) = (
        t["input_tokens"].as_f64().unwrap(),
        t["output_tokens"].as_f64().unwrap(),
    );
    let cost = t["cost_usd"].as_f64().unwrap();
    assert!((cost - (i * 1.0 + o * 2.0) / 1e6).abs() < 2e-6, "{t}");
    assert!(t["time_to_first_token_ms"].is_i64(), "{t}");
    assert_eq!(t["redacted"], false);
    assert_eq!(t["completion"], "You said: hello there bastion");
    assert!(!traces.to_string().contains(&c.secret));

    // The provider key shows what went through it this month.
    let key = format!(
        "/api/v1/workspaces/{}/provider-keys/{}",
        c.s.tenant.workspace_id, c.provider_key_id
    );
    let (_, k) = c.s.get(&key, &c.owner).await;
    let tokens: i64 = traces
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["input_tokens"].as_i64().unwrap() + t["output_tokens"].as_i64().unwrap())
        .sum();
    assert_eq!(k["tokens_this_month"].as_i64(), Some(tokens), "{k}");
    assert!(k["spent_this_month_usd"].as_f64().unwrap() > 0.0, "{k}");
}

async fn each_user_sees_only_their_own(b: Backend) {
    let c = Chat::start(b, "").await;
    let (_, alice) = c.s.join(&c.owner, "alice@tenant-a.test", "member").await;
    let (_, bob) = c.s.join(&c.owner, "bob@tenant-a.test", "member").await;
    let (_, editor) = c.s.join(&c.owner, "ed@tenant-a.test", "editor").await;
    let (_, operator) = c.s.join(&c.owner, "op@tenant-a.test", "operator").await;
    let mem = c.s.assistant_path("/memories");
    let (status, _) =
        c.s.post(&mem, &alice, json!({"content": "Alice likes tea."}))
            .await;
    assert_eq!(status, StatusCode::CREATED);
    let conv = c.conversation(&alice).await;
    let (_, events) = c.say(&alice, &conv, "hi").await;
    assert_eq!(events.last().unwrap().0, "done");

    // Bob: not found, whatever he tries; his prompt never carries Alice's memory.
    assert_eq!(c.s.get(&conv, &bob).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        c.say(&bob, &conv, "mine now").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(c.s.delete(&conv, &bob).await, StatusCode::NOT_FOUND);
    let (_, list) = c.s.get(&c.s.assistant_path("/conversations"), &bob).await;
    assert_eq!(list.as_array().unwrap().len(), 0);
    let (_, bob_mem) = c.s.get(&mem, &bob).await;
    assert_eq!(bob_mem.as_array().unwrap().len(), 0);
    let (_, alice_mem) = c.s.get(&mem, &alice).await;
    let alice_fact = alice_mem[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        c.s.delete(&format!("{mem}/{alice_fact}"), &bob).await,
        StatusCode::NOT_FOUND
    );
    let bobs = c.conversation(&bob).await;
    c.say(&bob, &bobs, "hello").await;
    let last = c.fake.requests().pop().unwrap();
    assert!(
        !last.body.to_string().contains("Alice likes tea"),
        "{}",
        last.body
    );
    // Nor is there feedback to give on Alice's answers.
    let (_, stored) = c.s.get(&conv, &alice).await;
    let answer = stored["messages"][1]["id"].as_str().unwrap().to_string();
    let fb = format!("{conv}/messages/{answer}/feedback");
    let (status, _) =
        c.s.call(
            reqwest::Method::PUT,
            &fb,
            Some(&bob),
            Some(json!({"rating": "up"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An operator (conversations.read_all) lists and reads everyone's.
    let (_, all) =
        c.s.get(&c.s.assistant_path("/conversations"), &operator)
            .await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(c.s.get(&conv, &operator).await.0, StatusCode::OK);
    // …but cannot talk in them.
    assert_eq!(
        c.say(&operator, &conv, "hijack").await.0,
        StatusCode::NOT_FOUND
    );

    // An editor reads traces but not the conversation: contents are redacted.
    let traces = c.traces(&editor, &conv, 1).await;
    assert_eq!(traces[0]["redacted"], true);
    assert!(traces[0]["prompt"].is_null() && traces[0]["completion"].is_null());
    assert!(!traces.to_string().contains("hi"), "{traces}");
    // A member has no traces.read at all.
    assert_eq!(
        c.s.get(&format!("{conv}/traces"), &bob).await.0,
        StatusCode::FORBIDDEN
    );

    // Feedback by the author, read by holders of feedback.read only.
    let (status, f) =
        c.s.call(
            reqwest::Method::PUT,
            &fb,
            Some(&alice),
            Some(json!({"rating": "down", "comment": "too short"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{f}");
    assert_eq!(
        c.metric("bastion_feedback_total", &[r#"rating="down""#])
            .await,
        Some(1.0)
    );
    let user_msg = stored["messages"][0]["id"].as_str().unwrap();
    let (status, _) =
        c.s.call(
            reqwest::Method::PUT,
            &format!("{conv}/messages/{user_msg}/feedback"),
            Some(&alice),
            Some(json!({"rating": "up"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let summary = c.s.assistant_path("/feedback");
    assert_eq!(c.s.get(&summary, &alice).await.0, StatusCode::FORBIDDEN);
    let (status, s) = c.s.get(&summary, &operator).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((s["up"].as_i64(), s["down"].as_i64()), (Some(0), Some(1)));
    assert_eq!(s["items"][0]["comment"], "too short");

    // Alice deletes hers: gone with its traces.
    assert_eq!(c.s.delete(&conv, &alice).await, StatusCode::NO_CONTENT);
    assert_eq!(c.s.get(&conv, &operator).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        c.s.get(&format!("{conv}/traces"), &operator).await.0,
        StatusCode::NOT_FOUND
    );
}

async fn another_assistants_conversation_is_not_found(b: Backend) {
    let c = Chat::start(b, "").await;
    let conv = c.conversation(&c.owner).await;
    let other = c.s.new_assistant(&c.owner, "other").await;
    let moved = conv.replace(&c.s.tenant.assistant_id, &other);
    assert_eq!(c.s.get(&moved, &c.owner).await.0, StatusCode::NOT_FOUND);
    assert_eq!(c.say(&c.owner, &moved, "hi").await.0, StatusCode::NOT_FOUND);
    // An assistant never configured cannot answer, and says why.
    let conv2 = format!("/api/v1/assistants/{other}/conversations");
    let (_, made) = c.s.post(&conv2, &c.owner, json!({})).await;
    let path = format!("{conv2}/{}", made["id"].as_str().unwrap());
    let (status, p) = c.say(&c.owner, &path, "hi").await;
    assert_eq!(status, StatusCode::CONFLICT, "{p:?}");
    assert_eq!(c.fake.request_count(), 0);
}

async fn limits_and_caps_refuse_before_the_provider(b: Backend) {
    let c = Chat::start(b, "").await;
    let a = c.s.tenant.assistant_id.clone();
    c.configure(&a, "", json!({"max_daily_tokens_per_user": 30}))
        .await;
    let conv = c.conversation(&c.owner).await;
    let (status, _) = c.say(&c.owner, &conv, "one two three four five").await;
    assert_eq!(status, StatusCode::OK);
    let mut refused = None;
    for _ in 0..10 {
        let (status, body) = c.say(&c.owner, &conv, "six seven eight nine ten").await;
        if status != StatusCode::OK {
            refused = Some((status, body));
            break;
        }
    }
    let (status, body) = refused.expect("the daily limit never applied");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body:?}");
    assert_eq!(body[0].1["code"], "token_limit_reached");
    let calls = c.fake.request_count();

    // A spend cap on the provider key: a call that could cost more is refused, audited.
    c.configure(&a, "", json!({})).await;
    let (status, _) =
        c.s.patch(
            &format!(
                "/api/v1/workspaces/{}/provider-keys/{}",
                c.s.tenant.workspace_id, c.provider_key_id
            ),
            &c.owner,
            json!({"monthly_spend_cap_usd": 0.0001}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let conv = c.conversation(&c.owner).await;
    let (status, body) = c
        .say(&c.owner, &conv, "a long question ".repeat(20).trim())
        .await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body:?}");
    assert_eq!(body[0].1["code"], "spend_cap_reached");
    assert_eq!(
        c.fake.request_count(),
        calls,
        "a refused call reached the provider"
    );
    let (_, stored) = c.s.get(&conv, &c.owner).await;
    assert_eq!(
        stored["messages"].as_array().unwrap().len(),
        0,
        "a refused turn stored a message"
    );
    let events = c.s.audit_rows(&c.owner).await;
    let cap = events
        .iter()
        .find(|e| e.action == "spend.cap_reached")
        .expect("audited");
    assert_eq!(cap.detail["key"], "provider key");
}

async fn provider_failures_are_problems_without_secrets(b: Backend) {
    let c = Chat::start(b, "").await;
    let conv = c.conversation(&c.owner).await;
    // Two 503s are retried away.
    c.fake.fail_next(2, 503);
    let (_, events) = c.say(&c.owner, &conv, "retry me").await;
    assert_eq!(events.last().unwrap().0, "done", "{events:?}");
    assert_eq!(c.fake.request_count(), 3);
    // A key the provider refuses: an error event, nothing of the key in it.
    c.fake.reject_key(c.secret.clone());
    let (status, events) = c.say(&c.owner, &conv, "now fail").await;
    assert_eq!(status, StatusCode::OK);
    let (name, problem) = events.last().unwrap();
    assert_eq!(name, "error", "{events:?}");
    assert_eq!(problem["code"], "provider_auth_failed");
    let all = format!("{events:?}");
    assert!(!all.contains(&c.secret[8..]), "{all}");
    let (_, stored) = c.s.get(&conv, &c.owner).await;
    let last = stored["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["status"], "failed");
    let traces = c.traces(&c.owner, &conv, 2).await;
    assert_eq!(traces[1]["error"], "unauthorized");
    // Counted for operators: the refusal by kind; the retried-away 503s never surfaced.
    assert_eq!(
        c.metric(
            "bastion_provider_errors_total",
            &[r#"provider="openai-compatible""#, r#"kind="unauthorized""#]
        )
        .await,
        Some(1.0)
    );
    assert_eq!(
        c.metric(
            "bastion_llm_calls_total",
            &[r#"provider="openai-compatible""#, r#"outcome="ok""#]
        )
        .await,
        Some(1.0)
    );
    for line in c.s.logs() {
        assert!(
            !line.contains(&c.secret[8..]),
            "the key is in the log: {line}"
        );
    }
}

async fn a_crash_mid_stream_loses_nothing_acknowledged(b: Backend) {
    let mut c = Chat::start(b, "").await;
    let conv = c.conversation(&c.owner).await;
    c.fake.set_stall_after(Some(3));
    let res =
        c.s.http
            .post(c.s.url(&format!("{conv}/messages")))
            .bearer_auth(&c.owner)
            .json(&json!({"content": "tell me a long story please"}))
            .send()
            .await
            .unwrap();
    // The fake sends three words, then nothing: they may come as one delta or three.
    let events =
        chat::read_until(res, |e| Chat::answer_of(e).split_whitespace().count() >= 3).await;
    let seen = Chat::answer_of(&events);
    assert_eq!(events[0].0, "message");
    let args: Vec<String> = c.config_args.clone();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    c.s.restart(&args);
    c.fake.set_stall_after(None);
    let (status, stored) = c.s.get(&conv, &c.owner).await;
    assert_eq!(status, StatusCode::OK);
    let msgs = stored["messages"].as_array().unwrap();
    assert_eq!(msgs[0]["content"], "tell me a long story please");
    assert!(
        msgs[1]["content"].as_str().unwrap().starts_with(&seen),
        "acknowledged {seen:?}, stored {}",
        msgs[1]["content"]
    );
    if b == Backend::Sqlite {
        assert_eq!(msgs[1]["status"], "interrupted");
        // The conversation goes on after the interruption.
        let (_, events) = c.say(&c.owner, &conv, "go on").await;
        assert_eq!(events.last().unwrap().0, "done", "{events:?}");
    }
}

/// A WebSocket upgrade request to `url` carrying `token`.
fn ws_request(url: &str, token: &str) -> tokio_tungstenite::tungstenite::http::Request<()> {
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

async fn the_same_turn_over_a_websocket(b: Backend) {
    let c = Chat::start(b, "").await;
    let conv = c.conversation(&c.owner).await;
    let url = c.s.url(&format!("{conv}/ws")).replacen("http", "ws", 1);
    let req = ws_request(&url, &c.owner);
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket");
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        json!({"content": "over the socket"}).to_string().into(),
    ))
    .await
    .unwrap();
    let mut names = Vec::new();
    let mut text = String::new();
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        let Ok(t) = m.into_text() else { continue };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        let name = v["event"].as_str().unwrap().to_string();
        if name == "delta" {
            text.push_str(v["data"]["text"].as_str().unwrap());
        }
        names.push(name.clone());
        if name == "done" || name == "error" {
            break;
        }
    }
    assert_eq!(names.first().map(String::as_str), Some("message"));
    assert_eq!(names.last().map(String::as_str), Some("done"), "{names:?}");
    assert_eq!(text, "You said: over the socket");

    // A page of another site cannot open it with the user's cookies.
    let mut req = ws_request(&url, &c.owner);
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 403),
        other => panic!(
            "a cross-site WebSocket opened: {:?}",
            other.map(|(_, r)| r.status())
        ),
    }
}

async fn settings_are_validated_and_guarded(b: Backend) {
    let c = Chat::start(b, "").await;
    let settings = c.s.assistant_path("/settings");
    let put = |token: String, body: Value| {
        let s = &c.s;
        let settings = settings.clone();
        async move {
            s.call(reqwest::Method::PUT, &settings, Some(&token), Some(body))
                .await
        }
    };
    let (_, member) = c.s.join(&c.owner, "m@tenant-a.test", "member").await;
    assert_eq!(
        put(member.clone(), json!({"model": "x"})).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(c.s.get(&settings, &member).await.0, StatusCode::FORBIDDEN);
    for bad in [
        json!({"model": "has space"}),
        json!({"model": MODEL, "temperature": 3}),
        json!({"model": MODEL, "max_reply_tokens": 0}),
        json!({"model": MODEL, "max_reply_tokens": 5000, "context_tokens": 4000}),
        json!({"model": MODEL, "provider_key_id": uuid::Uuid::now_v7().to_string()}),
        json!({"model": MODEL, "unknown": 1}),
    ] {
        let (status, p) = put(c.owner.clone(), bad.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad} → {p}");
    }
    // Another workspace's provider key is as unknown as a made-up one.
    let other = Server::start(b).await;
    let other_owner = other.login(common::OWNER_EMAIL).await;
    let foreign =
        chat::add_provider_key(&other, &other_owner, &c.fake, "sk-foreign-0000", "active").await;
    let (status, _) = put(
        c.owner.clone(),
        json!({"model": MODEL, "provider_key_id": foreign}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, s) = c.s.get(&settings, &c.owner).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s["provider_key_id"], c.provider_key_id.as_str());
}

async fn an_anthropic_key_answers_the_same_way(b: Backend) {
    let c = Chat::start(b, "Be brief.").await;
    let secret = chat::random_secret();
    let (status, key) =
        c.s.post(
            &format!(
                "/api/v1/workspaces/{}/provider-keys",
                c.s.tenant.workspace_id
            ),
            &c.owner,
            json!({"provider": "anthropic", "label": "claude", "secret": secret,
                   "base_url": c.fake.base_url_anthropic()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let a = c.s.tenant.assistant_id.clone();
    c.configure(&a, "Be brief.", json!({"provider_key_id": key["id"]}))
        .await;
    let conv = c.conversation(&c.owner).await;
    let (_, events) = c.say(&c.owner, &conv, "hello claude").await;
    assert_eq!(events.last().unwrap().0, "done", "{events:?}");
    assert_eq!(Chat::answer_of(&events), "You said: hello claude");
    let sent = c.fake.requests().pop().unwrap();
    assert!(sent.path.ends_with("/messages"), "{}", sent.path);
    assert_eq!(sent.api_key, secret);
    assert_eq!(sent.body["system"], "Be brief.");
    let traces = c.traces(&c.owner, &conv, 1).await;
    assert_eq!(traces[0]["provider"], "anthropic");
    assert!(traces[0]["output_tokens"].as_i64().unwrap() > 0);
}

/// A provider key's ciphertext copied into another workspace's row (as by someone with write
/// access to the database) does not open there: the call fails as an internal error before
/// any provider is reached, and the owner's key keeps working in its own row.
async fn a_ciphertext_copied_to_another_workspace_does_not_open(b: Backend) {
    use sqlx::Connection;
    let c = Chat::start(b, "").await;
    // A second tenant: a workspace of an operator, with its assistant, key and API key.
    c.s.add_user("operator@platform.test", true);
    let op = c.s.login("operator@platform.test").await;
    let (status, ws) =
        c.s.post("/api/v1/workspaces", &op, json!({"name": "Tenant B"}))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{ws}");
    let ws = ws["id"].as_str().unwrap().to_string();
    let (status, asst) =
        c.s.post(
            &format!("/api/v1/workspaces/{ws}/assistants"),
            &op,
            json!({"slug": "tenant-b", "name": "B"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{asst}");
    let asst = asst["id"].as_str().unwrap().to_string();
    let secret_b = format!("sk-tenant-b-{}", uuid::Uuid::new_v4().simple());
    let (status, key_b) =
        c.s.post(
            &format!("/api/v1/workspaces/{ws}/provider-keys"),
            &op,
            json!({"provider": "openai-compatible", "label": "b", "secret": secret_b,
                   "base_url": c.fake.base_url_openai()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key_b}");
    let key_b = key_b["id"].as_str().unwrap().to_string();
    let (status, out) =
        c.s.call(
            reqwest::Method::PUT,
            &format!("/api/v1/assistants/{asst}/settings"),
            Some(&op),
            Some(json!({"provider_key_id": key_b, "model": MODEL})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let (status, api_key) =
        c.s.post(
            &format!("/api/v1/assistants/{asst}/api-keys"),
            &op,
            json!({"name": "b", "capabilities": ["chat"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{api_key}");
    let api_key = api_key["key"].as_str().unwrap().to_string();

    // Tenant A's sealed key, written over tenant B's.
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&c.s.database_url())
        .await
        .unwrap();
    let (sealed_a,): (String,) = sqlx::query_as("SELECT secret FROM provider_keys WHERE id = $1")
        .bind(&c.provider_key_id)
        .fetch_one(&mut db)
        .await
        .unwrap();
    sqlx::query("UPDATE provider_keys SET secret = $1 WHERE id = $2")
        .bind(&sealed_a)
        .bind(&key_b)
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();

    let res =
        c.s.http
            .post(c.s.url("/v1/chat/completions"))
            .bearer_auth(&api_key)
            .json(&json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = res.text().await.unwrap();
    assert!(!body.contains(&c.secret[8..]), "{body}");
    assert_eq!(
        c.fake.request_count(),
        0,
        "a copied ciphertext reached the provider: {:?}",
        c.fake.requests()
    );
    // Tenant A's key still opens where it belongs.
    let conv = c.conversation(&c.owner).await;
    let (_, events) = c.say(&c.owner, &conv, "still mine").await;
    assert_eq!(events.last().unwrap().0, "done", "{events:?}");
    let sent = c.fake.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].api_key, c.secret);
}

on_both_backends!(
    an_anthropic_key_answers_the_same_way,
    a_ciphertext_copied_to_another_workspace_does_not_open,
    a_turn_streams_is_stored_and_traced,
    each_user_sees_only_their_own,
    another_assistants_conversation_is_not_found,
    limits_and_caps_refuse_before_the_provider,
    provider_failures_are_problems_without_secrets,
    a_crash_mid_stream_loses_nothing_acknowledged,
    the_same_turn_over_a_websocket,
    settings_are_validated_and_guarded,
);
