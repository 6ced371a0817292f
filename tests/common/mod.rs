//! The testkit: each test starts the real `bastion` binary on a fresh data directory (and,
//! for PostgreSQL, a fresh database) on a free port, and drives it over HTTP.
#![allow(dead_code)]

pub mod chat;
pub mod device;
pub mod mcp;
pub mod openapi;
pub mod otlp;
pub mod roles;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_bastion");
pub const OWNER_EMAIL: &str = "owner@tenant-a.test";
pub const PASSWORD: &str = "correct horse battery staple";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(Backend)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            }
        )*
    };
}

pub use bastion_test_pg::PgDatabase;

/// What `bastion init` created.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub owner_id: String,
    pub workspace_id: String,
    pub assistant_id: String,
}

pub struct Server {
    child: Child,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub backend: Backend,
    pub pg: Option<PgDatabase>,
    pub http: reqwest::Client,
    pub tenant: Tenant,
    log: Arc<Mutex<Vec<String>>>,
}

/// Options for a server start.
#[derive(Default, Clone)]
pub struct Options {
    /// Extra `serve` flags, e.g. `["--signup", "open"]`.
    pub serve_args: Vec<String>,
    /// Extra environment variables for every bastion process.
    pub env: Vec<(String, String)>,
}

impl Server {
    pub async fn start(backend: Backend) -> Server {
        Self::start_with(backend, Options::default()).await
    }

    /// A server whose `serve` gets `args` as extra flags.
    pub async fn start_serving(backend: Backend, args: &[&str]) -> Server {
        let serve_args = args.iter().map(|a| a.to_string()).collect();
        Self::start_with(
            backend,
            Options {
                serve_args,
                ..Options::default()
            },
        )
        .await
    }

    pub async fn start_with(backend: Backend, opts: Options) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PgDatabase::create().await),
        };
        let store_args = store_args(dir.path(), pg.as_ref());
        let init = run_cli(
            &["init", "--email", OWNER_EMAIL, "--password-stdin"],
            &store_args,
            &opts.env,
            Some(PASSWORD),
        );
        assert!(
            init.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let tenant = parse_init(&String::from_utf8_lossy(&init.stdout));

        let log = Arc::new(Mutex::new(Vec::new()));
        let (child, base) = spawn_serve(&store_args, &opts.serve_args, &opts.env, &log);
        Server {
            child,
            base,
            dir,
            backend,
            pg,
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            tenant,
            log,
        }
    }

    pub fn store_args(&self) -> Vec<String> {
        store_args(self.dir.path(), self.pg.as_ref())
    }

    /// Runs a CLI subcommand against this server's store.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run_cli(args, &self.store_args(), &[], stdin)
    }

    pub fn database_url(&self) -> String {
        match &self.pg {
            Some(pg) => pg.url.clone(),
            None => format!("sqlite://{}", self.dir.path().join("bastion.db").display()),
        }
    }

    pub fn signing_key(&self) -> Vec<u8> {
        let hex =
            std::fs::read_to_string(self.dir.path().join("jwt-signing.key")).expect("key file");
        (0..hex.trim().len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex.trim()[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// The server's process id (to send it a signal).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Creates a user from the CLI with the shared test password; returns its id.
    pub fn add_user(&self, email: &str, operator: bool) -> String {
        let mut args = vec!["users", "add", "--email", email, "--password-stdin"];
        if operator {
            args.push("--operator");
        }
        let out = self.cli(&args, Some(PASSWORD));
        assert!(
            out.status.success(),
            "users add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        paren_id(text.lines().next().unwrap_or(""))
    }

    pub async fn login(&self, email: &str) -> String {
        self.login_with(email, PASSWORD).await
    }

    pub async fn login_with(&self, email: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login {email}: {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// One JSON request; the body of any answer is parsed as JSON (Null when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let res = self.send(method, path, token, body).await;
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// One request; the whole response (for its headers).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request")
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> StatusCode {
        self.call(Method::DELETE, path, Some(token), None).await.0
    }

    /// `GET path` with a `Host` header, as `token`; the status only.
    pub async fn get_via_host(&self, path: &str, host: &str, token: &str) -> StatusCode {
        let res = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .header("host", host)
            .send()
            .await;
        res.expect("request").status()
    }

    /// The outcomes of the platform-chain audit events with `action`, oldest first.
    #[allow(dead_code)]
    pub async fn platform_audit(&self, action: &str) -> Vec<String> {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.database_url())
            .await
            .expect("connect to the test store");
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT outcome FROM audit_events WHERE chain = 'platform' AND action = $1 ORDER BY seq",
        )
        .bind(action)
        .fetch_all(&mut conn)
        .await
        .expect("read audit events");
        rows.into_iter().map(|r| r.0).collect()
    }

    /// Signs in and returns the whole answer (access and refresh tokens, session id).
    #[allow(dead_code)]
    pub async fn sign_in(&self, email: &str) -> Value {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login {email}: {body}");
        body
    }

    /// Makes `email` (an existing user) a member of `assistant` with `role`, as `token`.
    pub async fn add_member(&self, token: &str, assistant: &str, email: &str, role: &str) {
        let (status, body) = self
            .post(
                &format!("/api/v1/assistants/{assistant}/members"),
                token,
                json!({"email": email, "role": role}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "add member {email}: {body}");
    }
}

/// Starts `bastion serve` on a free port with `store_args` and `serve_args`, its output
/// going to `log`; returns the process and its base URL once it listens.
fn spawn_serve(
    store_args: &[String],
    serve_args: &[String],
    env: &[(String, String)],
    log: &Arc<Mutex<Vec<String>>>,
) -> (Child, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .args(["--bind", "127.0.0.1:0"])
        .args(store_args)
        .args(serve_args)
        .env("BASTION_LOG_LEVEL", "warn")
        // A test sends bursts from one address and user, above the flood guards' defaults;
        // tests/limits.rs sets them low to see them work.
        .env("BASTION_RATE_LIMIT_IP_PER_MINUTE", "1000000")
        .env("BASTION_RATE_LIMIT_USER_PER_MINUTE", "1000000")
        .env("BASTION_RATE_LIMIT_KEY_PER_MINUTE", "1000000")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn bastion serve");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("bastion listening on ") {
                    let _ = tx.send(addr.to_string());
                }
                log.lock().unwrap().push(line);
            }
        });
    }
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap().push(line);
            }
        });
    }
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(a) => (child, a),
        Err(_) => {
            let _ = child.kill();
            panic!("bastion did not start: {:?}", log.lock().unwrap());
        }
    }
}

