//! TOTP MFA: enrolment, the two-step sign-in (the first step alone grants nothing),
//! single-use codes with ±1 step of clock skew, single-use recovery codes, removal with
//! password + code, and lockout of guessed codes. Each leaves its audit event.

mod common;

use bastion_auth::totp::code_at;
use common::{Backend, Server, OWNER_EMAIL, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Enrols TOTP for the owner; returns the raw secret and the recovery codes.
async fn enrol(s: &Server, token: &str) -> (Vec<u8>, Vec<String>) {
    let (status, body) = s.post("/api/v1/auth/mfa/totp", token, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["otpauth_uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));
    let secret = totp_rs::Secret::Encoded(body["secret"].as_str().unwrap().to_string())
        .to_bytes()
        .unwrap();
    // A wrong first code does not enable it.
    let (status, _) = s
        .post(
            "/api/v1/auth/mfa/totp/confirm",
            token,
            json!({"code": "000000"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = s
        .post(
            "/api/v1/auth/mfa/totp/confirm",
            token,
            json!({"code": code_at(&secret, now()).unwrap()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let codes: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

async fn password_step(s: &Server) -> Value {
    let (status, body) = s
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": OWNER_EMAIL, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn second_step(s: &Server, challenge: &str, field: &str, code: &str) -> (StatusCode, Value) {
    s.call(
        Method::POST,
        "/api/v1/auth/login/mfa",
        None,
        Some(json!({"mfa_token": challenge, field: code})),
    )
    .await
}

async fn sign_in_takes_two_steps_and_each_code_works_once(b: Backend) {
    let s = Server::start(b).await;
    let token = s.login(OWNER_EMAIL).await;
    let (secret, _) = enrol(&s, &token).await;

    let first = password_step(&s).await;
    assert_eq!(first["mfa_required"], json!(true));
    assert!(first.get("access_token").is_none(), "no token yet: {first}");
    let challenge = first["mfa_token"].as_str().unwrap();
    // The challenge alone grants nothing.
    assert_eq!(
        s.get("/api/v1/me", challenge).await.0,
        StatusCode::UNAUTHORIZED
    );

    // The confirmation used the current step; the next step's code (clock skew +1) works.
    let next = code_at(&secret, now() + 30).unwrap();
    let (status, body) = second_step(&s, challenge, "code", &next).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let at = body["access_token"].as_str().unwrap();
    assert_eq!(s.get("/api/v1/me", at).await.0, StatusCode::OK);
    // The same code again is a replay; an older step's code is too.
    let (status, _) = second_step(&s, challenge, "code", &next).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let older = code_at(&secret, now() - 30).unwrap();
    assert_eq!(
        second_step(&s, challenge, "code", &older).await.0,
        StatusCode::UNAUTHORIZED
    );
    // A code two steps away is outside the skew window.
    let far = code_at(&secret, now() + 90).unwrap();
    assert_eq!(
        second_step(&s, challenge, "code", &far).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.platform_audit("auth.mfa.enable").await,
        vec!["failure", "success"]
    );
    let login_events = s.platform_audit("auth.login").await;
    assert!(login_events.iter().filter(|o| *o == "failure").count() >= 3);
}

async fn recovery_codes_work_once(b: Backend) {
    let s = Server::start(b).await;
    let token = s.login(OWNER_EMAIL).await;
    let (_, codes) = enrol(&s, &token).await;
    let challenge = password_step(&s).await["mfa_token"]
        .as_str()
        .unwrap()
        .to_string();
    let typed = codes[3].to_uppercase().replace('-', " ");
    let (status, body) = second_step(&s, &challenge, "recovery_code", &typed).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = second_step(&s, &challenge, "recovery_code", &codes[3]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "spent");
    let (status, _) = second_step(&s, &challenge, "recovery_code", "aaaa-bbbb-cccc-dddd").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn disabling_needs_password_and_code(b: Backend) {
    let s = Server::start(b).await;
    let token = s.login(OWNER_EMAIL).await;
    let (secret, codes) = enrol(&s, &token).await;
    let other = second_step(
        &s,
        password_step(&s).await["mfa_token"].as_str().unwrap(),
        "recovery_code",
        &codes[0],
    )
    .await
    .1;
    let (status, _) = s
        .post(
            "/api/v1/auth/mfa/totp/disable",
            &token,
            json!({"password": "wrong password", "code": code_at(&secret, now() + 30).unwrap()}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = s
        .post(
            "/api/v1/auth/mfa/totp/disable",
            &token,
            json!({"password": PASSWORD, "recovery_code": codes[1]}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // The password step alone signs in again, and the other session has ended.
    let first = password_step(&s).await;
    assert!(first["access_token"].is_string(), "{first}");
    assert_eq!(
        s.get("/api/v1/me", other["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.platform_audit("auth.mfa.disable").await,
        vec!["failure", "success"]
    );
}

async fn guessing_codes_locks_the_second_step(b: Backend) {
    let s = Server::start(b).await;
    let token = s.login(OWNER_EMAIL).await;
    let (secret, _) = enrol(&s, &token).await;
    let challenge = password_step(&s).await["mfa_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut statuses = Vec::new();
    for guess in 0..8 {
        let code = format!("{:06}", 100_000 + guess);
        statuses.push(second_step(&s, &challenge, "code", &code).await.0);
    }
    assert_eq!(statuses[..6], [StatusCode::UNAUTHORIZED; 6]);
    assert_eq!(statuses[6], StatusCode::TOO_MANY_REQUESTS);
    // Locked: even the right code is refused unchecked.
    let right = code_at(&secret, now() + 30).unwrap();
    assert_eq!(
        second_step(&s, &challenge, "code", &right).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

async fn a_workspace_can_require_mfa_of_its_owners_and_admins(b: Backend) {
    let s = Server::start(b).await;
    let ws = format!("/api/v1/workspaces/{}", s.tenant.workspace_id);
    let assistant = format!("/api/v1/assistants/{}", s.tenant.assistant_id);
    let password_only = s.login(OWNER_EMAIL).await;
    s.add_user("admin@tenant-a.test", false);
    s.add_user("member@tenant-a.test", false);
    s.add_member(
        &password_only,
        &s.tenant.assistant_id,
        "admin@tenant-a.test",
        "admin",
    )
    .await;
    s.add_member(
        &password_only,
        &s.tenant.assistant_id,
        "member@tenant-a.test",
        "member",
    )
    .await;
    let admin = s.login("admin@tenant-a.test").await;
    let member = s.login("member@tenant-a.test").await;

    // Turning it on takes a session signed in with a second factor: nobody locks themselves out.
    let (status, body) = s
        .patch(&ws, &password_only, json!({"require_mfa": true}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "mfa_required");
    assert_eq!(s.get(&ws, &password_only).await.1["require_mfa"], false);

    let (secret, _) = enrol(&s, &password_only).await;
    let challenge = password_step(&s).await["mfa_token"]
        .as_str()
        .unwrap()
        .to_string();
    let code = code_at(&secret, now() + 30).unwrap();
    let (status, body) = second_step(&s, &challenge, "code", &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let with_mfa = body["access_token"].as_str().unwrap().to_string();
    let (status, body) = s.patch(&ws, &with_mfa, json!({"require_mfa": true})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["require_mfa"], true);

    // From the next request: owners and admins without a second factor are refused on
    // workspace and assistant routes alike; the member is not concerned; MFA sessions work.
    for (token, path) in [
        (&password_only, &ws),
        (&password_only, &assistant),
        (&admin, &assistant),
    ] {
        let (status, body) = s.get(path, token).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert_eq!(body["code"], "mfa_required", "{body}");
    }
    assert_eq!(s.get(&assistant, &member).await.0, StatusCode::OK);
    assert_eq!(s.get(&assistant, &with_mfa).await.0, StatusCode::OK);
    // Signing in is not refused: the admin can still reach their own account to enrol.
    assert_eq!(s.get("/api/v1/me", &admin).await.0, StatusCode::OK);

    let (status, body) = s.patch(&ws, &with_mfa, json!({"require_mfa": false})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(s.get(&assistant, &admin).await.0, StatusCode::OK);
    assert_eq!(s.get(&ws, &password_only).await.0, StatusCode::OK);
}

/// Writes a fresh master key file (32 random bytes, base64, 0600) at `path`.
fn new_master_key(path: &std::path::Path) {
    use base64::Engine;
    use std::os::unix::fs::OpenOptionsExt;
    let key: [u8; 32] = rand::random();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    std::io::Write::write_all(
        &mut f,
        base64::engine::general_purpose::STANDARD
            .encode(key)
            .as_bytes(),
    )
    .unwrap();
}

/// A server whose master key was replaced still opens TOTP secrets sealed under the old
/// one while the old key is in `previous_master_key_files`, and not once it is dropped.
async fn a_previous_master_key_still_opens_totp_secrets(b: Backend) {
    let mut s = Server::start(b).await;
    let token = s.login(OWNER_EMAIL).await;
    let (secret, _) = enrol(&s, &token).await;
    let old = common::data_dir(&s).join("master.key");
    let new = s.dir.path().join("next-master.key");
    new_master_key(&new);
    let config = |previous: bool| {
        let path = s.dir.path().join(format!("rotated-{previous}.toml"));
        let mut text = format!("master_key_file = {:?}\n", new.display().to_string());
        if previous {
            text.push_str(&format!(
                "previous_master_key_files = [{:?}]\n",
                old.display().to_string()
            ));
        }
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let (with_old, without_old) = (config(true), config(false));
    // The enrolment spent the current step's code: sign in with the next step's.
    let next_code = |offset: u64| code_at(&secret, now() + offset).unwrap();

    // Without the old key the secret does not open: a server fault, not a wrong code.
    s.restart(&["--config", &without_old]);
    let challenge = password_step(&s).await["mfa_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = second_step(&s, &challenge, "code", &next_code(30)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");

    s.restart(&["--config", &with_old]);
    let challenge = password_step(&s).await["mfa_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = second_step(&s, &challenge, "code", &next_code(30)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

on_both_backends!(
    a_previous_master_key_still_opens_totp_secrets,
    a_workspace_can_require_mfa_of_its_owners_and_admins,
    sign_in_takes_two_steps_and_each_code_works_once,
    recovery_codes_work_once,
    disabling_needs_password_and_code,
    guessing_codes_locks_the_second_step,
);
