//! Assistant API keys: shown once and stored only as a hash; they work only on their own
//! assistant's routes and within their capabilities; revoked or expired keys stop at once;
//! source ranges and request rates are enforced; nobody (no key either) hands out a key
//! holding more than they do; and every creation, revocation and refusal is audited.

mod common;

use common::{Backend, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Keys {
    s: Server,
    owner: String,
}

impl Keys {
    async fn start(b: Backend) -> Keys {
        let s = Server::start(b).await;
        let owner = s.login(common::OWNER_EMAIL).await;
        Keys { s, owner }
    }

    fn path(&self, rest: &str) -> String {
        self.s.assistant_path(rest)
    }

    async fn create(&self, token: &str, body: Value) -> (StatusCode, Value) {
        self.s.post(&self.path("/api-keys"), token, body).await
    }

    /// A new key with `caps`, created by the owner; returns (id, key).
    async fn key(&self, caps: &[&str]) -> (String, String) {
        let (status, body) = self
            .create(&self.owner, json!({"name": "ci", "capabilities": caps}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["api_key"]["id"].as_str().unwrap().to_string(),
            body["key"].as_str().unwrap().to_string(),
        )
    }

    async fn audit(&self) -> Vec<(String, String, String)> {
        let rows = self.s.audit_rows(&self.owner).await;
        rows.into_iter()
            .map(|r| (r.action, r.outcome, r.actor))
            .collect()
    }
}

async fn a_key_is_shown_once_and_stored_only_as_a_hash(b: Backend) {
    let t = Keys::start(b).await;
    let (status, body) = t
        .create(
            &t.owner,
            json!({"name": "ci", "capabilities": ["settings.manage"], "rate_limit_per_minute": 600,
                   "monthly_spend_cap_usd": 12.5, "allowed_cidrs": ["127.0.0.1", "10.0.0.0/8"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key = body["key"].as_str().unwrap();
    assert!(key.starts_with("bst_"), "{key}");
    // 32 random bytes, base64url: 43 characters after the prefix.
    assert_eq!(key.len(), 4 + 43);
    let view = &body["api_key"];
    assert_eq!(view["prefix"], &key[..12]);
    assert_eq!(view["status"], "active");
    assert_eq!(view["monthly_spend_cap_usd"], 12.5);
    assert_eq!(view["allowed_cidrs"], json!(["127.0.0.1/32", "10.0.0.0/8"]));

    let (status, list) = t.s.get(&t.path("/api-keys"), &t.owner).await;
    assert_eq!(status, StatusCode::OK);
    let text = list.to_string();
    assert!(!text.contains(&key[12..]), "the list shows the key: {text}");
    assert_eq!(list.as_array().unwrap().len(), 1);

    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&t.s.database_url())
        .await
        .unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT prefix, key_hash FROM api_keys")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].1.contains(&key[4..]), "the key is stored in clear");
    assert_eq!(rows[0].0, &key[..12]);
}

async fn a_key_works_only_within_its_capabilities_and_assistant(b: Backend) {
    let t = Keys::start(b).await;
    let other = t.s.new_assistant(&t.owner, "second").await;
    let (_, key) = t.key(&["settings.manage"]).await;

    assert_eq!(t.s.get(&t.path(""), &key).await.0, StatusCode::OK);
    let (status, body) =
        t.s.patch(&t.path(""), &key, json!({"name": "Renamed by a program"}))
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Not a capability of the key, though its creator holds it.
    assert_eq!(
        t.s.get(&t.path("/api-keys"), &key).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        t.s.delete(&t.path(""), &key).await,
        StatusCode::FORBIDDEN,
        "a key is never an owner"
    );
    // Another assistant of the same workspace and owner: not found for this key.
    assert_eq!(
        t.s.get(&format!("/api/v1/assistants/{other}"), &key)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // Routes that are not about its assistant.
    for path in [
        "/api/v1/me".to_string(),
        "/api/v1/assistants".to_string(),
        format!("/api/v1/workspaces/{}", t.s.tenant.workspace_id),
        "/api/v1/auth/sessions".to_string(),
    ] {
        assert_eq!(
            t.s.get(&path, &key).await.0,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    // Guessed and malformed keys.
    let mut guessed = key.clone();
    guessed.replace_range(20..21, if &key[20..21] == "A" { "B" } else { "A" });
    for bad in [guessed.as_str(), "bst_", "bst_short"] {
        assert_eq!(
            t.s.get(&t.path(""), bad).await.0,
            StatusCode::UNAUTHORIZED,
            "{bad}"
        );
    }
    // A refused write is audited as an attempt, once a minute per key and route however
    // often it is repeated (here: the delete above, and these); refused reads are not.
    for _ in 0..3 {
        let body = json!({"name": "more", "capabilities": ["settings.manage"]});
        assert_eq!(t.create(&key, body).await.0, StatusCode::FORBIDDEN);
    }
    let events = t.audit().await;
    assert!(events.iter().any(|(a, o, actor)| a == "assistant.update"
        && o == "success"
        && actor.starts_with("key:")));
    let denied = events
        .iter()
        .filter(|(a, _, actor)| a == "access.denied" && actor.starts_with("key:"))
        .count();
    assert_eq!(denied, 2, "{events:?}");
}

async fn a_revoked_key_stops_at_once(b: Backend) {
    let t = Keys::start(b).await;
    let (id, key) = t.key(&["settings.manage"]).await;
    assert_eq!(t.s.get(&t.path(""), &key).await.0, StatusCode::OK);
    assert_eq!(
        t.s.delete(&t.path(&format!("/api-keys/{id}")), &t.owner)
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(t.s.get(&t.path(""), &key).await.0, StatusCode::UNAUTHORIZED);
    let (_, view) = t.s.get(&t.path(&format!("/api-keys/{id}")), &t.owner).await;
    assert_eq!(view["status"], "revoked");
    assert!(view["revoked_at"].is_string());
    // Revoking again changes nothing and records nothing new.
    assert_eq!(
        t.s.delete(&t.path(&format!("/api-keys/{id}")), &t.owner)
            .await,
        StatusCode::NO_CONTENT
    );
    let events = t.audit().await;
    let count = |action: &str| events.iter().filter(|(a, _, _)| a == action).count();
    assert_eq!(count("api_key.create"), 1);
    assert_eq!(count("api_key.revoke"), 1);
}

async fn nobody_hands_out_a_key_holding_more_than_they_do(b: Backend) {
    let t = Keys::start(b).await;
    // An editor lacks keys.manage altogether.
    let (_, editor) = t.s.join(&t.owner, "ed@tenant-a.test", "editor").await;
    let (status, _) = t
        .create(
            &editor,
            json!({"name": "x", "capabilities": ["settings.manage"]}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A key that may manage keys cannot mint a wider one, only one within its own.
    let (key_id, manager) = t.key(&["keys.manage", "traces.read"]).await;
    let (status, body) = t
        .create(
            &manager,
            json!({"name": "wider", "capabilities": ["keys.manage", "settings.manage"]}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = t
        .create(
            &manager,
            json!({"name": "narrower", "capabilities": ["traces.read"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["api_key"]["created_by"], format!("key:{key_id}"));

    // Nobody gives a key members.manage, not even an owner.
    let (status, _) = t
        .create(
            &t.owner,
            json!({"name": "x", "capabilities": ["members.manage"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (_, list) = t.s.get(&t.path("/api-keys"), &t.owner).await;
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let events = t.audit().await;
    let refused: Vec<_> = events
        .iter()
        .filter(|(a, o, _)| a == "escalation.refused" && o == "failure")
        .collect();
    assert_eq!(refused.len(), 1, "{events:?}");
    assert_eq!(refused[0].2, format!("key:{key_id}"));
}

async fn fields_a_caller_may_not_set_are_refused(b: Backend) {
    let t = Keys::start(b).await;
    for extra in [
        json!({"id": "0190a0a0-0000-7000-8000-000000000000"}),
        json!({"assistant_id": "0190a0a0-0000-7000-8000-000000000000"}),
        json!({"created_by": "user:someone"}),
        json!({"prefix": "bst_chosen"}),
        json!({"key": "bst_chosen_by_the_caller_000000000000000000000"}),
        json!({"revoked_at": null}),
    ] {
        let mut body = json!({"name": "x", "capabilities": ["traces.read"]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, problem) = t.create(&t.owner, body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{extra}: {problem}"
        );
    }
    for (bad, why) in [
        (json!({"expires_at": "2001-01-01T00:00:00Z"}), "past"),
        (json!({"expires_at": "tomorrow"}), "not RFC 3339"),
        (json!({"allowed_cidrs": ["10.0.0.0/33"]}), "bad range"),
        (json!({"rate_limit_per_minute": 0}), "zero rate"),
        (json!({"monthly_spend_cap_usd": -1}), "negative cap"),
        (json!({"capabilities": []}), "no capability"),
        (json!({"capabilities": ["root"]}), "unknown capability"),
    ] {
        let mut body = json!({"name": "x", "capabilities": ["traces.read"]});
        body.as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        let (status, problem) = t.create(&t.owner, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{why}: {problem}");
    }
    let (_, list) = t.s.get(&t.path("/api-keys"), &t.owner).await;
    assert_eq!(list, json!([]), "a refused request created a key");
}

async fn limits_of_a_key_are_enforced(b: Backend) {
    let t = Keys::start(b).await;
    let t = &t;
    let create = |body: Value| async move {
        let (status, created) = t.create(&t.owner, body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["key"].as_str().unwrap().to_string()
    };
    let elsewhere = create(
        json!({"name": "office", "capabilities": ["settings.manage"], "allowed_cidrs": ["10.0.0.0/8"]}),
    )
    .await;
    let (status, body) = t.s.get(&t.path(""), &elsewhere).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let here = create(
        json!({"name": "local", "capabilities": ["settings.manage"], "allowed_cidrs": ["127.0.0.1"]}),
    )
    .await;
    assert_eq!(t.s.get(&t.path(""), &here).await.0, StatusCode::OK);

    // Three a minute: of seven quick requests at least one is refused whichever way a
    // minute boundary falls, with Retry-After.
    let limited = create(
        json!({"name": "slow", "capabilities": ["settings.manage"], "rate_limit_per_minute": 3}),
    )
    .await;
    let mut refused = 0;
    for _ in 0..7 {
        let res =
            t.s.http
                .get(t.s.url(&t.path("")))
                .bearer_auth(&limited)
                .send()
                .await
                .unwrap();
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(res.headers().contains_key("retry-after"));
            refused += 1;
        }
    }
    assert!(refused >= 1, "no request refused past the rate limit");

    let expires = (time::OffsetDateTime::now_utc() + time::Duration::seconds(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let brief = create(
        json!({"name": "brief", "capabilities": ["settings.manage"], "expires_at": expires}),
    )
    .await;
    assert_eq!(t.s.get(&t.path(""), &brief).await.0, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        t.s.get(&t.path(""), &brief).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn last_use_is_recorded(b: Backend) {
    let t = Keys::start(b).await;
    let (id, key) = t.key(&["settings.manage"]).await;
    let (_, before) = t.s.get(&t.path(&format!("/api-keys/{id}")), &t.owner).await;
    assert!(before["last_used_at"].is_null());
    assert_eq!(t.s.get(&t.path(""), &key).await.0, StatusCode::OK);
    let mut used = Value::Null;
    for _ in 0..50 {
        let (_, view) = t.s.get(&t.path(&format!("/api-keys/{id}")), &t.owner).await;
        used = view["last_used_at"].clone();
        if used.is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(used.is_string(), "last_used_at never set");
}

on_both_backends!(
    a_key_is_shown_once_and_stored_only_as_a_hash,
    a_key_works_only_within_its_capabilities_and_assistant,
    a_revoked_key_stops_at_once,
    nobody_hands_out_a_key_holding_more_than_they_do,
    fields_a_caller_may_not_set_are_refused,
    limits_of_a_key_are_enforced,
    last_use_is_recorded,
);
