//! `bastion security audit`: every finding is made to appear by a configuration or tenant
//! setup that deserves it, and to disappear when that is fixed; a critical finding makes
//! the exit code 1.

mod common;

use common::{run_cli, Backend, Options, Server, OWNER_EMAIL};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;
use std::collections::BTreeSet;
use std::path::Path;

/// The audit's JSON and whether it passed (exit code 0).
fn audit(args: &[&str], store_args: &[String], env: &[(&str, &str)]) -> (bool, Value) {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut all = vec!["security", "audit", "--json"];
    all.extend(args);
    let out = run_cli(&all, store_args, &env, None);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no JSON: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), report)
}

fn ids(report: &Value) -> BTreeSet<String> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["id"].as_str().expect("id").to_string())
        .collect()
}

fn severity(report: &Value, id: &str) -> String {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .map(|f| f["severity"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Tenant setups: each weak one is found, named, and gone once fixed.
async fn each_weak_tenant_setting_is_found_and_cleared(b: Backend) {
    let s = Server::start(b).await;
    let token = s.login(OWNER_EMAIL).await;
    let a = s.tenant.assistant_id.clone();
    let ws = s.tenant.workspace_id.clone();
    let store = s.store_args();
    let run = |env: &[(&str, &str)]| audit(&["--offline"], &store, env);
    // The data directory as `bastion init` would make it (the test's is a plain temp dir).
    std::fs::set_permissions(
        common::data_dir(&s),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();

    // A fresh tenant: only its owner without MFA.
    let (passed, report) = run(&[]);
    assert!(passed, "{report}");
    assert_eq!(
        ids(&report),
        BTreeSet::from(["admin-without-mfa".to_string()])
    );
    assert_eq!(report["checked"]["store"], true);
    assert!(report["findings"][0]["detail"]
        .as_str()
        .unwrap()
        .contains(OWNER_EMAIL));

    // Weak choices, one of each.
    let (status, key) = s
        .post(
            &format!("/api/v1/assistants/{a}/api-keys"),
            &token,
            json!({"name": "forever", "capabilities": ["chat"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let (status, pk) = s
        .post(
            &format!("/api/v1/workspaces/{ws}/provider-keys"),
            &token,
            json!({"provider": "openai", "label": "uncapped", "secret": "sk-test-123456789"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{pk}");
    let egress = format!("/api/v1/assistants/{a}/egress");
    let put = |path: String, body: Value| {
        let (s, token) = (&s, token.clone());
        async move {
            let (status, out) = s.call(Method::PUT, &path, Some(&token), Some(body)).await;
            assert_eq!(status, StatusCode::OK, "{path}: {out}");
            out
        }
    };
    put(egress.clone(), json!({"private_hosts": ["internal.test"]})).await;
    let mut tool_ids = Vec::new();
    for (name, builtin, risk) in [
        ("web", "fetch_url", "external"),
        ("notes", "write_file", "write"),
    ] {
        let (status, tool) = s
            .post(
                &format!("/api/v1/assistants/{a}/tools"),
                &token,
                json!({"name": name, "kind": "builtin", "builtin": builtin, "risk": risk,
                       "approval": {"rule": "never"}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{tool}");
        tool_ids.push((
            tool["id"].as_str().unwrap().to_string(),
            name,
            builtin,
            risk,
        ));
    }
    let policy = format!("/api/v1/assistants/{a}/devices/policy");
    put(
        policy.clone(),
        json!({"pairing": "auto", "code_kind": "digits"}),
    )
    .await;

    let (passed, report) = run(&[]);
    assert!(passed, "nothing critical yet: {report}");
    let found = ids(&report);
    for id in [
        "api-key-without-expiry",
        "api-key-without-spend-cap",
        "provider-key-without-cap",
        "mcp-private-addresses",
        "external-tool-without-approval",
        "write-tool-without-approval",
        "digits-only-activation-codes",
    ] {
        assert!(found.contains(id), "{id} missing: {found:?}");
    }
    assert_eq!(severity(&report, "external-tool-without-approval"), "high");
    assert!(
        !found.contains("auto-pairing-on-public-deployment"),
        "a loopback deployment is not public"
    );
    // Published behind a proxy: automatic pairing is a finding, and so are metrics
    // without a token.
    let proxied = [("BASTION_TRUSTED_PROXIES", "[\"10.0.0.0/8\"]")];
    let (_, report) = run(&proxied);
    let found = ids(&report);
    assert!(
        found.contains("auto-pairing-on-public-deployment"),
        "{found:?}"
    );
    assert!(found.contains("metrics-without-token"), "{found:?}");

    // A changed audit event is critical.
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&s.database_url())
        .await
        .unwrap();
    let (id, action): (String, String) =
        sqlx::query_as("SELECT id, action FROM audit_events WHERE chain = $1 ORDER BY seq LIMIT 1")
            .bind(&ws)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    sqlx::query("UPDATE audit_events SET action = 'nothing.happened' WHERE id = $1")
        .bind(&id)
        .execute(&mut conn)
        .await
        .unwrap();
    let (passed, report) = run(&[]);
    assert!(!passed, "a broken chain fails the audit");
    assert_eq!(severity(&report, "audit-chain-broken"), "critical");
    assert_eq!(report["critical"], 1);
    sqlx::query("UPDATE audit_events SET action = $1 WHERE id = $2")
        .bind(&action)
        .bind(&id)
        .execute(&mut conn)
        .await
        .unwrap();

    // Fixed, each.
    let key_id = key["api_key"]["id"].as_str().unwrap();
    assert_eq!(
        s.delete(&format!("/api/v1/assistants/{a}/api-keys/{key_id}"), &token)
            .await,
        StatusCode::NO_CONTENT
    );
    let (status, _) = s
        .post(
            &format!("/api/v1/assistants/{a}/api-keys"),
            &token,
            json!({"name": "bounded", "capabilities": ["chat"], "monthly_spend_cap_usd": 5.0,
                   "expires_at": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = s
        .patch(
            &format!(
                "/api/v1/workspaces/{ws}/provider-keys/{}",
                pk["id"].as_str().unwrap()
            ),
            &token,
            json!({"monthly_spend_cap_usd": 50.0}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    put(egress, json!({"private_hosts": []})).await;
    for (id, name, builtin, risk) in &tool_ids {
        put(
            format!("/api/v1/assistants/{a}/tools/{id}"),
            json!({"name": name, "kind": "builtin", "builtin": builtin, "risk": risk,
                   "approval": {"rule": "always"}}),
        )
        .await;
    }
    put(
        policy,
        json!({"pairing": "approval", "code_kind": "alphanumeric"}),
    )
    .await;
    let (passed, report) = run(&proxied);
    assert!(passed, "{report}");
    let left = ids(&report);
    assert_eq!(
        left,
        BTreeSet::from([
            "admin-without-mfa".to_string(),
            "metrics-without-token".to_string()
        ]),
        "{report}"
    );
    let (_, report) = run(&[
        ("BASTION_TRUSTED_PROXIES", "[\"10.0.0.0/8\"]"),
        ("BASTION_METRICS_TOKEN", "a-long-scrape-token-0123456789"),
    ]);
    assert!(!ids(&report).contains("metrics-without-token"), "{report}");

    // The owner enrols a second factor: the last finding goes.
    let (status, enrol) = s.post("/api/v1/auth/mfa/totp", &token, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{enrol}");
    let secret = totp_rs::Secret::Encoded(enrol["secret"].as_str().unwrap().to_string())
        .to_bytes()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = bastion_auth::totp::code_at(&secret, now).unwrap();
    let (status, body) = s
        .post(
            "/api/v1/auth/mfa/totp/confirm",
            &token,
            json!({"code": code}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (passed, report) = run(&[]);
    assert!(passed);
    assert_eq!(ids(&report), BTreeSet::new(), "{report}");
}

on_both_backends!(each_weak_tenant_setting_is_found_and_cleared);

/// Settings and key files: each weak choice found, then cleared.
#[test]
fn each_weak_setting_is_found_and_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = vec!["--data-dir".to_string(), data.display().to_string()];
    // A store and its keys, as `init` makes them.
    let init = run_cli(
        &["init", "--email", "o@x.test", "--password-stdin"],
        &store,
        &[],
        Some(common::PASSWORD),
    );
    assert!(init.status.success());
    let config = dir.path().join("bastion.toml");
    let cfg = config.display().to_string();
    let with = |toml: &str, env: &[(&str, &str)]| {
        std::fs::write(&config, toml).unwrap();
        audit(&["--offline", "--config", &cfg], &store, env)
    };

    let (passed, report) = with("", &[]);
    assert!(passed, "{report}");
    assert_eq!(
        ids(&report),
        BTreeSet::from(["admin-without-mfa".to_string()]),
        "{report}"
    );

    // A public address without TLS, HTTP and MQTT.
    let (passed, report) = with(
        "bind = \"0.0.0.0:8080\"\nmqtt_bind = \"0.0.0.0:1884\"\n",
        &[],
    );
    assert!(!passed);
    assert_eq!(severity(&report, "public-bind-without-tls"), "critical");
    assert_eq!(severity(&report, "public-mqtt-without-tls"), "critical");
    // With bastion's own TLS: fine, but TLS 1.2 allowed is a finding; a broken pair critical.
    let tls = dir.path().join("tls");
    let files = common::self_signed(&tls, &[]);
    let (passed, report) = with(&format!("bind = \"0.0.0.0:8443\"\n{files}"), &[]);
    assert!(passed, "{report}");
    assert!(!ids(&report).contains("public-bind-without-tls"));
    let (_, report) = with(&format!("{files}tls_min_version = \"1.2\"\n"), &[]);
    assert_eq!(severity(&report, "tls-1.2-allowed"), "medium");
    std::fs::write(tls.join("broken.pem"), "not a certificate").unwrap();
    let broken = files.replace("cert.pem", "broken.pem");
    let (passed, report) = with(&broken, &[]);
    assert!(!passed);
    assert_eq!(severity(&report, "tls-certificate-unusable"), "critical");

    // Key files: readable by others, or made up.
    set_mode(&data.join("master.key"), 0o644);
    let (passed, report) = with("", &[]);
    assert!(!passed);
    assert_eq!(severity(&report, "key-file-permissions"), "critical");
    set_mode(&data.join("master.key"), 0o600);
    let signing = data.join("jwt-signing.key");
    let real = std::fs::read(&signing).unwrap();
    std::fs::write(&signing, "00".repeat(32)).unwrap();
    let (passed, report) = with("", &[]);
    assert!(!passed);
    assert_eq!(severity(&report, "signing-key-weak"), "critical");
    std::fs::write(&signing, "not a key").unwrap();
    let (passed, report) = with("", &[]);
    assert!(!passed);
    assert_eq!(severity(&report, "signing-key-unusable"), "critical");
    std::fs::write(&signing, &real).unwrap();
    let master = data.join("master.key");
    let real_master = std::fs::read(&master).unwrap();
    std::fs::write(&master, "short").unwrap();
    let (passed, report) = with("", &[]);
    assert!(!passed);
    assert_eq!(severity(&report, "master-key-unusable"), "critical");
    std::fs::write(&master, &real_master).unwrap();
    use base64::Engine;
    let zeros = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
    let (passed, report) = with("", &[("BASTION_MASTER_KEY", &zeros)]);
    assert!(!passed);
    assert_eq!(severity(&report, "master-key-weak"), "critical");
    set_mode(&data, 0o755);
    let (_, report) = with("", &[]);
    assert_eq!(severity(&report, "data-dir-permissions"), "high");
    set_mode(&data, 0o700);

    // Connections to other hosts in clear.
    let (_, report) = with("", &[("BASTION_REDIS_URL", "redis://10.1.2.3:6379")]);
    assert_eq!(severity(&report, "redis-without-tls"), "high");
    let (_, report) = with("", &[("BASTION_REDIS_URL", "rediss://10.1.2.3:6379")]);
    assert!(!ids(&report).contains("redis-without-tls"));
    // Not loopback, and refused at once: the store is skipped, the settings still audited.
    let far = "postgres://bastion@0.0.0.0:1/bastion";
    let (_, report) = with(&format!("database_url = {far:?}\n"), &[]);
    assert_eq!(severity(&report, "postgres-without-tls"), "high");
    assert_eq!(
        report["checked"]["store"], false,
        "the unreachable store is skipped"
    );
    let (_, report) = with(
        &format!("database_url = \"{far}?sslmode=verify-full\"\n"),
        &[],
    );
    assert!(!ids(&report).contains("postgres-without-tls"));

    // All fixed again.
    let (passed, report) = with("", &[]);
    assert!(passed);
    assert_eq!(
        ids(&report),
        BTreeSet::from(["admin-without-mfa".to_string()])
    );
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The running instance: metrics without a token behind a proxy, and TLS 1.2 accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_instance_is_checked_when_it_answers() {
    // Loopback, published by a proxy, no metrics token: /metrics answers anyone.
    let s = Server::start_with(
        Backend::Sqlite,
        Options {
            serve_args: Vec::new(),
            env: vec![("BASTION_TRUSTED_PROXIES".into(), "[\"10.0.0.0/8\"]".into())],
        },
    )
    .await;
    let env = [("BASTION_TRUSTED_PROXIES", "[\"10.0.0.0/8\"]")];
    let (_, report) = audit(&["--url", &s.url("")], &s.store_args(), &env);
    assert_eq!(report["checked"]["instance"]["reachable"], true, "{report}");
    assert_eq!(severity(&report, "live-metrics-without-token"), "high");
    let (_, report) = audit(
        &["--url", &s.url("")],
        &s.store_args(),
        &[
            ("BASTION_TRUSTED_PROXIES", "[\"10.0.0.0/8\"]"),
            ("BASTION_METRICS_TOKEN", "a-long-scrape-token-0123456789"),
        ],
    );
    // The audit's settings say a token is set, but this instance runs without one.
    assert_eq!(severity(&report, "live-metrics-without-token"), "high");
    drop(s);
    // Run with a token: /metrics refuses the anonymous scrape.
    let token_env = [
        ("BASTION_TRUSTED_PROXIES", "[\"10.0.0.0/8\"]"),
        ("BASTION_METRICS_TOKEN", "a-long-scrape-token-0123456789"),
    ];
    let s = Server::start_with(
        Backend::Sqlite,
        Options {
            serve_args: Vec::new(),
            env: token_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
    )
    .await;
    let (_, report) = audit(&["--url", &s.url("")], &s.store_args(), &token_env);
    assert_eq!(report["checked"]["instance"]["reachable"], true);
    assert!(
        !ids(&report).contains("live-metrics-without-token"),
        "{report}"
    );
    drop(s);

    // Gone: the instance is not checked, and says so.
    let empty = tempfile::tempdir().unwrap();
    let nowhere = vec!["--data-dir".to_string(), empty.path().display().to_string()];
    let (_, report) = audit(&["--url", "http://127.0.0.1:9"], &nowhere, &[]);
    assert_eq!(report["checked"]["instance"]["reachable"], false);
    assert_eq!(
        report["checked"]["store"], false,
        "no store is created to audit it"
    );
    assert!(!empty.path().join("bastion.db").exists());
    assert!(!ids(&report).contains("live-metrics-without-token"));

    // bastion's own TLS accepting TLS 1.2: the live handshake finds it; HSTS is there.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bastion.toml");
    let tls = dir.path().join("tls");
    let files = common::self_signed(&tls, &[]);
    for (min, expect_finding) in [("1.2", true), ("1.3", false)] {
        std::fs::write(&config, format!("{files}tls_min_version = \"{min}\"\n")).unwrap();
        let cfg = config.display().to_string();
        let s = Server::start_with(
            Backend::Sqlite,
            Options {
                serve_args: vec!["--config".into(), cfg.clone()],
                env: Vec::new(),
            },
        )
        .await;
        let (_, report) = audit(
            &["--url", &s.url(""), "--config", &cfg],
            &s.store_args(),
            &[],
        );
        let found = ids(&report);
        assert_eq!(
            found.contains("live-tls-1.2"),
            expect_finding,
            "{min}: {report}"
        );
        assert!(!found.contains("live-without-hsts"), "{report}");
    }

    // HTTPS from something that sends no HSTS (a proxy, say): openssl's test server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut proxy = std::process::Command::new("openssl")
        .args([
            "s_server",
            "-quiet",
            "-www",
            "-accept",
            &port.to_string(),
            "-cert",
        ])
        .arg(tls.join("cert.pem"))
        .arg("-key")
        .arg(tls.join("key.pem"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let url = format!("https://127.0.0.1:{port}");
    let mut report = Value::Null;
    for _ in 0..50 {
        report = audit(&["--url", &url], &nowhere, &[]).1;
        if report["checked"]["instance"]["reachable"] == true {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = proxy.kill();
    let _ = proxy.wait();
    assert_eq!(severity(&report, "live-without-hsts"), "medium", "{report}");
}
