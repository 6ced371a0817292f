//! Provider keys: sealed before they are stored, write-only through the API (last four
//! characters only), rotated by standby → active → revoke, and absent from a dump of the
//! whole database and from the server's logs.

mod common;

use common::{Backend, Server, OWNER_EMAIL};
use rand::Rng;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn path(s: &Server, rest: &str) -> String {
    format!(
        "/api/v1/workspaces/{}/provider-keys{rest}",
        s.tenant.workspace_id
    )
}

/// A secret shaped like a provider's, random enough that any 8 bytes of it are unique.
fn secret() -> String {
    let mut rng = rand::thread_rng();
    let tail: String = (0..40)
        .map(|_| {
            let c = rng.gen_range(0..62u8);
            (match c {
                0..=9 => b'0' + c,
                10..=35 => b'a' + c - 10,
                _ => b'A' + c - 36,
            }) as char
        })
        .collect();
    format!("sk-{tail}")
}

async fn add(s: &Server, token: &str, body: Value) -> Value {
    let (status, key) = s.post(&path(s, ""), token, body).await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    key
}

async fn a_key_is_write_only(b: Backend) {
    let s = Server::start(b).await;
    let owner = s.login(OWNER_EMAIL).await;
    let sk = secret();
    let key = add(
        &s,
        &owner,
        json!({"provider": "openai", "label": "main", "secret": sk, "monthly_spend_cap_usd": 50}),
    )
    .await;
    assert_eq!(key["last4"], &sk[sk.len() - 4..]);
    assert_eq!(key["status"], "active");
    assert_eq!(key["monthly_spend_cap_usd"], 50.0);
    let id = key["id"].as_str().unwrap();
    for p in [path(&s, ""), path(&s, &format!("/{id}"))] {
        let (status, body) = s.get(&p, &owner).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!body.to_string().contains(&sk[..12]), "{p} shows the key");
    }
    let events = s.audit_rows(&owner).await;
    let created = events
        .iter()
        .find(|e| e.action == "provider_key.create")
        .expect("audited");
    assert_eq!(created.detail["last4"], &sk[sk.len() - 4..]);
}

