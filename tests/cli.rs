//! The command line: help that explains, settings that layer and fail loudly, a refusal to
//! serve plain HTTP publicly, an `init` that runs once, and a route table that needs no store.

mod common;

use common::{run_cli, BIN};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bastion(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run bastion");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn help_explains_every_command() {
    let (ok, out, _) = bastion(&["--help"], &[]);
    assert!(ok);
    for word in [
        "serve", "init", "users", "sessions", "audit", "vault", "routes", "BASTION_",
    ] {
        assert!(out.contains(word), "--help lacks {word}: {out}");
    }
    for sub in [
        vec!["serve"],
        vec!["init"],
        vec!["users", "add"],
        vec!["users", "list"],
        vec!["audit", "verify"],
        vec!["sessions", "list"],
        vec!["sessions", "revoke"],
        vec!["vault", "rotate-master"],
        vec!["vault", "check"],
    ] {
        let mut args = sub.clone();
        args.push("--help");
        let (ok, out, _) = bastion(&args, &[]);
        assert!(ok, "{sub:?} --help");
        assert!(
            out.contains("--data-dir") && out.contains("--config"),
            "{sub:?} --help: {out}"
        );
    }
    let (_, out, _) = bastion(&["vault", "rotate-master", "--help"], &[]);
    assert!(
        out.contains("--new-key-file") && out.contains("previous_master_key_files"),
        "{out}"
    );
    let (_, out, _) = bastion(&["serve", "--help"], &[]);
    assert!(
        out.contains("--bind") && out.contains("trusted_proxies"),
        "{out}"
    );
}

#[test]
fn a_public_bind_without_tls_or_proxy_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (ok, _, err) = bastion(&["serve", "--bind", "0.0.0.0:0", "--data-dir", d], &[]);
    assert!(!ok);
    assert!(
        err.contains("bind") && err.contains("trusted_proxies"),
        "{err}"
    );
    assert!(
        !dir.path().join("bastion.db").exists(),
        "refused before touching the store"
    );
    let (ok, _, err) = bastion(&["serve", "--data-dir", d], &[("BASTION_BIND", "[::]:0")]);
    assert!(!ok, "the environment is checked too: {err}");
}

#[test]
fn a_public_bind_behind_a_declared_proxy_starts() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--bind",
            "0.0.0.0:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ])
        .env("BASTION_TRUSTED_PROXIES", "[\"127.0.0.1/32\"]")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("bastion listening on") && started.elapsed() < Duration::from_secs(20) {
        use std::io::Read;
        match stdout.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.contains("bastion listening on http://0.0.0.0:"),
        "{seen}"
    );
}

#[test]
fn bad_settings_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let cfg = dir.path().join("bastion.toml");
    std::fs::write(&cfg, "sigunp = \"open\"\n").unwrap();
    let (ok, _, err) = bastion(
        &["serve", "--config", cfg.to_str().unwrap(), "--data-dir", d],
        &[],
    );
    assert!(!ok);
    assert!(err.contains("sigunp"), "{err}");
    std::fs::write(&cfg, "signup = \"everyone\"\n").unwrap();
    let (ok, _, err) = bastion(
        &["serve", "--config", cfg.to_str().unwrap(), "--data-dir", d],
        &[],
    );
    assert!(!ok && err.contains("signup"), "{err}");
    let (ok, _, err) = bastion(
        &["serve", "--data-dir", d],
        &[("BASTION_ACCESS_TOKEN_TTL_SECS", "999999")],
    );
    assert!(!ok && err.contains("access_token_ttl_secs"), "{err}");
    let (ok, _, err) = bastion(&["serve", "--config", "/nonexistent/bastion.toml"], &[]);
    assert!(!ok && err.contains("/nonexistent/bastion.toml"), "{err}");
}

#[test]
fn init_runs_once_and_prints_a_generated_password_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = vec!["--data-dir".to_string(), dir.path().display().to_string()];
    let out = run_cli(
        &["init", "--email", "first@example.test"],
        &store,
        &[],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let password = text
        .lines()
        .find_map(|l| l.strip_prefix("password   "))
        .expect("a generated password is printed");
    assert_eq!(password.trim().len(), 24);
    let again = run_cli(
        &["init", "--email", "second@example.test"],
        &store,
        &[],
        None,
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already initialized"));
    let list = run_cli(&["users", "list"], &store, &[], None);
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(listed.contains("first@example.test  operator"), "{listed}");
    assert!(!listed.contains("second@"), "{listed}");
    // Files holding secrets are private to the owner.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("jwt-signing.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "signing key mode {mode:o}");
    }
    let dup = run_cli(
        &["users", "add", "--email", "FIRST@example.test"],
        &store,
        &[],
        None,
    );
    assert!(
        !dup.status.success(),
        "emails are unique whatever their case"
    );
}

#[test]
fn a_weak_password_on_stdin_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = vec!["--data-dir".to_string(), dir.path().display().to_string()];
    let out = run_cli(
        &["init", "--email", "a@example.test", "--password-stdin"],
        &store,
        &[],
        Some("short"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("12 characters"));
}

#[test]
fn routes_lists_every_access_rule_without_touching_a_data_directory() {
    // A fresh machine: an empty working directory, no config, and a temporary directory of
    // our own to see that the command's scratch store is removed.
    let cwd = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let configured = cwd.path().join("configured-data");
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(cwd.path())
            .env("TMPDIR", tmp.path())
            .env("BASTION_DATA_DIR", &configured)
            .stdin(Stdio::null())
            .output()
            .expect("run bastion");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    };

    let text = run(&["routes"]);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["METHOD", "PATH", "ACCESS"], "{text}");
    for expected in [
        ["GET", "/healthz", "public"],
        [
            "PATCH",
            "/api/v1/assistants/{assistant_id}",
            "assistant:settings.manage",
        ],
    ] {
        assert!(
            lines.contains(&expected.to_vec()),
            "no {expected:?} in\n{text}"
        );
    }
    assert!(lines.iter().all(|l| l.len() == 3), "{text}");

    let json: serde_json::Value = serde_json::from_str(&run(&["routes", "--json"])).unwrap();
    let rows = json.as_array().expect("a JSON array");
    assert_eq!(
        rows.len(),
        lines.len() - 1,
        "one entry per line of the table"
    );
    for row in rows {
        for key in ["method", "path", "access"] {
            assert!(
                row[key].as_str().is_some_and(|v| !v.is_empty()),
                "{key} of {row}"
            );
        }
    }

    let help = run(&["routes", "--help"]);
    assert!(
        help.contains("--json") && help.contains("access rule"),
        "{help}"
    );

    let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert!(left.is_empty(), "the working directory gained {left:?}");
    assert!(
        !configured.exists(),
        "the configured data directory was created"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "the scratch store was left behind: {left:?}"
    );
}
