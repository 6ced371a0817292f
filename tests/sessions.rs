//! Sessions: refresh-token rotation and reuse detection, revocation, sign-out, cookie mode
//! with CSRF, password change, and brute-force lockout. Each attack is refused with the
//! right status and leaves its audit event.

mod common;

use common::{Backend, Server, OWNER_EMAIL, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn refresh(s: &Server, token: &str) -> (StatusCode, Value) {
    s.call(
        Method::POST,
        "/api/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": token})),
    )
    .await
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} in {v}"))
}

async fn refresh_rotates_and_reuse_revokes_the_whole_family(b: Backend) {
    let s = Server::start(b).await;
    let first = s.sign_in(OWNER_EMAIL).await;
    let r0 = str_of(&first, "refresh_token").to_string();
    assert!(r0.starts_with("bsr_"));

    let (status, second) = refresh(&s, &r0).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let r1 = str_of(&second, "refresh_token").to_string();
    let a1 = str_of(&second, "access_token").to_string();
    assert_ne!(r0, r1, "rotated");
    assert_eq!(second["session_id"], first["session_id"], "same session");
    assert_eq!(s.get("/api/v1/me", &a1).await.0, StatusCode::OK);

    // The spent token again: a thief or a replay. The session ends, successors included.
    let (status, body) = refresh(&s, &r0).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        refresh(&s, &r1).await.0,
        StatusCode::UNAUTHORIZED,
        "family revoked"
    );
    assert_eq!(
        s.get("/api/v1/me", &a1).await.0,
        StatusCode::UNAUTHORIZED,
        "the family's access tokens end too"
    );
    assert_eq!(
        s.platform_audit("auth.refresh.reuse").await,
        vec!["failure"]
    );
    // A token that never existed is refused and revokes nothing.
    assert_eq!(
        refresh(&s, "bsr_not-a-token").await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn concurrent_refreshes_with_one_token_succeed_at_most_once(b: Backend) {
    let s = Server::start(b).await;
    let first = s.sign_in(OWNER_EMAIL).await;
    let r0 = str_of(&first, "refresh_token").to_string();
    let url = s.url("/api/v1/auth/refresh");
    let tries: Vec<_> = (0..8)
        .map(|_| {
            let (url, r0) = (url.clone(), r0.clone());
            tokio::spawn(async move {
                let res = reqwest::Client::new()
                    .post(url)
                    .json(&json!({"refresh_token": r0}))
                    .send()
                    .await
                    .unwrap();
                res.status()
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tries {
        results.push(t.await.unwrap());
    }
    let ok = results.iter().filter(|st| **st == StatusCode::OK).count();
    assert!(ok <= 1, "{ok} refreshes succeeded: {results:?}");
    assert!(results
        .iter()
        .all(|st| *st == StatusCode::OK || *st == StatusCode::UNAUTHORIZED));
}

async fn sessions_are_listed_and_revoked_only_by_their_user(b: Backend) {
    let s = Server::start(b).await;
    let laptop = s.sign_in(OWNER_EMAIL).await;
    let phone = s.sign_in(OWNER_EMAIL).await;
    let laptop_at = str_of(&laptop, "access_token");
    let (status, list) = s.get("/api/v1/auth/sessions", laptop_at).await;
    assert_eq!(status, StatusCode::OK);
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{list:?}");
    let current: Vec<_> = list
        .iter()
        .filter(|x| x["current"] == json!(true))
        .collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], laptop["session_id"]);

    // Another user cannot see or end these sessions: 404, as for anything not theirs.
    s.add_user("other@tenant-b.test", false);
    let other = s.login("other@tenant-b.test").await;
    let phone_sid = str_of(&phone, "session_id");
    assert_eq!(
        s.delete(&format!("/api/v1/auth/sessions/{phone_sid}"), &other)
            .await,
        StatusCode::NOT_FOUND
    );
    let (_, others) = s.get("/api/v1/auth/sessions", &other).await;
    assert_eq!(others.as_array().unwrap().len(), 1);
    assert_eq!(
        refresh(&s, str_of(&phone, "refresh_token")).await.0,
        StatusCode::OK,
        "the phone still works"
    );

    // The owner ends the phone's session: its refresh token stops at once, its access token too.
    let phone2 = s.sign_in(OWNER_EMAIL).await;
    let sid = str_of(&phone2, "session_id");
    assert_eq!(
        s.delete(&format!("/api/v1/auth/sessions/{sid}"), laptop_at)
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        refresh(&s, str_of(&phone2, "refresh_token")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.get("/api/v1/me", str_of(&phone2, "access_token")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(s.get("/api/v1/me", laptop_at).await.0, StatusCode::OK);
    assert_eq!(
        s.platform_audit("auth.session.revoke").await,
        vec!["success"]
    );
}

async fn logout_and_sign_out_everywhere_end_sessions(b: Backend) {
    let s = Server::start(b).await;
    let one = s.sign_in(OWNER_EMAIL).await;
    let two = s.sign_in(OWNER_EMAIL).await;
    let one_at = str_of(&one, "access_token");
    let (status, _) = s
        .call(Method::POST, "/api/v1/auth/logout", Some(one_at), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        s.get("/api/v1/me", one_at).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(&s, str_of(&one, "refresh_token")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let two_at = str_of(&two, "access_token");
    assert_eq!(s.get("/api/v1/me", two_at).await.0, StatusCode::OK);

    let three = s.sign_in(OWNER_EMAIL).await;
    assert_eq!(
        s.delete("/api/v1/auth/sessions", two_at).await,
        StatusCode::NO_CONTENT
    );
    for t in [&two, &three] {
        assert_eq!(
            s.get("/api/v1/me", str_of(t, "access_token")).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            refresh(&s, str_of(t, "refresh_token")).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(s.platform_audit("auth.logout").await, vec!["success"]);
    assert_eq!(
        s.platform_audit("auth.sign_out_everywhere").await,
        vec!["success"]
    );
}

/// Cookie-mode request: `cookies` as a Cookie header, optional CSRF header.
async fn with_cookies(
    s: &Server,
    method: Method,
    path: &str,
    cookies: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .request(method, s.url(path))
        .header("cookie", cookies);
    if let Some(c) = csrf {
        req = req.header("x-csrf-token", c);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn cookie_header(res: &reqwest::Response) -> (String, Vec<String>) {
    let set: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let pairs = set
        .iter()
        .map(|c| c.split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ");
    (pairs, set)
}

async fn cookie_mode_needs_the_csrf_token_on_every_change(b: Backend) {
    let s = Server::start(b).await;
    let res = reqwest::Client::new()
        .post(s.url("/api/v1/auth/login"))
        .json(&json!({"email": OWNER_EMAIL, "password": PASSWORD, "mode": "cookie"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (cookies, set) = cookie_header(&res);
    let body: Value = res.json().await.unwrap();
    assert!(
        body.get("access_token").is_none(),
        "no token in the body: {body}"
    );
    assert!(body.get("refresh_token").is_none());
    let csrf = str_of(&body, "csrf_token").to_string();
    for name in ["__Host-bastion_at", "__Host-bastion_rt"] {
        let c = set.iter().find(|c| c.starts_with(name)).expect(name);
        for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
            assert!(c.contains(attr), "{name} lacks {attr}: {c}");
        }
        assert!(!c.contains("Domain"), "{c}");
    }

    let a = &s.tenant.assistant_id;
    let path = format!("/api/v1/assistants/{a}");
    // Reading needs no CSRF token.
    let (status, _) = with_cookies(&s, Method::GET, "/api/v1/me", &cookies, None, None).await;
    assert_eq!(status, StatusCode::OK);
    // A change without it, or with another session's, is refused and changes nothing.
    let other = s.sign_in(OWNER_EMAIL).await;
    let other_csrf = {
        let res = reqwest::Client::new()
            .post(s.url("/api/v1/auth/login"))
            .json(&json!({"email": OWNER_EMAIL, "password": PASSWORD, "mode": "cookie"}))
            .send()
            .await
            .unwrap();
        res.json::<Value>().await.unwrap()["csrf_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for bad in [None, Some("forged"), Some(other_csrf.as_str())] {
        let (status, body) = with_cookies(
            &s,
            Method::PATCH,
            &path,
            &cookies,
            bad,
            Some(json!({"name": "csrf-pwned"})),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{bad:?}: {body}");
        assert_eq!(body["code"], json!("csrf"));
    }
    let (_, now) = s.get(&path, str_of(&other, "access_token")).await;
    assert_ne!(now["name"], json!("csrf-pwned"));
    let (status, body) = with_cookies(
        &s,
        Method::PATCH,
        &path,
        &cookies,
        Some(&csrf),
        Some(json!({"name": "renamed"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Refresh from the cookie needs the CSRF token too, and sets new cookies.
    let (status, _) = with_cookies(
        &s,
        Method::POST,
        "/api/v1/auth/refresh",
        &cookies,
        None,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let res = reqwest::Client::new()
        .post(s.url("/api/v1/auth/refresh"))
        .header("cookie", &cookies)
        .header("x-csrf-token", &csrf)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (_, set) = cookie_header(&res);
    assert!(set.iter().any(|c| c.starts_with("__Host-bastion_rt=bsr_")));
}

async fn a_password_change_ends_the_other_sessions(b: Backend) {
    let s = Server::start(b).await;
    let here = s.sign_in(OWNER_EMAIL).await;
    let there = s.sign_in(OWNER_EMAIL).await;
    let at = str_of(&here, "access_token");
    let (status, body) = s
        .post(
            "/api/v1/auth/password",
            at,
            json!({"current_password": PASSWORD, "new_password": "password12345"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a common password: {body}"
    );
    let (status, _) = s
        .post(
            "/api/v1/auth/password",
            at,
            json!({"current_password": "not my password", "new_password": "a fresh long passphrase"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = s
        .post(
            "/api/v1/auth/password",
            at,
            json!({"current_password": PASSWORD, "new_password": "a fresh long passphrase"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        s.get("/api/v1/me", at).await.0,
        StatusCode::OK,
        "this session stays"
    );
    assert_eq!(
        s.get("/api/v1/me", str_of(&there, "access_token")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(&s, str_of(&there, "refresh_token")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.platform_audit("auth.password.change").await,
        vec!["failure", "success"]
    );
}

async fn other_token_kinds_are_not_access_tokens(b: Backend) {
    let s = Server::start(b).await;
    let signed = s.sign_in(OWNER_EMAIL).await;
    // A refresh token presented as a bearer token.
    assert_eq!(
        s.get("/api/v1/me", str_of(&signed, "refresh_token"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // An access token presented as a refresh token.
    assert_eq!(
        refresh(&s, str_of(&signed, "access_token")).await.0,
        StatusCode::UNAUTHORIZED
    );
}

async fn repeated_wrong_passwords_lock_the_account_for_a_while(b: Backend) {
    let s = Server::start(b).await;
    let login = |pw: &'static str| {
        s.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": OWNER_EMAIL, "password": pw})),
        )
    };
    for _ in 0..6 {
        assert_eq!(login("wrong password!").await.0, StatusCode::UNAUTHORIZED);
    }
    // Locked now: even the right password is refused without being checked.
    let res = reqwest::Client::new()
        .post(s.url("/api/v1/auth/login"))
        .json(&json!({"email": OWNER_EMAIL, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "retry-after {retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], json!("too_many_attempts"));
    // Another account is not locked by this one's failures.
    s.add_user("bystander@tenant-a.test", false);
    s.login("bystander@tenant-a.test").await;
    // The lock expires.
    tokio::time::sleep(std::time::Duration::from_millis(retry * 1000 + 200)).await;
    assert_eq!(login(PASSWORD).await.0, StatusCode::OK);
}

async fn operators_list_and_end_sessions_from_the_cli(b: Backend) {
    let s = Server::start(b).await;
    let one = s.sign_in(OWNER_EMAIL).await;
    let two = s.sign_in(OWNER_EMAIL).await;
    let out = s.cli(&["sessions", "list", "--email", OWNER_EMAIL], None);
    assert!(out.status.success());
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    for t in [&one, &two] {
        assert!(listed.contains(str_of(t, "session_id")), "{listed}");
    }
    let out = s.cli(
        &[
            "sessions",
            "revoke",
            "--email",
            OWNER_EMAIL,
            "--id",
            str_of(&one, "session_id"),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        refresh(&s, str_of(&one, "refresh_token")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(&s, str_of(&two, "refresh_token")).await.0,
        StatusCode::OK
    );
    let out = s.cli(
        &["sessions", "revoke", "--email", OWNER_EMAIL, "--all"],
        None,
    );
    assert!(out.status.success());
    let out = s.cli(&["sessions", "list", "--email", OWNER_EMAIL], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no live sessions"));
}

on_both_backends!(
    operators_list_and_end_sessions_from_the_cli,
    refresh_rotates_and_reuse_revokes_the_whole_family,
    concurrent_refreshes_with_one_token_succeed_at_most_once,
    sessions_are_listed_and_revoked_only_by_their_user,
    logout_and_sign_out_everywhere_end_sessions,
    cookie_mode_needs_the_csrf_token_on_every_change,
    a_password_change_ends_the_other_sessions,
    other_token_kinds_are_not_access_tokens,
    repeated_wrong_passwords_lock_the_account_for_a_while,
);
