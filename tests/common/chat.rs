//! For conversation tests: a server whose assistant answers through an in-process fake
//! provider (`bastion-fake-provider`, the real OpenAI and Anthropic wire formats), and a
//! reader of Server-Sent Events.

use super::{Backend, Options, Server, OWNER_EMAIL};
use bastion_fake_provider::{FakeHandle, FakeProvider};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The model the fake answers as, priced in the test configuration.
pub const MODEL: &str = "fake-model";

pub struct Chat {
    pub s: Server,
    pub fake: FakeHandle,
    pub owner: String,
    /// The provider key's secret, as the fake sees it.
    pub secret: String,
    pub provider_key_id: String,
    /// `--config <file>`: pass again on restart.
    pub config_args: Vec<String>,
    _config_dir: tempfile::TempDir,
}

/// `$1` and `$2` per million tokens in and out, and fast background writes.
pub const CONFIG: &str = r#"
usage_flush_ms = 50
provider_timeout_secs = 5
provider_private_hosts = ["127.0.0.1"]
[model_prices."fake-model"]
input_per_mtok_usd = 1.0
output_per_mtok_usd = 2.0
"#;

pub fn random_secret() -> String {
    format!("sk-test-{}", uuid::Uuid::new_v4().simple())
}

impl Chat {
    /// A server (configured with [`CONFIG`]) whose tenant assistant answers through a fake
    /// provider with `system_prompt`.
    pub async fn start(backend: Backend, system_prompt: &str) -> Chat {
        Self::start_with_env(backend, system_prompt, Vec::new()).await
    }

    /// As [`Chat::start`], with extra environment variables (`BASTION_*` settings) for bastion.
    pub async fn start_with_env(
        backend: Backend,
        system_prompt: &str,
        env: Vec<(String, String)>,
    ) -> Chat {
        Self::start_configured(backend, system_prompt, "", env).await
    }

    /// As [`Chat::start_with_env`], with `extra` TOML appended to [`CONFIG`].
    pub async fn start_configured(
        backend: Backend,
        system_prompt: &str,
        extra: &str,
        env: Vec<(String, String)>,
    ) -> Chat {
        let dir = tempfile::tempdir().expect("config dir");
        let file = dir.path().join("bastion.toml");
        std::fs::write(&file, format!("{CONFIG}\n{extra}")).expect("config file");
        let config_args = vec!["--config".to_string(), file.display().to_string()];
        let s = Server::start_with(
            backend,
            Options {
                serve_args: config_args.clone(),
                env,
            },
        )
        .await;
        let fake = FakeProvider::start();
        let owner = s.login(OWNER_EMAIL).await;
        let secret = random_secret();
        let provider_key_id = add_provider_key(&s, &owner, &fake, &secret, "active").await;
        let chat = Chat {
            s,
            fake,
            owner,
            secret,
            provider_key_id,
            config_args,
            _config_dir: dir,
        };
        let assistant = chat.s.tenant.assistant_id.clone();
        chat.configure(&assistant, system_prompt, json!({})).await;
        chat
    }