async fn bad_keys_are_refused(b: Backend) {
    let s = Server::start(b).await;
    let owner = s.login(OWNER_EMAIL).await;
    for (body, why) in [
        (
            json!({"provider": "openai-compatible", "label": "x", "secret": secret()}),
            "no base URL",
        ),
        (
            json!({"provider": "openai-compatible", "label": "x", "secret": secret(), "base_url": "ftp://h/"}),
            "scheme",
        ),
        (
            json!({"provider": "openai-compatible", "label": "x", "secret": secret(), "base_url": "https://u:p@h/"}),
            "credentials in URL",
        ),
        (
            json!({"provider": "openai", "label": "x", "secret": "short"}),
            "short secret",
        ),
        (
            json!({"provider": "openai", "label": "x", "secret": "has a space in it"}),
            "whitespace",
        ),
        (
            json!({"provider": "openai", "label": "x", "secret": secret(), "status": "revoked"}),
            "born revoked",
        ),
        (
            json!({"provider": "gemini", "label": "x", "secret": secret()}),
            "unknown provider",
        ),
        (
            json!({"provider": "openai", "label": "x", "secret": secret(), "monthly_spend_cap_usd": -5}),
            "negative cap",
        ),
    ] {
        let (status, problem) = s.post(&path(&s, ""), &owner, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{why}: {problem}");
        assert!(
            !problem.to_string().contains("sk-"),
            "{why}: the error echoes the secret: {problem}"
        );
    }
    let (_, list) = s.get(&path(&s, ""), &owner).await;
    assert_eq!(list, json!([]));
    let local = add(
        &s,
        &owner,
        json!({"provider": "openai-compatible", "label": "vllm", "secret": secret(), "base_url": "http://10.0.0.5:8000/v1"}),
    )
    .await;
    assert_eq!(local["base_url"], "http://10.0.0.5:8000/v1");
}

async fn a_rotation_promotes_the_standby_and_erases_the_revoked(b: Backend) {
    let s = Server::start(b).await;
    let owner = s.login(OWNER_EMAIL).await;
    let old = add(
        &s,
        &owner,
        json!({"provider": "anthropic", "label": "old", "secret": secret()}),
    )
    .await;
    let new = add(
        &s,
        &owner,
        json!({"provider": "anthropic", "label": "new", "secret": secret(), "status": "standby"}),
    )
    .await;
    assert_eq!(new["status"], "standby");
    let (new_id, old_id) = (new["id"].as_str().unwrap(), old["id"].as_str().unwrap());
    let (status, promoted) = s
        .patch(
            &path(&s, &format!("/{new_id}")),
            &owner,
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{promoted}");
    assert_eq!(promoted["status"], "active");
    let (status, revoked) = s
        .patch(
            &path(&s, &format!("/{old_id}")),
            &owner,
            json!({"status": "revoked"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    // Revocation is final.
    let (status, _) = s
        .patch(
            &path(&s, &format!("/{old_id}")),
            &owner,
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let secrets = stored_secrets(&s).await;
    assert_eq!(secrets.get(old_id).map(String::as_str), Some(""));
    assert!(secrets[new_id].starts_with("v1."), "{secrets:?}");
    let actions: Vec<String> = s
        .audit_rows(&owner)
        .await
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(actions.contains(&"provider_key.revoke".to_string()));
    assert_eq!(
        s.delete(&path(&s, &format!("/{old_id}")), &owner).await,
        StatusCode::NO_CONTENT
    );
}

/// The `secret` column of every provider key, by id.
async fn stored_secrets(s: &Server) -> std::collections::HashMap<String, String> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&s.database_url())
        .await
        .unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, secret FROM provider_keys")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    rows.into_iter().collect()
}

/// Everything the database holds, as bytes: the SQLite files themselves, or every row of
/// every PostgreSQL table as JSON.
async fn dump(s: &Server) -> Vec<u8> {
    match s.backend {
        Backend::Sqlite => {
            let mut out = Vec::new();
            for entry in std::fs::read_dir(common::data_dir(s)).unwrap() {
                let p = entry.unwrap().path();
                if p.is_file() {
                    out.extend(std::fs::read(&p).unwrap());
                }
            }
            out
        }
        Backend::Postgres => {
            use sqlx::Connection;
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(&s.database_url())
                .await
                .unwrap();
            let tables: Vec<(String,)> = sqlx::query_as(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            assert!(tables.len() > 10, "{tables:?}");
            let mut out = Vec::new();
            for (t,) in tables {
                let rows: Vec<(String,)> =
                    sqlx::query_as(&format!("SELECT row_to_json(x)::text FROM \"{t}\" x"))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                for (r,) in rows {
                    out.extend(r.into_bytes());
                }
            }
            out
        }
    }
}

async fn no_key_survives_in_a_dump_or_the_logs(b: Backend) {
    let s = Server::start_with(
        b,
        common::Options {
            env: vec![("BASTION_LOG_LEVEL".into(), "debug".into())],
            ..Default::default()
        },
    )
    .await;
    let owner = s.login(OWNER_EMAIL).await;
    let mut secrets = Vec::new();
    for (i, provider) in ["openai", "anthropic", "openai"].into_iter().enumerate() {
        let sk = secret();
        add(
            &s,
            &owner,
            json!({"provider": provider, "label": format!("k{i}"), "secret": sk}),
        )
        .await;
        secrets.push(sk);
    }
    // A refused request carrying a key must not leave it anywhere either.
    let refused = secret();
    let (status, _) = s
        .post(
            &path(&s, ""),
            &owner,
            json!({"provider": "openai", "label": "", "secret": refused}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    secrets.push(refused);

    let mut haystack = dump(&s).await;
    haystack.extend(s.logs().join("\n").into_bytes());
    assert!(
        haystack.len() > 10_000,
        "the dump is too small to mean anything"
    );
    for sk in &secrets {
        for window in sk.as_bytes().windows(8) {
            assert!(
                !haystack.windows(8).any(|w| w == window),
                "8 bytes of a provider key ({:?}) are in the dump or the logs",
                String::from_utf8_lossy(window)
            );
        }
    }
}

/// Starts `serve` on the server's store and waits for it to exit (killing it after 15 s):
/// `(exited, stderr)`.
fn serve_exits(s: &Server) -> (bool, String) {
    use std::process::{Command, Stdio};
    let mut child = Command::new(common::BIN)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(s.store_args())
        .env("BASTION_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bastion");
    for _ in 0..150 {
        if child.try_wait().expect("wait").is_some() {
            let out = child.wait_with_output().expect("output");
            return (true, String::from_utf8_lossy(&out.stderr).to_string());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    (false, String::new())
}

async fn a_lost_master_key_is_not_silently_replaced(b: Backend) {
    let s = Server::start(b).await;
    let owner = s.login(OWNER_EMAIL).await;
    add(
        &s,
        &owner,
        json!({"provider": "openai", "label": "k", "secret": secret()}),
    )
    .await;
    let key_file = common::data_dir(&s).join("master.key");
    let kept = common::data_dir(&s).join("master.key.kept");
    std::fs::rename(&key_file, &kept).unwrap();
    let (exited, stderr) = serve_exits(&s);
    assert!(exited, "serve started with its master key gone");
    assert!(stderr.contains("master key"), "{stderr}");
    assert!(!key_file.exists(), "a new master key was written");
    std::fs::rename(&kept, &key_file).unwrap();
}

on_both_backends!(
    a_lost_master_key_is_not_silently_replaced,
    a_key_is_write_only,
    bad_keys_are_refused,
    a_rotation_promotes_the_standby_and_erases_the_revoked,
    no_key_survives_in_a_dump_or_the_logs,
);
