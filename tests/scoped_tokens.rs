//! Scoped access tokens: a user's token narrowed to one assistant and some of its
//! capabilities. It never works on another assistant (even where the user is a member) nor
//! outside its assistant's routes, never carries ownership, follows the user's live role,
//! ends with its session, and cannot be widened by editing it.

mod common;

use base64::Engine;
use common::{Backend, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Scoped {
    s: Server,
    owner: String,
}

impl Scoped {
    async fn start(b: Backend) -> Scoped {
        let s = Server::start(b).await;
        let owner = s.login(common::OWNER_EMAIL).await;
        Scoped { s, owner }
    }

    fn path(&self, rest: &str) -> String {
        self.s.assistant_path(rest)
    }

    async fn issue(&self, token: &str, assistant: &str, caps: &[&str]) -> (StatusCode, Value) {
        self.s
            .post(
                "/api/v1/auth/tokens",
                token,
                json!({"assistant_id": assistant, "capabilities": caps}),
            )
            .await
    }

    async fn scoped(&self, token: &str, caps: &[&str]) -> String {
        let (status, body) = self.issue(token, &self.s.tenant.assistant_id, caps).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    async fn new_assistant(&self, slug: &str) -> String {
        self.s.new_assistant(&self.owner, slug).await
    }

    async fn audit_actions(&self) -> Vec<(String, String)> {
        let rows = self.s.audit_rows(&self.owner).await;
        rows.into_iter().map(|r| (r.action, r.outcome)).collect()
    }
}

async fn a_scoped_token_works_only_within_its_assistant_and_capabilities(b: Backend) {
    let t = Scoped::start(b).await;
    // The owner is owner of both assistants.
    let other = t.new_assistant("other").await;
    let token = t.scoped(&t.owner, &["settings.manage"]).await;

    assert_eq!(t.s.get(&t.path(""), &token).await.0, StatusCode::OK);
    let (status, body) =
        t.s.patch(&t.path(""), &token, json!({"description": "by a script"}))
            .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The owner holds members.manage, the token does not; nor ownership.
    assert_eq!(
        t.s.get(&t.path("/members"), &token).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(t.s.delete(&t.path(""), &token).await, StatusCode::FORBIDDEN);
    // Another assistant where the user is an owner: refused all the same.
    assert_eq!(
        t.s.get(&format!("/api/v1/assistants/{other}"), &token)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // Not a token for anything but its assistant: no account routes, no minting more.
    assert_eq!(t.s.get("/api/v1/me", &token).await.0, StatusCode::FORBIDDEN);
    let (status, _) = t
        .issue(&token, &t.s.tenant.assistant_id, &["settings.manage"])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let ws = format!("/api/v1/workspaces/{}", t.s.tenant.workspace_id);
    assert_eq!(t.s.get(&ws, &token).await.0, StatusCode::FORBIDDEN);
    assert!(t
        .audit_actions()
        .await
        .contains(&("token.scoped_issue".into(), "success".into())));
}

async fn a_scoped_token_holds_no_more_than_the_role(b: Backend) {
    let t = Scoped::start(b).await;
    let (_, editor) = t.s.join(&t.owner, "ed@tenant-a.test", "editor").await;
    let (status, _) = t
        .issue(&editor, &t.s.tenant.assistant_id, &["members.manage"])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(t
        .audit_actions()
        .await
        .contains(&("escalation.refused".into(), "failure".into())));
    // An assistant the user is not a member of does not exist for them.
    let other = t.new_assistant("not-eds").await;
    assert_eq!(
        t.issue(&editor, &other, &["settings.manage"]).await.0,
        StatusCode::NOT_FOUND
    );
    for body in [
        json!({"assistant_id": t.s.tenant.assistant_id, "capabilities": []}),
        json!({"assistant_id": t.s.tenant.assistant_id, "capabilities": ["root"]}),
        json!({"assistant_id": t.s.tenant.assistant_id, "capabilities": ["chat"], "ttl_secs": 0}),
        json!({"assistant_id": t.s.tenant.assistant_id, "capabilities": ["chat"], "ttl_secs": 86400}),
        json!({"assistant_id": t.s.tenant.assistant_id, "capabilities": ["chat"], "owner": true}),
    ] {
        let (status, problem) = t.s.post("/api/v1/auth/tokens", &editor, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
    }
}

async fn a_demotion_narrows_a_scoped_token_at_once(b: Backend) {
    let t = Scoped::start(b).await;
    let (ed, editor) = t.s.join(&t.owner, "ed@tenant-a.test", "editor").await;
    let token = t.scoped(&editor, &["settings.manage"]).await;
    let rename = json!({"description": "still allowed"});
    assert_eq!(
        t.s.patch(&t.path(""), &token, rename.clone()).await.0,
        StatusCode::OK
    );
    let (status, body) =
        t.s.patch(
            &t.path(&format!("/members/{ed}")),
            &t.owner,
            json!({"role": "member"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        t.s.patch(&t.path(""), &token, rename.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    // Removed altogether: the assistant is gone for the token too.
    assert_eq!(
        t.s.delete(&t.path(&format!("/members/{ed}")), &t.owner)
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(t.s.get(&t.path(""), &token).await.0, StatusCode::NOT_FOUND);
}

async fn a_scoped_token_ends_with_its_session(b: Backend) {
    let t = Scoped::start(b).await;
    let session = t.s.login(common::OWNER_EMAIL).await;
    let token = t.scoped(&session, &["settings.manage"]).await;
    assert_eq!(t.s.get(&t.path(""), &token).await.0, StatusCode::OK);
    let (status, _) =
        t.s.call(
            reqwest::Method::POST,
            "/api/v1/auth/logout",
            Some(&session),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        t.s.get(&t.path(""), &token).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// Re-encodes a token's payload with `edit` applied, keeping header and signature.
fn tampered(token: &str, edit: impl Fn(&mut Value)) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    edit(&mut claims);
    format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(claims.to_string()),
        parts[2]
    )
}

async fn an_edited_scoped_token_is_refused(b: Backend) {
    let t = Scoped::start(b).await;
    let other = t.new_assistant("other").await;
    let token = t.scoped(&t.owner, &["traces.read"]).await;
    let wider = tampered(&token, |c| {
        c["caps"] = json!("settings.manage members.manage")
    });
    let moved = tampered(&token, |c| {
        c["aud"] = json!(format!("bastion-assistant:{other}"))
    });
    let unscoped = tampered(&token, |c| {
        c["aud"] = json!("bastion-api");
        c.as_object_mut().unwrap().remove("caps");
    });
    for (what, forged, path) in [
        ("widened", wider, t.path("/members")),
        ("moved", moved, format!("/api/v1/assistants/{other}")),
        ("unscoped", unscoped, "/api/v1/me".to_string()),
    ] {
        assert_eq!(
            t.s.get(&path, &forged).await.0,
            StatusCode::UNAUTHORIZED,
            "{what}"
        );
    }
}

on_both_backends!(
    a_scoped_token_works_only_within_its_assistant_and_capabilities,
    a_scoped_token_holds_no_more_than_the_role,
    a_demotion_narrows_a_scoped_token_at_once,
    a_scoped_token_ends_with_its_session,
    an_edited_scoped_token_is_refused,
);
