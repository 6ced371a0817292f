//! The request flow end to end: health, the signed-in path, tenant resolution by path and
//! Host, the request log line, metrics, and problem+json for every refusal.

mod common;

use common::{Backend, Options, Server, OWNER_EMAIL};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn health_and_readiness_answer(b: Backend) {
    let s = Server::start(b).await;
    let (status, body) = s.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = s.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );
}

async fn the_owner_signs_in_and_reads_their_assistant(b: Backend) {
    let s = Server::start(b).await;
    let token = s.login(OWNER_EMAIL).await;
    let a = &s.tenant.assistant_id;
    let (status, body) = s.get(&format!("/api/v1/assistants/{a}"), &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], json!(a));
    let (status, me) = s.get("/api/v1/me", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"]["email"], json!(OWNER_EMAIL));
    assert_eq!(me["assistants"][0]["role"], json!("owner"));
    assert!(
        me["assistants"][0]["capabilities"]
            .as_array()
            .unwrap()
            .len()
            == 14
    );
    assert_eq!(me["workspaces"][0]["id"], json!(s.tenant.workspace_id));
}

async fn an_account_alone_grants_nothing(b: Backend) {
    let s = Server::start(b).await;
    s.add_user("loner@example.test", false);
    let token = s.login("loner@example.test").await;
    let (_, me) = s.get("/api/v1/me", &token).await;
    assert_eq!(me["assistants"], json!([]));
    assert_eq!(me["workspaces"], json!([]));
    let (status, _) = s
        .get(
            &format!("/api/v1/assistants/{}", s.tenant.assistant_id),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .post("/api/v1/workspaces", &token, json!({"name": "mine"}))
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "only operators create workspaces"
    );
}