/// One event of an audit log, as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub action: String,
    pub outcome: String,
    pub actor: String,
    pub detail: Value,
}

impl Server {
    /// Stops the server and starts it again on the same store with `serve_args` (a new
    /// port: `base` changes).
    pub fn restart(&mut self, serve_args: &[&str]) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let args: Vec<String> = serve_args.iter().map(|a| a.to_string()).collect();
        let (child, base) = spawn_serve(&self.store_args(), &args, &[], &self.log);
        self.child = child;
        self.base = base;
    }

    /// A path under the tenant's assistant: `rest` is `""` or starts with `/`.
    pub fn assistant_path(&self, rest: &str) -> String {
        format!("/api/v1/assistants/{}{rest}", self.tenant.assistant_id)
    }

    /// The tenant workspace's audit events (the latest 200), oldest first, read as `token`.
    pub async fn audit_rows(&self, token: &str) -> Vec<AuditRow> {
        let path = format!(
            "/api/v1/workspaces/{}/audit?limit=200",
            self.tenant.workspace_id
        );
        let (status, body) = self.get(&path, token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let text = |e: &Value, k: &str| e[k].as_str().unwrap_or_default().to_string();
        let mut rows: Vec<AuditRow> = body["items"]
            .as_array()
            .expect("audit items")
            .iter()
            .map(|e| AuditRow {
                action: text(e, "action"),
                outcome: text(e, "outcome"),
                actor: text(e, "actor"),
                detail: e["detail"].clone(),
            })
            .collect();
        rows.reverse();
        rows
    }

    /// A new user given `role` on the tenant's assistant by `owner`, signed in: (id, token).
    pub async fn join(&self, owner: &str, email: &str, role: &str) -> (String, String) {
        let id = self.add_user(email, false);
        self.add_member(owner, &self.tenant.assistant_id, email, role)
            .await;
        (id, self.login(email).await)
    }

    /// A new assistant in the tenant's workspace, created by `token`; its id.
    pub async fn new_assistant(&self, token: &str, slug: &str) -> String {
        let path = format!("/api/v1/workspaces/{}/assistants", self.tenant.workspace_id);
        let (status, body) = self
            .post(&path, token, json!({"slug": slug, "name": slug}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("assistant id").to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn store_args(dir: &Path, pg: Option<&PgDatabase>) -> Vec<String> {
    let mut args = vec!["--data-dir".to_string(), dir.display().to_string()];
    if let Some(pg) = pg {
        args.push("--database-url".into());
        args.push(pg.url.clone());
    }
    args
}

/// Runs the binary with `args` then `store_args`, feeding `stdin` when given.
pub fn run_cli(
    args: &[&str],
    store_args: &[String],
    env: &[(String, String)],
    stdin: Option<&str>,
) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .args(store_args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn bastion");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).expect("write stdin");
        pipe.write_all(b"\n").expect("write stdin");
    }
    child.wait_with_output().expect("bastion output")
}

fn paren_id(line: &str) -> String {
    line.rsplit_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no (id) in {line:?}"))
        .to_string()
}

fn parse_init(stdout: &str) -> Tenant {
    let field = |name: &str| {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("init printed no {name}: {stdout}"));
        paren_id(line)
    };
    Tenant {
        owner_id: field("user"),
        workspace_id: field("workspace"),
        assistant_id: field("assistant"),
    }
}

/// The venv's python the tests drive real clients with (`BASTION_TEST_PYTHON`, or the one
/// `.ci/run` installs in `~/.cache/bastion-venv`).
pub fn python() -> String {
    std::env::var("BASTION_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/bastion-venv/bin/python",
            std::env::var("HOME").expect("HOME")
        )
    })
}

/// `bastion certs self-signed` into `dir` for `hosts` (the defaults when empty); the
/// settings that serve with the pair.
pub fn self_signed(dir: &Path, hosts: &[&str]) -> String {
    let d = dir.display().to_string();
    let mut args = vec!["certs", "self-signed", "--force", "--out-dir", &d];
    for h in hosts {
        args.extend(["--host", h]);
    }
    let out = run_cli(&args, &[], &[], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!(
        "tls_cert_file = {:?}\ntls_key_file = {:?}\n",
        dir.join("cert.pem").display().to_string(),
        dir.join("key.pem").display().to_string()
    )
}

pub fn data_dir(server: &Server) -> PathBuf {
    server.dir.path().to_path_buf()
}