    /// Sets an assistant's settings to the fake's model and this chat's provider key, with
    /// `extra` fields over them.
    pub async fn configure(&self, assistant: &str, system_prompt: &str, extra: Value) {
        let mut body = json!({
            "system_prompt": system_prompt,
            "provider_key_id": self.provider_key_id,
            "model": MODEL,
            "max_reply_tokens": 256,
            "context_tokens": 4096,
        });
        for (k, v) in extra.as_object().expect("extra is an object") {
            body[k] = v.clone();
        }
        let (status, out) = self
            .s
            .call(
                reqwest::Method::PUT,
                &format!("/api/v1/assistants/{assistant}/settings"),
                Some(&self.owner),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{out}");
    }

    /// A new conversation of `token` on the tenant assistant; its path.
    pub async fn conversation(&self, token: &str) -> String {
        let (status, c) = self
            .s
            .post(&self.s.assistant_path("/conversations"), token, json!({}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{c}");
        self.s
            .assistant_path(&format!("/conversations/{}", c["id"].as_str().expect("id")))
    }

    /// Sends `content` to the conversation at `path` and reads the whole event stream.
    pub async fn say(
        &self,
        token: &str,
        path: &str,
        content: &str,
    ) -> (StatusCode, Vec<(String, Value)>) {
        let res = self
            .s
            .http
            .post(self.s.url(&format!("{path}/messages")))
            .bearer_auth(token)
            .json(&json!({"content": content}))
            .send()
            .await
            .expect("request");
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        if status != StatusCode::OK {
            return (
                status,
                vec![(
                    "problem".into(),
                    serde_json::from_str(&text).unwrap_or(Value::String(text)),
                )],
            );
        }
        (status, parse_sse(&text))
    }

    /// The text of the `delta` events.
    pub fn answer_of(events: &[(String, Value)]) -> String {
        events
            .iter()
            .filter(|(e, _)| e == "delta")
            .map(|(_, d)| d["text"].as_str().unwrap_or_default())
            .collect()
    }

    /// The `tool` events of a turn, as `tool:status` (`weather:ok`, `fetch:refused`, …).
    pub fn tool_statuses(events: &[(String, Value)]) -> Vec<String> {
        events
            .iter()
            .filter(|(e, _)| e == "tool")
            .map(|(_, d)| {
                format!(
                    "{}:{}",
                    d["tool"].as_str().unwrap_or_default(),
                    d["status"].as_str().unwrap_or_default()
                )
            })
            .collect()
    }

    /// Waits for the background writer to store `n` traces of the conversation at `path`.
    /// The value of the Prometheus sample `name` whose labels include every one of `labels`
    /// (`key="value"`), from `GET /metrics`; none when there is no such sample.
    pub async fn metric(&self, name: &str, labels: &[&str]) -> Option<f64> {
        let text = self
            .s
            .http
            .get(self.s.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines().find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let rest = series.strip_prefix(name)?;
            let matches = (rest.is_empty() || rest.starts_with('{'))
                && labels.iter().all(|l| rest.contains(l));
            matches.then(|| value.parse().ok()).flatten()
        })
    }

    pub async fn traces(&self, token: &str, path: &str, n: usize) -> Value {
        for _ in 0..100 {
            let (status, body) = self.s.get(&format!("{path}/traces"), token).await;
            if status == StatusCode::OK && body.as_array().is_some_and(|a| a.len() >= n) {
                return body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{n} traces never appeared at {path}");
    }
}

/// Adds a provider key pointing at the fake with `status`; its id.
pub async fn add_provider_key(
    s: &Server,
    owner: &str,
    fake: &FakeHandle,
    secret: &str,
    status: &str,
) -> String {
    let (code, key) = s
        .post(
            &format!("/api/v1/workspaces/{}/provider-keys", s.tenant.workspace_id),
            owner,
            json!({"provider": "openai-compatible", "label": "fake", "secret": secret,
                   "base_url": fake.base_url_openai(), "status": status}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{key}");
    key["id"].as_str().expect("key id").to_string()
}

/// Server-Sent Events: `(event name, JSON data)` per event.
pub fn parse_sse(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut name = String::from("message");
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if !data.is_empty() {
            out.push((
                name,
                serde_json::from_str(&data).unwrap_or(Value::String(data)),
            ));
        }
    }
    out
}

/// Reads an event stream as it arrives, until `enough` holds for the events so far.
pub async fn read_until(
    res: reqwest::Response,
    enough: impl Fn(&[(String, Value)]) -> bool,
) -> Vec<(String, Value)> {
    let mut body = res.bytes_stream();
    let mut text = String::new();
    loop {
        let events = parse_sse(text.rsplit_once("\n\n").map(|(done, _)| done).unwrap_or(""));
        if enough(&events) {
            return events;
        }
        match tokio::time::timeout(std::time::Duration::from_secs(10), body.next()).await {
            Ok(Some(Ok(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            other => {
                panic!("the stream ended or stalled before enough events: {other:?} after {text}")
            }
        }
    }
}
