//! Starts `server.mjs` (oauth2-mock-server with a control endpoint) for a test, and drives
//! it. Shared by the black-box tests and the auth crate's tests through `#[path]`.
//! Needs `node` and `npm ci` run in this folder (`bash .ci/run` does it); without them the
//! test fails and says so, it is never skipped.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const CLIENT_ID: &str = "bastion-test-client";
pub const CLIENT_SECRET: &str = "bastion-test-secret";

/// This folder, found by walking up from the crate that includes this file.
pub fn folder() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let candidate = dir.join("tests/support/oidc");
        if candidate.join("package.json").is_file() {
            return candidate;
        }
        if !dir.pop() {
            panic!(
                "tests/support/oidc not found above {}",
                env!("CARGO_MANIFEST_DIR")
            );
        }
    }
}

pub struct MockIdp {
    child: Child,
    /// The issuer URL, e.g. `http://127.0.0.1:40123`.
    pub issuer: String,
    pub http: reqwest::Client,
}

impl Drop for MockIdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MockIdp {
    /// Starts the mock, which accepts `redirect_uris` only (exact match) when any are given.
    pub fn start(redirect_uris: &[&str]) -> MockIdp {
        let dir = folder();
        assert!(
            dir.join("node_modules/oauth2-mock-server/package.json")
                .is_file(),
            "the OIDC test provider is not installed: run `npm ci` in {} (bash .ci/run does it)",
            dir.display()
        );
        let mut cmd = Command::new("node");
        cmd.arg("server.mjs")
            .args([
                "--port",
                "0",
                "--client-id",
                CLIENT_ID,
                "--client-secret",
                CLIENT_SECRET,
            ])
            .current_dir(&dir)
            .stdin(Stdio::piped()) // the mock exits when this closes (with the test)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for uri in redirect_uris {
            cmd.args(["--redirect-uri", uri]);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `node` for the OIDC test provider: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("oidc mock listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let issuer = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                panic!("the OIDC test provider (node server.mjs) did not start");
            }
        };
        MockIdp {
            child,
            issuer,
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let res = self
            .http
            .post(format!("{}{path}", self.issuer))
            .json(&body)
            .send()
            .await
            .expect("mock control request");
        assert!(
            res.status().is_success(),
            "mock control {path}: {}",
            res.status()
        );
        res.json().await.expect("mock control answer")
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.issuer))
            .send()
            .await
            .expect("mock control request")
            .json()
            .await
            .expect("mock control answer")
    }

    /// Who signs in from now on: `{sub, email, email_verified}`.
    pub async fn set_identity(&self, identity: Value) {
        self.post("/__control/identity", identity).await;
    }

    /// Spoils the next ID token (see server.mjs for the fields).
    pub async fn spoil_next_id_token(&self, spoil: Value) {
        self.post("/__control/next-id-token", spoil).await;
    }

    /// Signs with a new key (new kid) from now on.
    pub async fn rotate_key(&self) -> String {
        self.post("/__control/rotate-key", Value::Null).await["kid"]
            .as_str()
            .expect("kid")
            .to_string()
    }

    pub async fn last_authorize(&self) -> Value {
        self.get("/__control/last-authorize").await
    }

    pub async fn last_token(&self) -> Value {
        self.get("/__control/last-token").await
    }

    /// Plays the browser at the provider: follows `location` (the provider's authorization
    /// URL) and returns the query of the redirect back to the client (`code`, `state`).
    pub async fn authorize(&self, location: &str) -> Vec<(String, String)> {
        let res = self.http.get(location).send().await.expect("authorize");
        assert_eq!(
            res.status().as_u16(),
            302,
            "the provider refused the authorization request: {}",
            res.text().await.unwrap_or_default()
        );
        let back = res
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("redirect back")
            .to_string();
        url_query(&back)
    }
}

/// The decoded query pairs of an absolute URL.
pub fn url_query(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let query = query.split('#').next().unwrap_or("");
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn percent_decode(s: &str) -> String {
    let b = s.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("x"), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
