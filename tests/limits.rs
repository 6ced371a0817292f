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

/// Sends an oversized body over a raw connection and reads the answer while the body is still
/// being written: a server that refuses early closes the connection mid-upload, which an
/// HTTP client library reports as an error instead of the response it already received.
async fn oversized_status(
    s: &Server,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
    chunked: bool,
) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s.base.trim_start_matches("http://").to_string();
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let framing = if chunked {
        "transfer-encoding: chunked\r\n".to_string()
    } else {
        format!("content-length: {}\r\n", body.len())
    };
    let head = format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n{auth}{framing}\r\n");
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        if chunked {
            for piece in body.chunks(64 * 1024) {
                wr.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                    .await?;
                wr.write_all(piece).await?;
                wr.write_all(b"\r\n").await?;
            }
            wr.write_all(b"0\r\n\r\n").await?;
        } else {
            wr.write_all(&body).await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    writer.abort();
    let text = String::from_utf8_lossy(&answer);
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    status.unwrap_or_else(|| panic!("no HTTP answer: {text:?}"))
}

async fn oversized_bodies_are_refused_before_they_are_read(b: Backend) {
    let s = Server::start(b).await;
    let token = s.login(OWNER_EMAIL).await;
    let create = format!("/api/v1/workspaces/{}/assistants", s.tenant.workspace_id);
    let big = format!("{{\"slug\":\"{}\"}}", "a".repeat(2 * 1024 * 1024)).into_bytes();
    for chunked in [false, true] {
        assert_eq!(
            oversized_status(&s, &create, Some(&token), big.clone(), chunked).await,
            413,
            "chunked={chunked}"
        );
        assert_eq!(
            oversized_status(&s, "/api/v1/auth/login", None, big.clone(), chunked).await,
            413,
            "chunked={chunked}"
        );
    }
    let (_, list) = s.get(&create, &token).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(s.get("/healthz", &token).await.0, StatusCode::OK);
}

async fn malformed_bodies_are_refused_cleanly(b: Backend) {
    let s = Server::start(b).await;
    let token = s.login(OWNER_EMAIL).await;
    let ws = s.tenant.workspace_id.clone();
    let create = format!("/api/v1/workspaces/{ws}/assistants");
    let cases: Vec<(&str, &str, Vec<u8>, StatusCode)> = vec![
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
    // Hostile bodies before sign-in.
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
    oversized_bodies_are_refused_before_they_are_read,
    malformed_bodies_are_refused_cleanly,
    unknown_routes_and_methods_are_problems,
    the_openapi_document_is_served,
);

/// Waits, if needed, so that the next few seconds fall in one rate window (a minute).
async fn within_one_window() {
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if second > 45 {
        tokio::time::sleep(std::time::Duration::from_secs(61 - second)).await;
    }
}

fn assert_limited(res: &(StatusCode, Value, Option<u64>), what: &str) {
    assert_eq!(res.0, StatusCode::TOO_MANY_REQUESTS, "{what}: {}", res.1);
    assert_eq!(res.1["code"], "rate_limited", "{what}");
    assert!(
        res.2.is_some_and(|s| (1..=60).contains(&s)),
        "{what}: Retry-After {:?}",
        res.2
    );
}

/// Every route is limited per client address, per user and per API key (429 with
/// Retry-After); one principal's limit leaves others alone, a refused write leaves nothing,
/// and the health probes always answer.
async fn every_route_is_rate_limited_per_address_user_and_key(b: Backend) {
    let s = Server::start_with(
        b,
        common::Options {
            serve_args: Vec::new(),
            env: vec![
                ("BASTION_RATE_LIMIT_IP_PER_MINUTE".into(), "40".into()),
                ("BASTION_RATE_LIMIT_USER_PER_MINUTE".into(), "10".into()),
                ("BASTION_RATE_LIMIT_KEY_PER_MINUTE".into(), "5".into()),
            ],
        },
    )
    .await;
    within_one_window().await;
    let send =
        |method: reqwest::Method, path: String, token: Option<String>, body: Option<Value>| {
            let s = &s;
            async move {
                let res = s.send(method, &path, token.as_deref(), body).await;
                let status = res.status();
                let retry = res
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse().ok());
                (
                    status,
                    res.json::<Value>().await.unwrap_or(Value::Null),
                    retry,
                )
            }
        };
    let a = s.tenant.assistant_id.clone();
    let owner = s.login(OWNER_EMAIL).await; // address 1
    let keys = format!("/api/v1/assistants/{a}/api-keys");
    let (status, key, _) = send(
        reqwest::Method::POST,
        keys.clone(),
        Some(owner.clone()),
        Some(json!({"name": "k", "capabilities": ["chat", "keys.manage"]})),
    )
    .await; // owner 1
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let key = key["key"].as_str().unwrap().to_string();
    let (_, member) = s.join(&owner, "m@tenant-a.test", "member").await; // owner 2

    for _ in 0..8 {
        let (status, _, _) = send(
            reqwest::Method::GET,
            "/api/v1/me".into(),
            Some(owner.clone()),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let over = send(
        reqwest::Method::GET,
        "/api/v1/me".into(),
        Some(owner.clone()),
        None,
    )
    .await;
    assert_limited(&over, "the owner's 11th request");
    let late = send(
        reqwest::Method::POST,
        keys.clone(),
        Some(owner.clone()),
        Some(json!({"name": "late", "capabilities": ["chat"]})),
    )
    .await;
    assert_limited(&late, "a write past the limit");
    // Another user is not held to the owner's count.
    let (status, _, _) = send(
        reqwest::Method::GET,
        "/api/v1/me".into(),
        Some(member),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // The key: its own count; the refused write left no key behind.
    for _ in 0..4 {
        let (status, _, _) =
            send(reqwest::Method::GET, keys.clone(), Some(key.clone()), None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, list, _) = send(reqwest::Method::GET, keys.clone(), Some(key.clone()), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(
        !list.as_array().unwrap().iter().any(|k| k["name"] == "late"),
        "{list}"
    );
    let over = send(reqwest::Method::GET, keys.clone(), Some(key.clone()), None).await;
    assert_limited(&over, "the key's 6th request");

    // The address: anonymous requests run into its limit; the probes still answer.
    let mut limited = None;
    for i in 0..40 {
        let res = send(reqwest::Method::GET, "/openapi.json".into(), None, None).await;
        if res.0 == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((i, res));
            break;
        }
    }
    let (_, res) = limited.expect("the address limit");
    assert_limited(&res, "the address");
    let (status, _, _) = send(reqwest::Method::GET, "/healthz".into(), None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(reqwest::Method::GET, "/readyz".into(), None, None).await;
    assert_eq!(status, StatusCode::OK);
}

on_both_backends!(every_route_is_rate_limited_per_address_user_and_key);
