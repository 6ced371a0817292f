//! Master key rotation: `bastion vault rotate-master` killed half-way and run again leaves
//! every secret (provider keys, TOTP secrets, device factory keys) readable and none lost, and afterwards the
//! new key alone opens them all while the old key alone no longer does.

mod common;

use common::{Backend, Server, OWNER_EMAIL};
use reqwest::StatusCode;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Duration;

const KEYS: usize = 40;

/// `secret` of every provider key, plus the owner's pending TOTP secret.
async fn sealed(s: &Server) -> Vec<String> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&s.database_url())
        .await
        .unwrap();
    let mut out: Vec<(String,)> = sqlx::query_as("SELECT secret FROM provider_keys ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let totp: Vec<(String,)> = sqlx::query_as(
        "SELECT totp_pending_secret FROM users WHERE totp_pending_secret IS NOT NULL",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    out.extend(totp);
    let device_keys: Vec<(String,)> =
        sqlx::query_as("SELECT hmac_key FROM devices WHERE hmac_key IS NOT NULL")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    out.extend(device_keys);
    out.into_iter().map(|r| r.0).collect()
}

/// Runs `bastion vault check` with `config` (TOML); (success, stdout).
fn check(s: &Server, config: &str) -> (bool, String) {
    let path = s.dir.path().join(format!("check-{}.toml", config.len()));
    std::fs::write(&path, config).unwrap();
    let path = path.display().to_string();
    let out = s.cli(&["vault", "check", "--config", &path], None);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

async fn an_interrupted_rotation_resumes_and_loses_nothing(b: Backend) {
    let s = Server::start(b).await;
    let owner = s.login(OWNER_EMAIL).await;
    let path = format!("/api/v1/workspaces/{}/provider-keys", s.tenant.workspace_id);
    for i in 0..KEYS {
        let body = json!({"provider": "openai", "label": format!("k{i}"), "secret": format!("sk-rotation-{i:04}-abcdefgh")});
        assert_eq!(s.post(&path, &owner, body).await.0, StatusCode::CREATED);
    }
    let (status, body) = s.post("/api/v1/auth/mfa/totp", &owner, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = s
        .post(
            &s.assistant_path("/devices"),
            &owner,
            json!({"mac": "02:00:00:00:aa:01", "serial_number": "SN-1", "hmac_key_hex": "00112233445566778899aabbccddeeff"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let before = sealed(&s).await;
    assert_eq!(before.len(), KEYS + 2);
    let old_prefix = before[0][..20].to_string();
    assert!(before[..KEYS].iter().all(|v| v.starts_with(&old_prefix)));

    // Start a slow rotation and kill it once some records have moved.
    let new_key = s.dir.path().join("new-master.key");
    let mut rotation = Command::new(common::BIN)
        .args([
            "vault",
            "rotate-master",
            "--throttle-ms",
            "50",
            "--new-key-file",
        ])
        .arg(&new_key)
        .args(s.store_args())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the rotation");
    let mut moved = 0;
    for _ in 0..500 {
        moved = sealed(&s)
            .await
            .iter()
            .take(KEYS)
            .filter(|v| !v.starts_with(&old_prefix))
            .count();
        if moved >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rotation.kill().expect("kill the rotation");
    rotation.wait().unwrap();
    let halfway = sealed(&s).await;
    let moved_now = halfway
        .iter()
        .take(KEYS)
        .filter(|v| !v.starts_with(&old_prefix))
        .count();
    assert!(
        (5..KEYS).contains(&moved_now),
        "not half-way: {moved} then {moved_now} of {KEYS} moved"
    );
    assert_eq!(halfway.len(), KEYS + 2, "a record was lost");

    // Half-way, every secret opens with both keys configured.
    let both = format!(
        "previous_master_key_files = [{:?}]\n",
        new_key.display().to_string()
    );
    let (ok, out) = check(&s, &both);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("{} sealed secrets open, 0 do not", KEYS + 2)),
        "{out}"
    );

    // Run again to the end.
    let out = s.cli(
        &[
            "vault",
            "rotate-master",
            "--new-key-file",
            &new_key.display().to_string(),
        ],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(", 0 failed"), "{stdout}");
    let after = sealed(&s).await;
    assert_eq!(after.len(), KEYS + 2);
    assert!(after[..KEYS].iter().all(|v| !v.starts_with(&old_prefix)));
    assert_ne!(
        after[KEYS], before[KEYS],
        "the TOTP secret was not re-sealed"
    );
    assert!(
        !after[KEYS + 1].contains(&before[KEYS + 1][..20]),
        "the device's factory key was not re-wrapped"
    );

    // The new key alone opens everything; the old key alone no longer does.
    let only_new = format!("master_key_file = {:?}\n", new_key.display().to_string());
    let (ok, out) = check(&s, &only_new);
    assert!(ok, "{out}");
    let (ok, out) = check(&s, "");
    assert!(!ok, "the old key still opens re-wrapped secrets: {out}");
}

on_both_backends!(an_interrupted_rotation_resumes_and_loses_nothing);
