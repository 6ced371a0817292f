//! Property-level authorization, generated from `GET /openapi.json`: on every operation that
//! takes a body, fields a caller may not set (ids, tenancy, ownership, roles, timestamps,
//! secrets' hashes) are refused when the operation does not declare them, before anything
//! changes; and no read returns a secret or a field that stands for one.

mod common;

use common::openapi::{fill_path, operations, random_id, send, Fill, Op, PROBLEM_JSON};
use common::{Backend, Server, OWNER_EMAIL};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Fields a client must never choose for itself: the server assigns them or derives them.
const NOT_SETTABLE: &[&str] = &[
    "id",
    "workspace_id",
    "assistant_id",
    "user_id",
    "owner",
    "owner_id",
    "role",
    "is_operator",
    "capabilities",
    "created_by",
    "created_at",
    "updated_at",
    "revoked_at",
    "last_used_at",
    "prefix",
    "key_hash",
    "password_hash",
    "status",
];

/// Field names no response may carry.
const NEVER_READABLE: &[&str] = &[
    "password",
    "password_hash",
    "key_hash",
    "token_hash",
    "secret",
    "totp_secret",
    "key",
    "refresh_token",
];

fn fill() -> Fill {
    [
        ("email", json!("invitee@tenant-a.test")),
        ("role", json!("member")),
        ("name", json!("Renamed")),
        ("slug", json!("renamed-{n}")),
        ("domain", json!("prop-{n}.test")),
        ("capabilities", json!(["traces.read"])),
    ]
    .into_iter()
    .collect()
}

fn path_for(s: &Server, op: &Op) -> String {
    fill_path(&op.path, &|name| match name {
        "assistant_id" => s.tenant.assistant_id.clone(),
        "workspace_id" => s.tenant.workspace_id.clone(),
        "provider" => "github".into(),
        _ => random_id(),
    })
}

async fn fields_nobody_may_set_are_refused_on_every_body(b: Backend) {
    let s = Server::start(b).await;
    let owner = s.login(OWNER_EMAIL).await;
    let ops = operations(&s, &fill()).await;
    let before = s.get(&s.assistant_path(""), &owner).await.1;
    let mut failures = Vec::new();
    let mut probes = 0;
    // The OpenAI-compatible API (`key:` access) takes OpenAI's wire format, whose clients send
    // fields bastion does not model (`user`, `seed`, `metadata`, …); it ignores what it does
    // not read, and what decides the answer is the key's assistant's
    // (tests/openai_sdk.rs, tests/conversations.rs).
    // The device handshake (`POST /ota/`) takes the xiaozhi firmware's system information,
    // whose fields differ between firmware versions; it reads the board and the version and
    // ignores the rest, and assigns nothing from it (tests/devices.rs).
    for op in ops
        .iter()
        .filter(|o| o.body.is_some() && !o.access.starts_with("key:") && o.path != "/ota/")
    {
        let Some(body) = op.body.as_ref().and_then(Value::as_object) else {
            continue;
        };
        let path = path_for(&s, op);
        for field in NOT_SETTABLE.iter().filter(|f| !body.contains_key(**f)) {
            let mut with = body.clone();
            with.insert(field.to_string(), json!(random_id()));
            let probe = Op {
                body: Some(Value::Object(with)),
                ..op.clone()
            };
            let answer = send(&s, &probe, &path, Some(&owner)).await;
            probes += 1;
            // Refused for that field (bodies built from the schema are otherwise well-typed),
            // not for some other reason that would hide a field being accepted.
            let for_the_field = answer.body.contains(&format!("unknown field `{field}`"));
            if answer.status != StatusCode::UNPROCESSABLE_ENTITY
                || answer.content_type != PROBLEM_JSON
                || !for_the_field
            {
                failures.push(format!(
                    "{} with `{field}`: expected 422 problem+json naming it, got {} {}",
                    op.label(),
                    answer.status,
                    answer.body
                ));
            }
        }
    }
    eprintln!("{probes} bodies with a field nobody may set, on {b:?}");
    assert!(probes > 100, "only {probes} probes: is the document empty?");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let after = s.get(&s.assistant_path(""), &owner).await.1;
    assert_eq!(before, after, "a refused body changed the assistant");
}

/// Every key of a JSON document, at any depth.
fn keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                out.push(k.clone());
                keys(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

async fn no_read_returns_a_secret(b: Backend) {
    let s = Server::start(b).await;
    let owner = s.login(OWNER_EMAIL).await;
    // Secrets the reads could leak: an API key, an invitation token, a refresh token.
    let (status, key) = s
        .post(
            &s.assistant_path("/api-keys"),
            &owner,
            json!({"name": "k", "capabilities": ["traces.read"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let (status, inv) = s
        .post(
            &s.assistant_path("/members"),
            &owner,
            json!({"email": "later@x.test", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{inv}");
    let provider_secret = "sk-properties-0123456789abcdef";
    let (status, pk) = s
        .post(
            &format!("/api/v1/workspaces/{}/provider-keys", s.tenant.workspace_id),
            &owner,
            json!({"provider": "openai", "label": "p", "secret": provider_secret}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{pk}");
    let session = s.sign_in(OWNER_EMAIL).await;
    let secrets = [
        key["key"].as_str().unwrap().to_string(),
        inv["token"].as_str().unwrap().to_string(),
        session["refresh_token"].as_str().unwrap().to_string(),
        common::PASSWORD.to_string(),
        provider_secret[..20].to_string(),
    ];
    let key_id = key["api_key"]["id"].as_str().unwrap().to_string();

    let ops = operations(&s, &fill()).await;
    let mut reads = 0;
    for op in ops.iter().filter(|o| o.method == Method::GET) {
        let path = fill_path(&op.path, &|name| match name {
            "assistant_id" => s.tenant.assistant_id.clone(),
            "workspace_id" => s.tenant.workspace_id.clone(),
            "key_id" => key_id.clone(),
            "provider_key_id" => pk["id"].as_str().unwrap_or_default().to_string(),
            "provider" => "github".into(),
            _ => random_id(),
        });
        let answer = send(&s, op, &path, Some(&owner)).await;
        reads += 1;
        for secret in &secrets {
            assert!(
                !answer.body.contains(secret.as_str()),
                "{}: the answer holds a secret",
                op.label()
            );
        }
        // The document describes the shapes (an API key is returned once, at creation);
        // metrics are plain text. Both were checked for secrets above.
        if op.path == "/openapi.json" {
            continue;
        }
        let Ok(doc) = serde_json::from_str::<Value>(&answer.body) else {
            continue;
        };
        let mut names = Vec::new();
        keys(&doc, &mut names);
        for name in names {
            assert!(
                !NEVER_READABLE.contains(&name.as_str()),
                "{}: the answer has a field `{name}`",
                op.label()
            );
        }
    }
    assert!(reads > 15, "only {reads} reads");
}

on_both_backends!(
    fields_nobody_may_set_are_refused_on_every_body,
    no_read_returns_a_secret,
);
