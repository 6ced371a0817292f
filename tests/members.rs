//! Members, invitations and sign-up: who may join, with which role, and who may change it.

mod common;

use common::{Backend, Options, Server, OWNER_EMAIL, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn signup(email: &str, token: Option<&str>) -> Value {
    let mut body = json!({"email": email, "password": PASSWORD});
    if let Some(t) = token {
        body["invitation_token"] = json!(t);
    }
    body
}

async fn invite(s: &Server, token: &str, email: &str, role: &str) -> (StatusCode, Value) {
    s.post(
        &format!("/api/v1/assistants/{}/members", s.tenant.assistant_id),
        token,
        json!({"email": email, "role": role}),
    )
    .await
}

async fn members(s: &Server, token: &str) -> Vec<(String, String)> {
    let (status, body) = s
        .get(
            &format!("/api/v1/assistants/{}/members", s.tenant.assistant_id),
            token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["email"].as_str().unwrap().to_string(),
                m["role"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn inviting_an_existing_user_makes_them_a_member_at_once(b: Backend) {
    let s = Server::start(b).await;
    let owner = s.login(OWNER_EMAIL).await;
    s.add_user("existing@tenant-a.test", false);
    let (status, body) = invite(&s, &owner, "Existing@Tenant-A.test", "editor").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["role"], json!("editor"));
    assert!(body["capabilities"]
        .as_array()
        .unwrap()
        .contains(&json!("settings.manage")));
    let token = s.login("existing@tenant-a.test").await;
    let (status, _) = s
        .get(
            &format!("/api/v1/assistants/{}", s.tenant.assistant_id),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = invite(&s, &owner, "existing@tenant-a.test", "viewer").await;
    assert_eq!(status, StatusCode::CONFLICT, "already a member");
}

async fn an_invitation_is_redeemed_once_by_its_email_only(b: Backend) {
    let s = Server::start(b).await;
    let owner = s.login(OWNER_EMAIL).await;
    let (status, body) = invite(&s, &owner, "newcomer@tenant-a.test", "viewer").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let token = body["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("bsi_"));
    // The token is shown once: listing invitations never shows it.
    let (_, pending) = s
        .get(
            &format!("/api/v1/assistants/{}/invitations", s.tenant.assistant_id),
            &owner,
        )
        .await;
    assert_eq!(pending[0]["email"], json!("newcomer@tenant-a.test"));
    assert!(!pending.to_string().contains(&token));

    // Invite mode: no token, a wrong token, or the right token for another email all fail.
    let call = |body: Value| sign_up(&s, body);
    assert_eq!(
        call(signup("newcomer@tenant-a.test", None)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(signup("newcomer@tenant-a.test", Some("bsi_forged")))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(signup("thief@elsewhere.test", Some(&token))).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.cli(&["users", "list"], None)
            .stdout
            .windows(5)
            .filter(|w| w == b"thief")
            .count(),
        0
    );

    let (status, body) = call(signup("newcomer@tenant-a.test", Some(&token))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let joined = s.login("newcomer@tenant-a.test").await;
    let (_, me) = s.get("/api/v1/me", &joined).await;
    assert_eq!(me["assistants"][0]["role"], json!("viewer"));
    // Replay: the spent token creates nothing.
    let (status, _) = call(signup("newcomer@tenant-a.test", Some(&token))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, pending) = s
        .get(
            &format!("/api/v1/assistants/{}/invitations", s.tenant.assistant_id),
            &owner,
        )
        .await;
    assert_eq!(pending, json!([]));
}

async fn a_revoked_invitation_cannot_be_redeemed(b: Backend) {
    let s = Server::start(b).await;
    let owner = s.login(OWNER_EMAIL).await;
    let (_, body) = invite(&s, &owner, "late@tenant-a.test", "member").await;
    let id = body["invitation"]["id"].as_str().unwrap();
    let token = body["token"].as_str().unwrap();
    let path = format!(
        "/api/v1/assistants/{}/invitations/{id}",
        s.tenant.assistant_id
    );
    assert_eq!(s.delete(&path, &owner).await, StatusCode::NO_CONTENT);
    let (status, _) = s
        .call(
            Method::POST,
            "/api/v1/auth/signup",
            None,
            Some(signup("late@tenant-a.test", Some(token))),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn sign_up(s: &Server, body: Value) -> (StatusCode, Value) {
    s.call(Method::POST, "/api/v1/auth/signup", None, Some(body))
        .await
}

async fn signup_follows_the_configured_mode(b: Backend) {
    let closed = Server::start_serving(b, &["--signup", "closed"]).await;
    let (status, body) = sign_up(&closed, signup("x@y.test", None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    drop(closed);
    let open = Server::start_with(
        b,
        Options {
            env: vec![("BASTION_SIGNUP".into(), "open".into())],
            ..Options::default()
        },
    )
    .await;
    let (status, body) = sign_up(&open, signup("x@y.test", None)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = sign_up(&open, signup("X@y.test", None)).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "emails are unique whatever their case"
    );
    let weak = json!({"email": "weak@y.test", "password": "short"});
    assert_eq!(
        sign_up(&open, weak).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // The new account sees nothing.
    let token = open.login("x@y.test").await;
    let (_, me) = open.get("/api/v1/me", &token).await;
    assert_eq!(
        (me["assistants"].clone(), me["workspaces"].clone()),
        (json!([]), json!([]))
    );
}

async fn the_last_owner_cannot_be_removed_or_demoted(b: Backend) {
    let s = Server::start(b).await;
    let owner = s.login(OWNER_EMAIL).await;
    let me = &s.tenant.owner_id;
    let path = format!("/api/v1/assistants/{}/members/{me}", s.tenant.assistant_id);
    let (status, body) = s.patch(&path, &owner, json!({"role": "admin"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(s.delete(&path, &owner).await, StatusCode::CONFLICT);
    assert_eq!(
        members(&s, &owner).await,
        vec![(OWNER_EMAIL.to_string(), "owner".to_string())]
    );
    // Once ownership has passed to someone else (the one way an owner steps down), the
    // former owner is an admin and may leave; the new owner is now the last one.
    let second_id = s.add_user("second@tenant-a.test", false);
    s.add_member(
        &owner,
        &s.tenant.assistant_id,
        "second@tenant-a.test",
        "member",
    )
    .await;
    let transfer = format!(
        "/api/v1/assistants/{}/ownership-transfer",
        s.tenant.assistant_id
    );
    let (status, body) = s
        .post(&transfer, &owner, json!({"user_id": second_id}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let second = s.login("second@tenant-a.test").await;
    let (status, body) = s
        .call(
            Method::POST,
            &format!("{transfer}/accept"),
            Some(&second),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second_path = format!(
        "/api/v1/assistants/{}/members/{second_id}",
        s.tenant.assistant_id
    );
    let (status, body) = s
        .patch(&second_path, &second, json!({"role": "admin"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(s.delete(&second_path, &second).await, StatusCode::CONFLICT);
    assert_eq!(s.delete(&path, &owner).await, StatusCode::NO_CONTENT);
}

async fn nobody_grants_more_than_they_hold(b: Backend) {
    let s = Server::start(b).await;
    let owner = s.login(OWNER_EMAIL).await;
    let a = s.tenant.assistant_id.clone();
    s.add_user("admin@tenant-a.test", false);
    s.add_member(&owner, &a, "admin@tenant-a.test", "admin")
        .await;
    let admin = s.login("admin@tenant-a.test").await;
    s.add_user("someone@tenant-a.test", false);
    // An admin cannot make an owner (nor can anyone by invitation: ownership is
    // transferred), nor touch one.
    let (status, _) = invite(&s, &admin, "someone@tenant-a.test", "owner").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let owner_path = format!("/api/v1/assistants/{a}/members/{}", s.tenant.owner_id);
    assert_eq!(
        s.patch(&owner_path, &admin, json!({"role": "member"}))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(s.delete(&owner_path, &admin).await, StatusCode::FORBIDDEN);
    // …but may add an editor, and change that editor.
    let (status, body) = invite(&s, &admin, "someone@tenant-a.test", "editor").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let uid = body["user_id"].as_str().unwrap();
    let path = format!("/api/v1/assistants/{a}/members/{uid}");
    assert_eq!(
        s.patch(&path, &admin, json!({"role": "viewer"})).await.0,
        StatusCode::OK
    );
    // Fields nobody may set are refused, not silently applied.
    let (status, _) = s
        .patch(
            &path,
            &admin,
            json!({"role": "viewer", "user_id": s.tenant.owner_id}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = invite(&s, &admin, "x@y.test", "superuser").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(s.delete(&path, &admin).await, StatusCode::NO_CONTENT);
    let list = members(&s, &owner).await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list.contains(&(OWNER_EMAIL.to_string(), "owner".to_string())));
}

async fn a_role_change_applies_on_the_next_request(b: Backend) {
    let s = Server::start(b).await;
    let owner = s.login(OWNER_EMAIL).await;
    let a = s.tenant.assistant_id.clone();
    let uid = s.add_user("editor@tenant-a.test", false);
    s.add_member(&owner, &a, "editor@tenant-a.test", "editor")
        .await;
    let editor = s.login("editor@tenant-a.test").await;
    let patch = |t: String| {
        let s = &s;
        let a = a.clone();
        async move {
            s.patch(&format!("/api/v1/assistants/{a}"), &t, json!({"name": "x"}))
                .await
                .0
        }
    };
    assert_eq!(patch(editor.clone()).await, StatusCode::OK);
    let path = format!("/api/v1/assistants/{a}/members/{uid}");
    assert_eq!(
        s.patch(&path, &owner, json!({"role": "viewer"})).await.0,
        StatusCode::OK
    );
    assert_eq!(
        patch(editor.clone()).await,
        StatusCode::FORBIDDEN,
        "the same token, the new role"
    );
    assert_eq!(s.delete(&path, &owner).await, StatusCode::NO_CONTENT);
    assert_eq!(
        patch(editor.clone()).await,
        StatusCode::NOT_FOUND,
        "removed: the assistant is gone from view"
    );
}

on_both_backends!(
    inviting_an_existing_user_makes_them_a_member_at_once,
    an_invitation_is_redeemed_once_by_its_email_only,
    a_revoked_invitation_cannot_be_redeemed,
    signup_follows_the_configured_mode,
    the_last_owner_cannot_be_removed_or_demoted,
    nobody_grants_more_than_they_hold,
    a_role_change_applies_on_the_next_request,
);
