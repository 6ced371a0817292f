//! Bad input gets a 4xx problem+json, never a 500, a panic or a partial write.

mod common;

use common::{Backend, Server, OWNER_EMAIL};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn send_raw(
    s: &Server,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value, String) {
    let mut req = s
        .http
        .post(s.url(path))
        .header("content-type", content_type)
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    (status, body, ct)
}

async fn malformed_and_oversized_bodies_are_refused_cleanly(b: Backend) {
    let s = Server::start(b).await;
    let token = s.login(OWNER_EMAIL).await;
    let ws = s.tenant.workspace_id.clone();
    let create = format!("/api/v1/workspaces/{ws}/assistants");
    let cases: Vec<(&str, &str, Vec<u8>, StatusCode)> = vec![
        (
            "over the body cap",
            "application/json",
            format!("{{\"slug\":\"{}\"}}", "a".repeat(2 * 1024 * 1024)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "nested past the depth cap",
            "application/json",
            format!("{}{}", "[".repeat(40), "]".repeat(40)).into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "nested past the parser's limit",
            "application/json",
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "a string past the cap",
            "application/json",
            json!({"slug": "abc", "name": "n", "description": "d".repeat(70_000)})
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "malformed JSON",
            "application/json",
            b"{\"slug\": ".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "not UTF-8",
            "application/json",
            vec![b'"', 0xff, 0xfe, b'"'],
            StatusCode::BAD_REQUEST,
        ),
        (
            "not JSON at all",
            "text/plain",
            b"slug=abc".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "the wrong shape",
            "application/json",
            b"[1,2,3]".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "an unknown field",
            "application/json",
            json!({"slug": "abc", "name": "n", "workspace_id": "x"})
                .to_string()
                .into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "a wrong type",
            "application/json",
            json!({"slug": 5, "name": "n"}).to_string().into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "an invalid slug",
            "application/json",
            json!({"slug": "../../etc", "name": "n"})
                .to_string()
                .into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "a control character in a name",
            "application/json",
            json!({"slug": "okay-slug", "name": "a\u{0}b"})
                .to_string()
                .into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (what, ct, body, expected) in cases {
        let (status, problem, content_type) = send_raw(&s, &create, Some(&token), ct, body).await;
        assert_eq!(status, expected, "{what}: {problem}");
        assert_eq!(content_type, "application/problem+json", "{what}");
        assert_eq!(problem["status"], json!(expected.as_u16()), "{what}");
    }
    // The same hostile bodies before sign-in.
    let (status, _, _) = send_raw(
        &s,
        "/api/v1/auth/login",
        None,
        "application/json",
        vec![b'{'; 3 * 1024 * 1024],
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _, _) = send_raw(
        &s,
        "/api/v1/auth/login",
        None,
        "application/json",
        b"null".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Nothing was created, and the server still answers.
    let (_, list) = s.get(&create, &token).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(s.get("/healthz", &token).await.0, StatusCode::OK);
}

async fn unknown_routes_and_methods_are_problems(b: Backend) {
    let s = Server::start(b).await;
    let res = s.http.get(s.url("/no/such/route")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = s.http.put(s.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.headers()["cache-control"], "no-store");
}

async fn the_openapi_document_is_served(b: Backend) {
    let s = Server::start(b).await;
    let (status, doc) = s
        .call(reqwest::Method::GET, "/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(
        doc["paths"]["/api/v1/assistants/{assistant_id}/members"]["post"]["x-bastion-access"],
        json!("assistant:members.manage")
    );
}

on_both_backends!(
    malformed_and_oversized_bodies_are_refused_cleanly,
    unknown_routes_and_methods_are_problems,
    the_openapi_document_is_served,
);