async fn no_token_is_a_401_problem(b: Backend) {
    let s = Server::start(b).await;
    let res = s
        .http
        .get(s.url(&format!("/api/v1/assistants/{}", s.tenant.assistant_id)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert!(res.headers().contains_key("x-request-id"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], json!(401));
}

async fn host_and_path_resolve_the_same_assistant_or_404(b: Backend) {
    let s = Server::start_serving(b, &["--base-domain", "bastion.test"]).await;
    let token = s.login(OWNER_EMAIL).await;
    let a = s.tenant.assistant_id.clone();
    let path = format!("/api/v1/assistants/{a}");
    // The slug subdomain of the same assistant agrees with the path.
    assert_eq!(
        s.get_via_host(&path, "assistant.bastion.test", &token)
            .await,
        StatusCode::OK
    );
    // A slug that names no assistant is a 404.
    assert_eq!(
        s.get_via_host(&path, "nobody.bastion.test", &token).await,
        StatusCode::NOT_FOUND
    );
    // A second assistant's Host disagreeing with the path is a 404.
    let ws = &s.tenant.workspace_id;
    let (status, other) = s
        .post(
            &format!("/api/v1/workspaces/{ws}/assistants"),
            &token,
            json!({"slug": "second", "name": "Second"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    assert_eq!(
        s.get_via_host(&path, "second.bastion.test", &token).await,
        StatusCode::NOT_FOUND
    );
    // A custom domain resolves to its assistant; disagreeing with the path it is a 404.
    let second = format!("/api/v1/assistants/{}", other["id"].as_str().unwrap());
    let (status, _) = s
        .post(
            &format!("{second}/domains"),
            &token,
            json!({"domain": "chat.customer.test"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        s.get_via_host(&path, "chat.customer.test", &token).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get_via_host(&second, "chat.customer.test", &token).await,
        StatusCode::OK
    );
    // Renaming the slug invalidates the cached resolution at once.
    assert_eq!(
        s.patch(&second, &token, json!({"slug": "renamed"})).await.0,
        StatusCode::OK
    );
    assert_eq!(
        s.get_via_host(&second, "second.bastion.test", &token).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get_via_host(&second, "renamed.bastion.test", &token)
            .await,
        StatusCode::OK
    );
}

async fn every_request_is_logged_and_counted(b: Backend) {
    let s = Server::start_with(
        b,
        Options {
            env: vec![("BASTION_LOG_LEVEL".into(), "info".into())],
            ..Options::default()
        },
    )
    .await;
    let token = s.login(OWNER_EMAIL).await;
    let a = &s.tenant.assistant_id;
    let res = s
        .http
        .get(s.url(&format!("/api/v1/assistants/{a}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let (_, _) = s
        .call(Method::GET, "/api/v1/me", Some("not-a-token"), None)
        .await;
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("bastion_http_requests_total"), "{metrics}");
    assert!(
        metrics.contains(r#"route="/api/v1/assistants/{assistant_id}""#),
        "{metrics}"
    );
    assert!(
        metrics.contains("bastion_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(metrics.contains("bastion_auth_failures_total"), "{metrics}");
    // The log line names the request, its route, status, principal and assistant.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logs = s.logs();
    let line = logs
        .iter()
        .find(|l| l.contains(&request_id))
        .unwrap_or_else(|| panic!("no log line for {request_id}: {logs:?}"));
    assert!(line.contains("status=200"), "{line}");
    assert!(
        line.contains(&format!("principal=user:{}", s.tenant.owner_id)),
        "{line}"
    );
    assert!(line.contains(&format!("assistant={a}")), "{line}");
    assert!(line.contains("latency_us="), "{line}");
}

async fn workspaces_and_assistants_live_and_die_through_the_api(b: Backend) {
    let s = Server::start(b).await;
    s.add_user("operator@example.test", true);
    let op = s.login("operator@example.test").await;
    let (status, ws) = s
        .post("/api/v1/workspaces", &op, json!({"name": "Acme"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ws}");
    assert_eq!(ws["role"], json!("owner"));
    let w = ws["id"].as_str().unwrap().to_string();
    let (status, renamed) = s
        .patch(
            &format!("/api/v1/workspaces/{w}"),
            &op,
            json!({"name": "Acme Inc"}),
        )
        .await;
    assert_eq!(
        (status, renamed["name"].as_str()),
        (StatusCode::OK, Some("Acme Inc"))
    );
    let (status, a) = s
        .post(
            &format!("/api/v1/workspaces/{w}/assistants"),
            &op,
            json!({"slug": "acme-help", "name": "Help", "description": "d"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    let id = a["id"].as_str().unwrap().to_string();
    let (status, _) = s
        .post(
            &format!("/api/v1/workspaces/{w}/assistants"),
            &op,
            json!({"slug": "acme-help", "name": "Dup"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "slugs are unique");
    let (_, mine) = s.get("/api/v1/assistants", &op).await;
    assert_eq!(mine[0]["slug"], json!("acme-help"));
    assert_eq!(mine[0]["role"], json!("owner"));
    // An admin may change the assistant but not delete it; the owner may.
    s.add_user("admin@example.test", false);
    s.add_member(&op, &id, "admin@example.test", "admin").await;
    let admin = s.login("admin@example.test").await;
    assert_eq!(
        s.delete(&format!("/api/v1/assistants/{id}"), &admin).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.delete(&format!("/api/v1/assistants/{id}"), &op).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.get(&format!("/api/v1/assistants/{id}"), &op).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get(&format!("/api/v1/assistants/{id}"), &admin).await.0,
        StatusCode::NOT_FOUND
    );
    // Deleting the workspace takes its assistants with it.
    let (_, b2) = s
        .post(
            &format!("/api/v1/workspaces/{w}/assistants"),
            &op,
            json!({"slug": "acme-two", "name": "Two"}),
        )
        .await;
    let second = b2["id"].as_str().unwrap().to_string();
    assert_eq!(
        s.delete(&format!("/api/v1/workspaces/{w}"), &op).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.get(&format!("/api/v1/assistants/{second}"), &op).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get(&format!("/api/v1/workspaces/{w}"), &op).await.0,
        StatusCode::NOT_FOUND
    );
    // The init tenant is untouched.
    let owner = s.login(OWNER_EMAIL).await;
    assert_eq!(
        s.get(
            &format!("/api/v1/assistants/{}", s.tenant.assistant_id),
            &owner
        )
        .await
        .0,
        StatusCode::OK
    );
}

on_both_backends!(
    workspaces_and_assistants_live_and_die_through_the_api,
    health_and_readiness_answer,
    the_owner_signs_in_and_reads_their_assistant,
    an_account_alone_grants_nothing,
    no_token_is_a_401_problem,
    host_and_path_resolve_the_same_assistant_or_404,
    every_request_is_logged_and_counted,
);
