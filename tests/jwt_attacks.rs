//! Forged, tampered and misused access tokens are refused with 401 and change nothing.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{Backend, Server, OWNER_EMAIL, PASSWORD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A change to otherwise valid claims that must make the token unacceptable.
type ClaimsChange = fn(&mut Value);

/// Claims as the server issues them, for session `sid` (a real one, from a real sign-in).
fn claims(sub: &str, sid: &str) -> Value {
    json!({"iss": "bastion", "aud": "bastion-api", "sub": sub, "sid": sid, "amr": ["pwd"], "iat": now(), "nbf": now(), "exp": now() + 300, "jti": "t"})
}

fn payload(token: &str) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn sign(
    alg: Algorithm,
    kid: Option<&str>,
    typ: Option<&str>,
    claims: &Value,
    key: &[u8],
) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    h.typ = typ.map(str::to_string);
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(key)).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// Sends the token on a mutating route and asserts 401 and that nothing changed.
async fn assert_refused(s: &Server, token: &str, what: &str) {
    let a = &s.tenant.assistant_id;
    let (status, body) = s
        .call(
            Method::PATCH,
            &format!("/api/v1/assistants/{a}"),
            Some(token),
            Some(json!({"name": "pwned"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    assert_eq!(body["code"], json!("unauthenticated"), "{what}");
    let (status, _) = s.get("/api/v1/me", token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what} on /me");
}

async fn forged_and_tampered_tokens_are_refused(b: Backend) {
    let s = Server::start(b).await;
    let key = s.signing_key();
    let good = s.login(OWNER_EMAIL).await;
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(good.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let kid = header["kid"].as_str().unwrap().to_string();
    assert_eq!(header["alg"], json!("HS256"));
    assert_eq!(header["typ"], json!("at+jwt"));
    let owner = s.tenant.owner_id.clone();
    let sid = payload(&good)["sid"].as_str().unwrap().to_string();

    // The baseline: a token minted with the real key and claims works.
    let minted = sign(
        Algorithm::HS256,
        Some(&kid),
        Some("at+jwt"),
        &claims(&owner, &sid),
        &key,
    );
    let (status, _) = s.get("/api/v1/me", &minted).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the test's own minting must match the server's"
    );

    let parts: Vec<&str> = good.split('.').collect();
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "at+jwt", "kid": kid})),
        parts[1]
    );
    assert_refused(&s, &alg_none, "alg none").await;
    let alg_none_sig = format!(
        "{}.{}.{}",
        b64(&json!({"alg": "none", "typ": "at+jwt", "kid": kid})),
        parts[1],
        parts[2]
    );
    assert_refused(&s, &alg_none_sig, "alg none with a signature").await;

    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let t = sign(alg, Some(&kid), Some("at+jwt"), &claims(&owner, &sid), &key);
        assert_refused(&s, &t, &format!("{alg:?} with the right key")).await;
    }

    // Tampered payload: another subject under the original signature.
    let other = s.add_user("victim@tenant-a.test", false);
    let mut tampered_claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    tampered_claims["sub"] = json!(other);
    let tampered = format!("{}.{}.{}", parts[0], b64(&tampered_claims), parts[2]);
    assert_refused(&s, &tampered, "tampered payload").await;
    let mut truncated_sig = good.clone();
    truncated_sig.pop();
    assert_refused(&s, &truncated_sig, "truncated signature").await;

    let bad_claims: [(&str, ClaimsChange); 5] = [
        ("expired", |c| c["exp"] = json!(now() - 120)),
        ("not yet valid", |c| {
            c["nbf"] = json!(now() + 600);
            c["exp"] = json!(now() + 900);
        }),
        ("wrong aud", |c| c["aud"] = json!("some-other-api")),
        ("wrong iss", |c| c["iss"] = json!("https://evil.example")),
        ("no exp", |c| {
            c.as_object_mut().unwrap().remove("exp");
        }),
    ];
    for (what, mutate) in bad_claims {
        let mut c = claims(&owner, &sid);
        mutate(&mut c);
        assert_refused(
            &s,
            &sign(Algorithm::HS256, Some(&kid), Some("at+jwt"), &c, &key),
            what,
        )
        .await;
    }

    // A token of another type, an unknown key id, a foreign key.
    assert_refused(
        &s,
        &sign(
            Algorithm::HS256,
            Some(&kid),
            Some("JWT"),
            &claims(&owner, &sid),
            &key,
        ),
        "typ JWT",
    )
    .await;
    assert_refused(
        &s,
        &sign(
            Algorithm::HS256,
            Some(&kid),
            None,
            &claims(&owner, &sid),
            &key,
        ),
        "no typ",
    )
    .await;
    assert_refused(
        &s,
        &sign(
            Algorithm::HS256,
            Some("0011223344556677"),
            Some("at+jwt"),
            &claims(&owner, &sid),
            &key,
        ),
        "unknown kid",
    )
    .await;
    assert_refused(
        &s,
        &sign(
            Algorithm::HS256,
            None,
            Some("at+jwt"),
            &claims(&owner, &sid),
            &key,
        ),
        "no kid",
    )
    .await;
    assert_refused(
        &s,
        &sign(
            Algorithm::HS256,
            Some(&kid),
            Some("at+jwt"),
            &claims(&owner, &sid),
            &[9u8; 32],
        ),
        "foreign key",
    )
    .await;
    // An embedded jwk or jku must never be followed or trusted.
    let jwk_header = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid, "jku": "http://127.0.0.1:1/keys", "jwk": {"kty": "oct", "k": "AAAA"}});
    let forged_jwk = format!("{}.{}.{}", b64(&jwk_header), parts[1], parts[2]);
    assert_refused(&s, &forged_jwk, "jku/jwk header").await;

    for garbage in ["", "a.b.c", "not a token", &"A".repeat(10_000)] {
        assert_refused(&s, garbage, "garbage").await;
    }

    let (_, a) = s
        .get(
            &format!("/api/v1/assistants/{}", s.tenant.assistant_id),
            &good,
        )
        .await;
    assert_eq!(
        a["name"],
        json!("Assistant"),
        "no forged request may have changed the assistant"
    );
}

