//! The audit log: security-relevant actions are recorded in a per-workspace hash chain that
//! `bastion audit verify` checks, naming the first event whose stored bytes were changed.

mod common;

use common::{Backend, Server, OWNER_EMAIL};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Connection;

async fn db(s: &Server) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(&s.database_url())
        .await
        .expect("connect to the test store")
}

fn verify(s: &Server) -> (bool, String) {
    let out = s.cli(&["audit", "verify"], None);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

async fn security_events_are_recorded_and_listed(b: Backend) {
    let s = Server::start(b).await;
    let ws = s.tenant.workspace_id.clone();
    let a = s.tenant.assistant_id.clone();
    let token = s.login(OWNER_EMAIL).await;
    s.add_user("member@tenant-a.test", false);
    s.add_member(&token, &a, "member@tenant-a.test", "member")
        .await;
    let (status, _) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/assistants/{a}"),
            Some(&token),
            Some(json!({"name": "Renamed"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": OWNER_EMAIL, "password": "wrong password!"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, page) = s
        .get(&format!("/api/v1/workspaces/{ws}/audit"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let actions: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec!["assistant.update", "member.add"],
        "newest first"
    );
    assert_eq!(
        page["items"][0]["actor"],
        json!(format!("user:{}", s.tenant.owner_id))
    );
    assert_eq!(page["items"][1]["detail"]["role"], json!("member"));

    // Pagination walks back through the chain.
    let (_, first) = s
        .get(&format!("/api/v1/workspaces/{ws}/audit?limit=1"), &token)
        .await;
    assert_eq!(first["items"].as_array().unwrap().len(), 1);
    let before = first["next_before"].as_i64().expect("a next page");
    let (_, second) = s
        .get(
            &format!("/api/v1/workspaces/{ws}/audit?limit=1&before={before}"),
            &token,
        )
        .await;
    assert_eq!(second["items"][0]["action"], json!("member.add"));
    let (status, _) = s
        .get(
            &format!("/api/v1/workspaces/{ws}/audit?limit=100000"),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s
        .get(&format!("/api/v1/workspaces/{ws}/audit?limit=abc"), &token)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Sign-ins, good and bad, go to the platform chain.
    let mut conn = db(&s).await;
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT action, outcome FROM audit_events WHERE chain = 'platform' AND action = 'auth.login' ORDER BY seq")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        rows,
        vec![
            ("auth.login".to_string(), "success".to_string()),
            ("auth.login".to_string(), "failure".to_string())
        ]
    );
    let (ok, out) = verify(&s);
    assert!(ok, "{out}");
    assert!(out.starts_with("ok:"), "{out}");
}

async fn changing_any_stored_byte_of_an_event_breaks_verification_there(b: Backend) {
    let s = Server::start(b).await;
    let ws = s.tenant.workspace_id.clone();
    let a = s.tenant.assistant_id.clone();
    let token = s.login(OWNER_EMAIL).await;
    for name in ["One", "Two", "Three"] {
        let (status, _) = s
            .call(
                Method::PATCH,
                &format!("/api/v1/assistants/{a}"),
                Some(&token),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert!(verify(&s).0);
    let mut conn = db(&s).await;
    let (id,): (String,) =
        sqlx::query_as("SELECT id FROM audit_events WHERE chain = $1 AND seq = 2")
            .bind(&ws)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let text_columns = [
        "actor",
        "action",
        "target",
        "outcome",
        "ip",
        "detail",
        "prev_hash",
        "hash",
    ];
    for col in text_columns {
        let (original,): (String,) =
            sqlx::query_as(&format!("SELECT {col} FROM audit_events WHERE id = $1"))
                .bind(&id)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        // Flip one character: the smallest change a tamperer could make.
        let mut changed: Vec<char> = original.chars().collect();
        match changed.first_mut() {
            Some(c) => *c = if *c == 'a' { 'b' } else { 'a' },
            None => changed.push('x'),
        }
        let changed: String = changed.into_iter().collect();
        sqlx::query(&format!("UPDATE audit_events SET {col} = $1 WHERE id = $2"))
            .bind(&changed)
            .bind(&id)
            .execute(&mut conn)
            .await
            .unwrap();
        let (ok, out) = verify(&s);
        assert!(!ok, "changing {col} went unnoticed: {out}");
        assert!(
            out.contains(&format!("chain {ws} at seq 2 (event {id})")),
            "{col}: {out}"
        );
        sqlx::query(&format!("UPDATE audit_events SET {col} = $1 WHERE id = $2"))
            .bind(&original)
            .bind(&id)
            .execute(&mut conn)
            .await
            .unwrap();
        assert!(verify(&s).0, "restoring {col} must verify again");
    }
    sqlx::query("UPDATE audit_events SET at = at + 1 WHERE id = $1")
        .bind(&id)
        .execute(&mut conn)
        .await
        .unwrap();
    let (ok, out) = verify(&s);
    assert!(
        !ok && out.contains(&format!("(event {id})")),
        "changed time: {out}"
    );
    sqlx::query("UPDATE audit_events SET at = at - 1 WHERE id = $1")
        .bind(&id)
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(verify(&s).0);
    // Removing an event from the middle is a gap at the next one.
    sqlx::query("DELETE FROM audit_events WHERE id = $1")
        .bind(&id)
        .execute(&mut conn)
        .await
        .unwrap();
    let (ok, out) = verify(&s);
    assert!(
        !ok && out.contains(&format!("chain {ws} at seq 3")),
        "deleted event: {out}"
    );
}

on_both_backends!(
    security_events_are_recorded_and_listed,
    changing_any_stored_byte_of_an_event_breaks_verification_there,
);
