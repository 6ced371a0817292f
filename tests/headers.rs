//! Security headers on every answer, and CORS: off by default, per origin when configured,
//! never with credentials.

mod common;

use common::{Backend, Options, Server};
use reqwest::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_SECURITY_POLICY, ORIGIN,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use reqwest::Method;

async fn send(s: &Server, method: Method, path: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(method, s.url(path))
        .header(ORIGIN, origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers_and_no_cors_by_default() {
    let s = Server::start(Backend::Sqlite).await;
    for (method, path) in [
        (Method::GET, "/healthz"),
        (Method::GET, "/api/v1/me"),
        (Method::POST, "/api/v1/auth/login"),
        (Method::GET, "/no/such/route"),
        (Method::GET, "/openapi.json"),
    ] {
        let res = send(&s, method.clone(), path, "https://evil.test").await;
        let h = res.headers();
        let csp = h[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{method} {path}: {csp}"
        );
        assert_eq!(h[X_FRAME_OPTIONS], "DENY", "{path}");
        assert_eq!(h[X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        assert_eq!(h[REFERRER_POLICY], "no-referrer", "{path}");
        assert!(h.get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "{path}");
    }
    let preflight = send(&s, Method::OPTIONS, "/api/v1/me", "https://evil.test").await;
    assert!(preflight
        .headers()
        .get(ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_only_the_configured_origins_and_never_with_credentials() {
    let s = Server::start_with(
        Backend::Sqlite,
        Options {
            serve_args: Vec::new(),
            env: vec![(
                "BASTION_CORS_ALLOWED_ORIGINS".into(),
                "[\"https://app.example.test\"]".into(),
            )],
        },
    )
    .await;
    let ok = send(
        &s,
        Method::OPTIONS,
        "/api/v1/me",
        "https://app.example.test",
    )
    .await;
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(
        ok.headers()[ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.test"
    );
    assert!(ok.headers().get(ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
    let get = send(&s, Method::GET, "/healthz", "https://app.example.test").await;
    assert_eq!(
        get.headers()[ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.test"
    );
    for other in ["https://evil.test", "http://app.example.test", "null"] {
        let res = send(&s, Method::OPTIONS, "/api/v1/me", other).await;
        assert!(
            res.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none(),
            "{other}"
        );
    }
}