async fn a_deleted_users_token_stops_working(b: Backend) {
    let s = Server::start(b).await;
    s.add_user("leaver@tenant-a.test", false);
    let token = s.login("leaver@tenant-a.test").await;
    assert_eq!(s.get("/api/v1/me", &token).await.0, StatusCode::OK);
    let (status, _) = s
        .call(
            Method::DELETE,
            "/api/v1/me",
            Some(&token),
            Some(json!({"password": "wrong password here"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "deleting an account needs its password"
    );
    assert_eq!(s.get("/api/v1/me", &token).await.0, StatusCode::OK);
    let (status, _) = s
        .call(
            Method::DELETE,
            "/api/v1/me",
            Some(&token),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_refused(&s, &token, "deleted user").await;
    let (status, _) = s
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "leaver@tenant-a.test", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn the_last_owner_cannot_delete_their_account(b: Backend) {
    let s = Server::start(b).await;
    let token = s.login(OWNER_EMAIL).await;
    let (status, body) = s
        .call(
            Method::DELETE,
            "/api/v1/me",
            Some(&token),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(s.get("/api/v1/me", &token).await.0, StatusCode::OK);
}

async fn wrong_passwords_and_unknown_emails_look_the_same(b: Backend) {
    let s = Server::start(b).await;
    let (s1, b1) = s
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": OWNER_EMAIL, "password": "not the password"})),
        )
        .await;
    let (s2, b2) = s
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "nobody@nowhere.test", "password": "not the password"})),
        )
        .await;
    assert_eq!(
        (s1, s2),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(
        b1, b2,
        "the answer must not reveal whether the email exists"
    );
    assert!(b1.get("access_token").is_none());
}

on_both_backends!(
    forged_and_tampered_tokens_are_refused,
    a_deleted_users_token_stops_working,
    the_last_owner_cannot_delete_their_account,
    wrong_passwords_and_unknown_emails_look_the_same,
);
