//! Devices end to end, with a scripted device that follows the xiaozhi-esp32 protocol: first
//! contact and its secret, an activation code shown and entered (looked at, then confirmed),
//! channel credentials only once bound, the WebSocket channel with `hello`, a spoken turn
//! answered by the fake provider as the owner's conversation, the device's own MCP tools
//! offered (user-only ones never), revocation and unbinding cutting the channel at once, and
//! the attacks: spoofed Device-Id, expired, reused and foreign codes, brute force, factory-key
//! answers that are wrong or cannot be checked, revoked tokens.

mod common;

use common::chat::Chat;
use common::device::Device;
use common::{Backend, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

async fn bind(
    s: &Server,
    token: &str,
    assistant: &str,
    code: &str,
    confirm: bool,
) -> (StatusCode, Value) {
    s.post(
        &format!("/api/v1/assistants/{assistant}/devices/bind"),
        token,
        json!({"code": code, "confirm": confirm}),
    )
    .await
}

fn code_of(ota: &Value) -> String {
    ota["activation"]["code"]
        .as_str()
        .expect("an activation code")
        .to_string()
}

/// A device known, shown a code, and bound to the tenant's assistant by its owner; its
/// channel credentials from the next handshake.
async fn bound_device(c: &Chat) -> (Device, Value) {
    let mut d = Device::new();
    let (status, first) = d.handshake(&c.s).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let code = code_of(&first);
    let (status, bound) = bind(&c.s, &c.owner, &c.s.tenant.assistant_id, &code, true).await;
    assert_eq!(status, StatusCode::CREATED, "{bound}");
    let (status, creds) = d.handshake(&c.s).await;
    assert_eq!(status, StatusCode::OK, "{creds}");
    (d, creds)
}

async fn a_device_activates_binds_and_talks(b: Backend) {
    let c = Chat::start(b, "You help.").await;
    let s = &c.s;
    let mut d = Device::new();

    // First contact: a secret and a code, no channel credentials.
    let (status, first) = d.handshake(s).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let code = code_of(&first);
    assert_eq!(code.len(), 6);
    assert!(
        d.secret.as_deref().is_some_and(|s| s.starts_with("bds_")),
        "{first}"
    );
    assert!(
        first.get("websocket").is_none() && first.get("mqtt").is_none(),
        "{first}"
    );
    assert!(first["activation"]["challenge"]
        .as_str()
        .is_some_and(|c| c.len() >= 32));
    assert!(first["server_time"]["timestamp"].as_i64().unwrap() > 0);
    assert_eq!(d.activate(s, json!({})).await, StatusCode::ACCEPTED);

    // The owner looks first: the device the code belongs to, nothing bound yet.
    let (status, preview) = bind(
        s,
        &c.owner,
        &s.tenant.assistant_id,
        &code.to_lowercase(),
        false,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["device"]["board"], "bread-compact-wifi");
    assert_eq!(preview["device"]["mac_suffix"], d.mac[9..]);
    assert_eq!(preview["confirm_required"], true);
    assert_eq!(d.activate(s, json!({})).await, StatusCode::ACCEPTED);

    // Then confirms: bound to the assistant, the owner its owner.
    let (status, bound) = bind(s, &c.owner, &s.tenant.assistant_id, &code, true).await;
    assert_eq!(status, StatusCode::CREATED, "{bound}");
    assert_eq!(bound["status"], "bound");
    assert_eq!(bound["owner_id"], s.tenant.owner_id.as_str());
    assert_eq!(d.activate(s, json!({})).await, StatusCode::OK);
    let rows = s.audit_rows(&c.owner).await;
    assert!(rows
        .iter()
        .any(|r| r.action == "device.bind" && r.outcome == "success"));

    // The next handshake brings the channel's credentials.
    let (_, creds) = d.handshake(s).await;
    assert!(creds.get("activation").is_none(), "{creds}");
    let url = creds["websocket"]["url"].as_str().unwrap().to_string();
    let token = creds["websocket"]["token"].as_str().unwrap().to_string();
    assert!(
        url.ends_with("/device/ws") && token.starts_with("bdt_"),
        "{creds}"
    );

    // hello, then bastion initializes the device's MCP session and reads its tools.
    let mut ch = d.connect(&url, &token).await.expect("channel");
    let hello = ch.hello().await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["transport"], "websocket");
    assert!(hello["session_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(hello["audio_params"]["sample_rate"], 16000);
    let tools = loop_until(|| async {
        let (_, t) = s.get(&s.assistant_path("/tools"), &c.owner).await;
        let names: Vec<String> = t
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        names
            .iter()
            .any(|n| n.starts_with("device_"))
            .then_some(names)
    })
    .await;
    let volume = format!(
        "device_{}_self_audio_speaker_set_volume",
        d.mac.replace(':', "")
    );
    assert!(tools.contains(&volume), "{tools:?}");
    assert!(
        !tools
            .iter()
            .any(|n| n.contains("reboot") || n.contains("factory_reset")),
        "user-only tools never reach the registry: {tools:?}"
    );
    assert!(ch
        .list_params
        .lock()
        .unwrap()
        .iter()
        .all(|p| p.get("withUserTools").is_none()));

    // A spoken turn: stt, tts start, llm, the reply, tts stop; the owner's conversation.
    ch.send_audio(vec![0u8; 120]);
    let got = ch.say("what time is it").await;
    let kinds: Vec<String> = got
        .iter()
        .map(|m| {
            format!(
                "{}:{}",
                m["type"].as_str().unwrap(),
                m["state"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("stt:"), "{kinds:?}");
    assert_eq!(got[0]["text"], "what time is it");
    assert!(
        kinds.contains(&"tts:start".to_string()) && kinds.contains(&"llm:".to_string()),
        "{kinds:?}"
    );
    let reply = got
        .iter()
        .find(|m| m["state"] == "sentence_start")
        .expect("a reply");
    assert_eq!(reply["text"], "You said: what time is it");
    let (_, convs) = s.get(&s.assistant_path("/conversations"), &c.owner).await;
    let conv = convs
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["title"].as_str().unwrap().starts_with("Device "))
        .expect("the device's conversation");
    let (_, msgs) = s
        .get(
            &format!(
                "{}/conversations/{}",
                s.assistant_path(""),
                conv["id"].as_str().unwrap()
            ),
            &c.owner,
        )
        .await;
    assert!(
        msgs.to_string().contains("You said: what time is it"),
        "{msgs}"
    );

    // The device's tool, once an admin enables it, runs through the tool boundary.
    let (_, listed) = s.get(&s.assistant_path("/tools"), &c.owner).await;
    let tool = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == volume.as_str())
        .unwrap()
        .clone();
    assert_eq!(tool["enabled"], false, "a device's tools wait for an admin");
    let update = json!({"kind": "mcp", "name": volume, "enabled": true, "risk": "write",
                        "allowed_roles": ["owner"], "approval": {"rule": "never"}});
    let (status, body) = s
        .call(
            Method::PUT,
            &s.assistant_path(&format!("/tools/{}", tool["id"].as_str().unwrap())),
            Some(&c.owner),
            Some(update),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = ch.say(&format!("CALL {volume} {{\"volume\": 30}}")).await;
    let reply = got
        .iter()
        .find(|m| m["state"] == "sentence_start")
        .expect("a reply");
    assert!(
        reply["text"].as_str().unwrap().contains("volume set"),
        "{got:?}"
    );
    assert_eq!(
        ch.calls.lock().unwrap().as_slice(),
        &[(
            "self.audio_speaker.set_volume".to_string(),
            json!({"volume": 30})
        )]
    );

    // Online in the list.
    let (_, list) = s.get(&s.assistant_path("/devices"), &c.owner).await;
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["mac"] == d.mac.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["online"], true, "{row}");
    assert_eq!(row["board"], "bread-compact-wifi");
    let id = row["id"].as_str().unwrap().to_string();

    // Revoked: the channel closes within a second; the old token is refused; the device
    // stays bound and its next handshake brings a new token.
    let (status, _) = s
        .call(
            Method::POST,
            &s.assistant_path(&format!("/devices/{id}/revoke")),
            Some(&c.owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        ch.closed_within(Duration::from_secs(1)).await,
        "revocation cuts the channel"
    );
    assert_eq!(d.connect(&url, &token).await.err(), Some(401));
    let (_, again) = d.handshake(s).await;
    let token2 = again["websocket"]["token"]
        .as_str()
        .expect("a new token")
        .to_string();
    assert_ne!(token, token2);
    let mut ch2 = d
        .connect(&url, &token2)
        .await
        .expect("channel with the new token");
    ch2.hello().await;

    // Unbound: cut at once, the token is dead, and the next handshake shows a fresh code,
    // so whoever owns the device next can bind it.
    assert_eq!(
        s.delete(&s.assistant_path(&format!("/devices/{id}")), &c.owner)
            .await,
        StatusCode::NO_CONTENT
    );
    assert!(
        ch2.closed_within(Duration::from_secs(1)).await,
        "unbinding cuts the channel"
    );
    assert_eq!(d.connect(&url, &token2).await.err(), Some(401));
    let (_, after) = d.handshake(s).await;
    assert!(after.get("websocket").is_none(), "{after}");
    let new_code = code_of(&after);
    assert_ne!(new_code, code);
    let (status, _) = s
        .get(&s.assistant_path(&format!("/devices/{id}")), &c.owner)
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an unbound device belongs to no assistant"
    );
    let rows = s.audit_rows(&c.owner).await;
    for action in ["device.revoke", "device.unbind"] {
        assert!(rows.iter().any(|r| r.action == action), "{action}");
    }
}

/// Polls `f` until it returns something (10 s at most).
async fn loop_until<T, F, Fut>(f: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached in 10 s");
}

async fn identity_and_codes_are_not_guessable(b: Backend) {
    let c = Chat::start(b, "You help.").await;
    let s = &c.s;
    let mut d = Device::new();
    let (_, first) = d.handshake(s).await;
    let code = code_of(&first);

    // Device-Id alone proves nothing: another Client-Id, or a wrong secret, is refused.
    let mut spoof = Device {
        mac: d.mac.to_uppercase(),
        client_id: uuid::Uuid::new_v4().to_string(),
        secret: None,
        sends_secret: false,
    };
    assert_eq!(spoof.handshake(s).await.0, StatusCode::UNAUTHORIZED);
    spoof.secret = Some(format!("bds_{}", "A".repeat(43)));
    spoof.sends_secret = true;
    assert_eq!(spoof.handshake(s).await.0, StatusCode::UNAUTHORIZED);
    spoof.client_id = d.client_id.clone();
    assert_eq!(
        spoof.handshake(s).await.0,
        StatusCode::UNAUTHORIZED,
        "a wrong secret is not excused by the right Client-Id"
    );
    assert_eq!(spoof.activate(s, json!({})).await, StatusCode::UNAUTHORIZED);
    // The spoofs changed nothing: the code the device shows still binds.
    // Firmware that never sends the secret is known by its Client-Id; once a device sent
    // its secret, it is held to it.
    let legacy = Device {
        mac: d.mac.clone(),
        client_id: d.client_id.clone(),
        secret: None,
        sends_secret: false,
    };
    let mut legacy = legacy;
    assert_eq!(legacy.handshake(s).await.0, StatusCode::OK);
    let (_, shown) = d.handshake(s).await; // sends the secret: from now on it must
    let code = {
        let _ = code;
        code_of(&shown)
    };
    assert_eq!(legacy.handshake(s).await.0, StatusCode::UNAUTHORIZED);

    // A member without devices.manage cannot bind at all.
    let (_, member) = s.join(&c.owner, "member@tenant-a.test", "member").await;
    assert_eq!(
        bind(s, &member, &s.tenant.assistant_id, &code, true)
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    // A malformed code is refused without a lookup; a wrong one is a 404.
    assert_eq!(
        bind(s, &c.owner, &s.tenant.assistant_id, "12", true)
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let wrong = if code == "ZZZZZZ" { "YYYYYY" } else { "ZZZZZZ" };
    assert_eq!(
        bind(s, &c.owner, &s.tenant.assistant_id, wrong, true)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // Bound once; the same code again is a 404 (single use).
    assert_eq!(
        bind(s, &c.owner, &s.tenant.assistant_id, &code, true)
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        bind(s, &c.owner, &s.tenant.assistant_id, &code, true)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // A bound device's channel credentials go to it only.
    let (status, creds) = d.handshake(s).await;
    assert_eq!(status, StatusCode::OK);
    assert!(creds["websocket"]["token"].is_string());
    let (status, refused) = spoof.handshake(s).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(refused.get("websocket").is_none());
    // Its token with another Device-Id is refused on the channel.
    let url = creds["websocket"]["url"].as_str().unwrap();
    let other = Device::new();
    assert_eq!(
        other
            .connect(url, creds["websocket"]["token"].as_str().unwrap())
            .await
            .err(),
        Some(401)
    );
    assert_eq!(other.connect(url, "bdt_forged").await.err(), Some(401));
    let rows = s.audit_rows(&c.owner).await;
    assert!(
        rows.iter()
            .any(|r| r.action == "device.handshake" && r.outcome == "failure"),
        "spoofs of a bound device are audited"
    );
}

async fn an_expired_code_does_not_bind(b: Backend) {
    let c = Chat::start(b, "You help.").await;
    let s = &c.s;
    let mut d = Device::new();
    let (_, first) = d.handshake(s).await;
    let code = code_of(&first);
    // Ten minutes pass (the code's row is aged in the store).
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&s.database_url()).await.unwrap();
    sqlx::query("UPDATE device_activations SET expires_at = expires_at - 600001")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        bind(s, &c.owner, &s.tenant.assistant_id, &code, false)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        bind(s, &c.owner, &s.tenant.assistant_id, &code, true)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // The device's next handshake shows a new code, which binds.
    let (_, again) = d.handshake(s).await;
    assert_eq!(
        bind(s, &c.owner, &s.tenant.assistant_id, &code_of(&again), true)
            .await
            .0,
        StatusCode::CREATED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_codes_hits_a_hard_cap() {
    let c = Chat::start_with_env(
        Backend::Sqlite,
        "You help.",
        vec![("BASTION_ACTIVATION_FAILURES_USER_HOUR".into(), "3".into())],
    )
    .await;
    let s = &c.s;
    let mut d = Device::new();
    let (_, first) = d.handshake(s).await;
    let code = code_of(&first);
    let wrong = if code == "ZZZZZZ" { "YYYYYY" } else { "ZZZZZZ" };
    for _ in 0..3 {
        assert_eq!(
            bind(s, &c.owner, &s.tenant.assistant_id, wrong, true)
                .await
                .0,
            StatusCode::NOT_FOUND
        );
    }
    let res = s
        .http
        .post(s.url(&s.assistant_path("/devices/bind")))
        .bearer_auth(&c.owner)
        .json(&json!({"code": wrong, "confirm": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().get("retry-after").is_some());
    // The cap is hard: even the right code waits for the window, and nothing was bound.
    assert_eq!(
        bind(s, &c.owner, &s.tenant.assistant_id, &code, true)
            .await
            .0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(d.activate(s, json!({})).await, StatusCode::ACCEPTED);
    let failures = s
        .audit_rows(&c.owner)
        .await
        .into_iter()
        .filter(|r| r.action == "device.bind" && r.outcome == "failure")
        .count();
    assert_eq!(failures, 3);
    // Another user of the assistant has their own budget.
    let (_, admin) = s.join(&c.owner, "admin@tenant-a.test", "admin").await;
    assert_eq!(
        bind(s, &admin, &s.tenant.assistant_id, &code, true).await.0,
        StatusCode::CREATED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_binds_only_where_the_device_may_go() {
    let c = Chat::start(Backend::Sqlite, "You help.").await;
    let s = &c.s;
    // Assistant B, where a headless device is registered by MAC (no factory key).
    let b = s.new_assistant(&c.owner, "kitchen").await;
    let mut d = Device::new();
    let (status, reg) = s
        .post(
            &format!("/api/v1/assistants/{b}/devices"),
            &c.owner,
            json!({"mac": d.mac}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reg}");
    assert_eq!(reg["status"], "registered");
    // Its first contact: it waits for an admin; no channel credentials.
    let (_, first) = d.handshake(s).await;
    assert!(first.get("websocket").is_none(), "{first}");
    let code = code_of(&first);
    let (_, got) = s
        .get(
            &format!(
                "/api/v1/assistants/{b}/devices/{}",
                reg["id"].as_str().unwrap()
            ),
            &c.owner,
        )
        .await;
    assert_eq!(got["status"], "pending_approval");
    assert_eq!(got["board"], "bread-compact-wifi");
    // A user with devices.manage on A only enters B's device's code in A: not found.
    let (_, a_admin) = s.join(&c.owner, "a-admin@tenant-a.test", "admin").await;
    assert_eq!(
        bind(s, &a_admin, &s.tenant.assistant_id, &code, true)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        bind(s, &a_admin, &b, &code, true).await.0,
        StatusCode::NOT_FOUND,
        "B is not theirs to see"
    );
    // B's devices are invisible from A.
    let (status, _) = s
        .get(
            &format!(
                "{}/devices/{}",
                s.assistant_path(""),
                reg["id"].as_str().unwrap()
            ),
            &c.owner,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // B's admin approves what they see; the next handshake brings credentials.
    let (status, approved) = s
        .post(
            &format!(
                "/api/v1/assistants/{b}/devices/{}/approve",
                reg["id"].as_str().unwrap()
            ),
            &c.owner,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    let (_, creds) = d.handshake(s).await;
    assert!(creds["websocket"]["token"].is_string(), "{creds}");

    // Deleting an assistant unbinds its devices: the device shows a code again.
    assert_eq!(
        s.delete(&format!("/api/v1/assistants/{b}"), &c.owner).await,
        StatusCode::NO_CONTENT
    );
    let (_, after) = d.handshake(s).await;
    assert!(after.get("websocket").is_none(), "{after}");
    let code = code_of(&after);
    assert_eq!(
        bind(s, &c.owner, &s.tenant.assistant_id, &code, true)
            .await
            .0,
        StatusCode::CREATED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_factory_key_answer_must_be_right() {
    let c = Chat::start(Backend::Sqlite, "You help.").await;
    let s = &c.s;
    let key = "00112233445566778899aabbccddeeff";
    let mut d = Device::new();
    let (status, reg) = s
        .post(
            &s.assistant_path("/devices"),
            &c.owner,
            json!({"mac": d.mac, "serial_number": "SN-0001", "hmac_key_hex": key}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reg}");
    assert_eq!(reg["factory_key"], true);
    assert!(!reg.to_string().contains(key), "the key never comes back");
    let (_, first) = d.handshake(s).await;
    let challenge = first["activation"]["challenge"]
        .as_str()
        .unwrap()
        .to_string();
    let answer = |k: &str, ch: &str| {
        use hmac::Mac;
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(&hex::decode(k).unwrap()).unwrap();
        m.update(ch.as_bytes());
        hex::encode(m.finalize().into_bytes())
    };
    let body = |serial: &str, h: String| json!({"algorithm": "hmac-sha256", "serial_number": serial, "challenge": challenge, "hmac": h});
    // Wrong key, wrong serial, garbage: refused, nothing bound.
    assert_eq!(
        d.activate(
            s,
            body(
                "SN-0001",
                answer("ffeeddccbbaa99887766554433221100", &challenge)
            )
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        d.activate(s, body("SN-0002", answer(key, &challenge)))
            .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        d.activate(s, body("SN-0001", "zz".into())).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(d.handshake(s).await.1.get("websocket").is_none());
    // The handshake above issued a new challenge: the old answer is a replay.
    assert_eq!(
        d.activate(s, body("SN-0001", answer(key, &challenge)))
            .await,
        StatusCode::UNAUTHORIZED
    );
    let (_, now) = d.handshake(s).await;
    let fresh = now["activation"]["challenge"].as_str().unwrap().to_string();
    let right = json!({"algorithm": "hmac-sha256", "serial_number": "SN-0001", "challenge": fresh, "hmac": answer(key, &fresh)});
    assert_eq!(d.activate(s, right).await, StatusCode::OK);
    assert!(d.handshake(s).await.1["websocket"]["token"].is_string());

    // An unregistered device sending an answer bastion has no key to check is refused.
    let mut stranger = Device::new();
    let (_, f) = stranger.handshake(s).await;
    let ch = f["activation"]["challenge"].as_str().unwrap();
    assert_eq!(stranger.activate(s, json!({"algorithm": "hmac-sha256", "serial_number": "SN-9", "challenge": ch, "hmac": answer(key, ch)})).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_pairing_holds_a_bound_device_until_an_admin_approves() {
    let c = Chat::start(Backend::Sqlite, "You help.").await;
    let s = &c.s;
    let (status, p) = s
        .call(
            Method::PUT,
            &s.assistant_path("/devices/policy"),
            Some(&c.owner),
            Some(json!({"pairing": "approval", "code_kind": "alphanumeric"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    let mut d = Device::new();
    let (_, first) = d.handshake(s).await;
    let (status, bound) = bind(s, &c.owner, &s.tenant.assistant_id, &code_of(&first), true).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(bound["status"], "pending_approval");
    assert_eq!(d.activate(s, json!({})).await, StatusCode::ACCEPTED);
    let (_, waiting) = d.handshake(s).await;
    assert!(waiting.get("websocket").is_none(), "{waiting}");
    assert_eq!(
        waiting["activation"]["code"], "",
        "no new code while it waits: {waiting}"
    );
    let (status, _) = s
        .post(
            &s.assistant_path(&format!(
                "/devices/{}/approve",
                bound["id"].as_str().unwrap()
            )),
            &c.owner,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(d.activate(s, json!({})).await, StatusCode::OK);
    assert!(d.handshake(s).await.1["websocket"]["token"].is_string());
    // Digits-only codes for devices registered here, on request.
    let (status, _) = s
        .call(
            Method::PUT,
            &s.assistant_path("/devices/policy"),
            Some(&c.owner),
            Some(json!({"pairing": "auto", "code_kind": "digits"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut spoken = Device::new();
    s.post(
        &s.assistant_path("/devices"),
        &c.owner,
        json!({"mac": spoken.mac}),
    )
    .await;
    let (_, f) = spoken.handshake(s).await;
    assert!(code_of(&f).bytes().all(|b| b.is_ascii_digit()), "{f}");
    let (status, bad) = s
        .call(
            Method::PUT,
            &s.assistant_path("/devices/policy"),
            Some(&c.owner),
            Some(json!({"pairing": "sometimes", "code_kind": "digits"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_needs_hello_and_an_owner_who_may_chat() {
    let c = Chat::start(Backend::Sqlite, "You help.").await;
    let s = &c.s;
    // A device bound by an admin, who is then removed from the assistant.
    let (admin_id, admin) = s.join(&c.owner, "admin2@tenant-a.test", "admin").await;
    let mut d = Device::new();
    let (_, first) = d.handshake(s).await;
    assert_eq!(
        bind(s, &admin, &s.tenant.assistant_id, &code_of(&first), true)
            .await
            .0,
        StatusCode::CREATED
    );
    let (_, creds) = d.handshake(s).await;
    let (url, token) = (
        creds["websocket"]["url"].as_str().unwrap(),
        creds["websocket"]["token"].as_str().unwrap(),
    );
    let ch = d.connect(url, token).await.expect("channel");
    drop(ch);
    assert_eq!(
        s.delete(&s.assistant_path(&format!("/members/{admin_id}")), &c.owner)
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(d.connect(url, token).await.err(), Some(403));

    // Without hello, a channel is closed.
    let (d2, creds2) = bound_device(&c).await;
    let mut ch = d2
        .connect(
            creds2["websocket"]["url"].as_str().unwrap(),
            creds2["websocket"]["token"].as_str().unwrap(),
        )
        .await
        .unwrap();
    ch.send(json!({"type": "listen", "state": "detect", "text": "hi"}));
    assert!(ch.closed_within(Duration::from_secs(3)).await);
}

on_both_backends!(
    a_device_activates_binds_and_talks,
    identity_and_codes_are_not_guessable,
    an_expired_code_does_not_bind,
);

/// Runs an MQTT client program to completion (15 s at most): (success, stdout, stderr).
async fn run_client(program: &str, args: &[&str]) -> (bool, String, String) {
    let child = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(25), child)
        .await
        .unwrap_or_else(|_| panic!("{program} did not finish"))
        .unwrap_or_else(|e| panic!("{program}: {e} (paho-mqtt is in the venv, mosquitto-clients from Debian; bash .ci/run installs both)"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_devices_use_their_own_topics_only() {
    let c = Chat::start_with_env(
        Backend::Sqlite,
        "You help.",
        vec![("BASTION_MQTT_BIND".into(), "127.0.0.1:0".into())],
    )
    .await;
    let s = &c.s;
    let (_a, a) = bound_device(&c).await;
    let (_b, b) = bound_device(&c).await;
    let (ma, mb) = (&a["mqtt"], &b["mqtt"]);
    let port: u16 = ma["endpoint"]
        .as_str()
        .unwrap()
        .strip_prefix("127.0.0.1:")
        .expect("the endpoint on the handshake's host")
        .parse()
        .unwrap();
    assert_ne!(
        port, 0,
        "the port it listens on, not the one asked for: {a}"
    );
    assert_eq!(ma["password"], a["websocket"]["token"]);
    assert_eq!(
        ma["client_id"],
        format!("bastion-{}", ma["username"].as_str().unwrap())
    );
    assert_eq!(
        ma["publish_topic"],
        format!("devices/{}/up", ma["username"].as_str().unwrap())
    );
    let s_ = |v: &Value| v.as_str().unwrap().to_string();
    let port_s = port.to_string();

    // A real client (paho-mqtt, one connection as the firmware has) as device A.
    let script = format!(
        "{}/tests/support/mqtt/device.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let (ok, out, err) = run_client(
        &common::python(),
        &[
            &script,
            "127.0.0.1",
            &port_s,
            &s_(&ma["client_id"]),
            &s_(&ma["username"]),
            &s_(&ma["password"]),
            &s_(&ma["publish_topic"]),
            &s_(&ma["subscribe_topic"]),
            &s_(&mb["publish_topic"]),
            &s_(&mb["subscribe_topic"]),
        ],
    )
    .await;
    assert!(ok, "{out}\n{err}");
    let r: Value = serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("{out}\n{err}"));
    assert_eq!(r["connack"], "Success", "{r}");
    assert_eq!(r["own_granted"], json!([0]), "{r}");
    assert_eq!(
        r["foreign_granted"],
        json!([128]),
        "another device's topic is refused: {r}"
    );
    assert_eq!(r["hello"], true, "{r}");
    assert_eq!(r["spoke"], true, "{r}");
    let msgs = r["messages"].as_array().unwrap();
    assert!(
        msgs.iter().all(|m| m["_topic"] == ma["subscribe_topic"]),
        "{r}"
    );
    assert!(
        msgs.iter()
            .any(|m| m["type"] == "hello" && m["transport"] == "mqtt"),
        "{r}"
    );
    assert!(
        msgs.iter()
            .any(|m| m["type"] == "stt" && m["text"] == "hi over mqtt"),
        "{r}"
    );
    assert!(
        msgs.iter()
            .any(|m| m["state"] == "sentence_start" && m["text"] == "You said: hi over mqtt"),
        "{r}"
    );
    assert_eq!(
        r["disconnected_after_foreign_publish"], true,
        "publishing on another device's topic ends the connection: {r}"
    );
    let (_, convs) = s.get(&s.assistant_path("/conversations"), &c.owner).await;
    assert!(!convs.to_string().contains("pwned"));
    for conv in convs.as_array().unwrap() {
        let (_, m) = s
            .get(
                &format!(
                    "{}/conversations/{}",
                    s.assistant_path(""),
                    conv["id"].as_str().unwrap()
                ),
                &c.owner,
            )
            .await;
        assert!(
            !m.to_string().contains("pwned"),
            "nothing published on B's topic by A reached B's session"
        );
    }

    // mosquitto clients: B may not subscribe to A's topic; a wrong token is refused.
    // `as_b(password, topic option, topic, rest)`: mosquitto's arguments as device B.
    let as_b = |password: String, rest: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["-h", "127.0.0.1", "-p", &port_s, "-V", "mqttv311", "-i"]
            .iter()
            .map(|x| x.to_string())
            .collect();
        a.extend([
            s_(&mb["client_id"]),
            "-u".into(),
            s_(&mb["username"]),
            "-P".into(),
            password,
        ]);
        a.extend(rest.iter().map(|x| x.to_string()));
        a
    };
    let strs = |v: &[String]| v.iter().map(String::clone).collect::<Vec<_>>();
    let args = as_b(
        s_(&mb["password"]),
        &["-t", &s_(&ma["subscribe_topic"]), "-W", "5"],
    );
    let (_, _, err) = run_client(
        "mosquitto_sub",
        &strs(&args).iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    // mosquitto_sub reports the refused SUBACK (and exits; its status says nothing more).
    assert!(
        err.contains("All subscription requests were denied"),
        "{err}"
    );
    let publish = ["-t", &s_(&mb["publish_topic"]), "-m", "{}"];
    let args = as_b("bdt_not-the-token".into(), &publish);
    let (ok, _, err) = run_client(
        "mosquitto_pub",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    assert!(!ok && err.to_lowercase().contains("not authori"), "{err}");
    // A's token as B is refused too.
    let args = as_b(s_(&ma["password"]), &publish);
    let (ok, _, err) = run_client(
        "mosquitto_pub",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    assert!(!ok, "{err}");

    // B subscribed to its own topic, then revoked: disconnected, and its token no longer connects.
    let mut sub = tokio::process::Command::new("mosquitto_sub")
        .args(as_b(
            s_(&mb["password"]),
            &["-t", &s_(&mb["subscribe_topic"])],
        ))
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let b_id = loop_until(|| async {
        let (_, list) = s.get(&s.assistant_path("/devices"), &c.owner).await;
        list.as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == mb["username"] && d["online"] == true)
            .map(|d| d["id"].as_str().unwrap().to_string())
    })
    .await;
    let (status, _) = s
        .call(
            Method::POST,
            &s.assistant_path(&format!("/devices/{b_id}/revoke")),
            Some(&c.owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let exit = tokio::time::timeout(Duration::from_secs(5), sub.wait())
        .await
        .expect("mosquitto_sub is disconnected and cannot come back")
        .unwrap();
    assert!(!exit.success());
}

async fn device_events(s: &Server, token: &str, after: u64, wait: u64) -> (StatusCode, Value) {
    let path = s.assistant_path(&format!("/devices/events?after={after}&wait_secs={wait}"));
    s.get(&path, token).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_state_is_followed_live() {
    let c = Chat::start(Backend::Sqlite, "You help.").await;
    let s = &c.s;
    let owner = c.owner.clone();
    let events = |after: u64, wait: u64| device_events(s, &owner, after, wait);
    let (status, first) = events(0, 0).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["gap"], false);
    let cursor = first["cursor"].as_u64().unwrap();

    // Another assistant's devices do not show here.
    let other = s.new_assistant(&c.owner, "elsewhere").await;
    let mut d0 = Device::new();
    let (_, f0) = d0.handshake(s).await;
    assert_eq!(
        bind(s, &c.owner, &other, &code_of(&f0), true).await.0,
        StatusCode::CREATED
    );

    let (d, creds) = bound_device(&c).await;
    let (_, page) = events(cursor, 0).await;
    let kinds: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["bound"], "{page}");
    let cursor = page["cursor"].as_u64().unwrap();

    // A follower waiting for the next change gets it as it happens.
    let waiting = {
        let path = s.assistant_path(&format!("/devices/events?after={cursor}&wait_secs=10"));
        let (http, url, token) = (s.http.clone(), s.url(&path), c.owner.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let v: Value = http
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (v, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut ch = d
        .connect(
            creds["websocket"]["url"].as_str().unwrap(),
            creds["websocket"]["token"].as_str().unwrap(),
        )
        .await
        .unwrap();
    ch.hello().await;
    let (page, took) = waiting.await.unwrap();
    assert_eq!(page["events"][0]["kind"], "online", "{page}");
    assert!(
        took < Duration::from_secs(5),
        "answered when it happened: {took:?}"
    );
    let cursor = page["cursor"].as_u64().unwrap();
    ch.send(json!({"type": "goodbye"}));
    assert!(ch.closed_within(Duration::from_secs(2)).await);
    let (_, page) = loop_until(|| async {
        let p = events(cursor, 1).await;
        (!p.1["events"].as_array().unwrap().is_empty()).then_some(p)
    })
    .await;
    assert_eq!(page["events"][0]["kind"], "offline", "{page}");

    // Bounded waits; a cursor from the future (another run) says to reload.
    assert_eq!(events(0, 26).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(events(1_000_000, 0).await.1["gap"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_are_capped_per_address() {
    let c = Chat::start_with_env(
        Backend::Sqlite,
        "You help.",
        vec![("BASTION_DEVICE_HANDSHAKES_PER_MINUTE".into(), "3".into())],
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(Device::new().handshake(&c.s).await.0);
    }
    // Unless the minute turned over meanwhile, the fourth new device is refused, and
    // nothing was recorded for it.
    assert_eq!(&statuses[..3], &[StatusCode::OK; 3]);
    if statuses[3] == StatusCode::TOO_MANY_REQUESTS {
        let (_, list) = c.s.get(&c.s.assistant_path("/devices"), &c.owner).await;
        assert!(list.as_array().unwrap().is_empty());
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&c.s.database_url()).await.unwrap();
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM devices")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 3);
    } else {
        assert_eq!(statuses[3], StatusCode::OK, "{statuses:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_broker_asks_the_hooks_and_gets_the_same_rules() {
    let secret = "hook-secret-for-the-broker-0123456789";
    let c = Chat::start_with_env(
        Backend::Sqlite,
        "You help.",
        vec![
            ("BASTION_MQTT_BIND".into(), "127.0.0.1:0".into()),
            ("BASTION_MQTT_HOOK_SECRET".into(), secret.into()),
        ],
    )
    .await;
    let s = &c.s;
    let (_a, a) = bound_device(&c).await;
    let (_b, b) = bound_device(&c).await;
    let (ma, mb) = (&a["mqtt"], &b["mqtt"]);
    let hook = |path: &'static str, token: Option<&'static str>, body: Value| {
        let req = s.http.post(s.url(path)).json(&body);
        let req = match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        async move {
            let res = req.send().await.unwrap();
            let status = res.status();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let auth = |m: &Value, password: &Value| json!({"clientid": m["client_id"], "username": m["username"], "password": password});
    let acl = |m: &Value, topic: &Value, action: &str| json!({"clientid": m["client_id"], "username": m["username"], "topic": topic, "action": action});
    let (st, ok) = hook("/mqtt/hooks/auth", Some(secret), auth(ma, &ma["password"])).await;
    assert_eq!((st, ok["result"].clone()), (StatusCode::OK, json!("allow")));
    for wrong in [
        auth(ma, &mb["password"]),
        auth(ma, &json!("bdt_forged")),
        json!({"clientid": mb["client_id"], "username": ma["username"], "password": ma["password"]}),
    ] {
        assert_eq!(
            hook("/mqtt/hooks/auth", Some(secret), wrong).await.1["result"],
            "deny"
        );
    }
    for (m, topic, action, want) in [
        (ma, &ma["publish_topic"], "publish", "allow"),
        (ma, &ma["subscribe_topic"], "subscribe", "allow"),
        (ma, &ma["subscribe_topic"], "publish", "deny"),
        (ma, &mb["publish_topic"], "publish", "deny"),
        (ma, &mb["subscribe_topic"], "subscribe", "deny"),
        (ma, &json!("devices/#"), "subscribe", "deny"),
        (ma, &json!("devices/+/up"), "subscribe", "deny"),
    ] {
        assert_eq!(
            hook("/mqtt/hooks/acl", Some(secret), acl(m, topic, action))
                .await
                .1["result"],
            want,
            "{action} {topic}"
        );
    }
    // Only the broker holding the secret may ask.
    assert_eq!(
        hook("/mqtt/hooks/auth", None, auth(ma, &ma["password"]))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        hook(
            "/mqtt/hooks/acl",
            Some("hook-secret-for-the-broker-0123456788"),
            acl(ma, &ma["publish_topic"], "publish")
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    // A revoked device is denied by both.
    let (_, list) = s.get(&s.assistant_path("/devices"), &c.owner).await;
    let a_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == ma["username"])
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.call(
        Method::POST,
        &s.assistant_path(&format!("/devices/{a_id}/revoke")),
        Some(&c.owner),
        None,
    )
    .await;
    assert_eq!(
        hook("/mqtt/hooks/auth", Some(secret), auth(ma, &ma["password"]))
            .await
            .1["result"],
        "deny"
    );
    assert_eq!(
        hook(
            "/mqtt/hooks/acl",
            Some(secret),
            acl(ma, &ma["publish_topic"], "publish")
        )
        .await
        .1["result"],
        "deny"
    );

    // Without the setting, there are no hooks.
    let plain = Chat::start(Backend::Sqlite, "You help.").await;
    let res = plain
        .s
        .http
        .post(plain.s.url("/mqtt/hooks/auth"))
        .bearer_auth(secret)
        .json(&auth(ma, &ma["password"]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
