//! bastion's own TLS, checked with real clients: `openssl s_client` and `sslyze` (PyPI)
//! negotiate TLS 1.3 and are refused TLS 1.2 unless it is allowed; HTTPS answers carry
//! HSTS and WebSocket addresses are `wss://`; the devices' MQTT endpoint speaks MQTT over
//! the same TLS (`mosquitto_pub --cafile`); a new certificate is served after SIGHUP, and
//! after the files change without a signal; `bastion certs self-signed` writes a usable pair
//! with a private key only its owner reads.

mod common;

use common::{python, run_cli, self_signed, Backend, Options, Server, OWNER_EMAIL, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

struct Tls {
    s: Server,
    dir: tempfile::TempDir,
    web: reqwest::Client,
}

impl Tls {
    async fn start(extra: &str) -> Tls {
        Self::start_with(extra, |dir| {
            self_signed(dir, &[]);
        })
        .await
    }

    /// As [`Tls::start`], with `make` writing `cert.pem` and `key.pem` into the folder.
    async fn start_with(extra: &str, make: impl FnOnce(&Path)) -> Tls {
        let dir = tempfile::tempdir().expect("dir");
        make(&dir.path().join("tls"));
        let config = dir.path().join("bastion.toml");
        std::fs::write(
            &config,
            format!(
                "tls_cert_file = {:?}\ntls_key_file = {:?}\n{extra}\n",
                dir.path().join("tls/cert.pem").display().to_string(),
                dir.path().join("tls/key.pem").display().to_string(),
            ),
        )
        .expect("config");
        let s = Server::start_with(
            Backend::Sqlite,
            Options {
                serve_args: vec!["--config".into(), config.display().to_string()],
                env: Vec::new(),
            },
        )
        .await;
        let pem = std::fs::read(dir.path().join("tls/cert.pem")).expect("cert");
        let web = reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a certificate"))
            .build()
            .expect("client");
        Tls { s, dir, web }
    }

    fn port(&self) -> u16 {
        self.s
            .url("")
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port")
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("tls/cert.pem")
    }
}

/// `openssl s_client` against `port` with `args`: (handshake done, everything it printed).
fn s_client(port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && text.contains("BEGIN CERTIFICATE"),
        text,
    )
}

/// The subject the server's certificate names, as `s_client` prints it, without spaces.
fn subject(port: u16) -> String {
    let (ok, text) = s_client(port, &["-tls1_3"]);
    assert!(ok, "{text}");
    text.lines()
        .find(|l| l.starts_with("subject="))
        .map(|l| l.replace(' ', ""))
        .unwrap_or_default()
}

/// sslyze's scan of the TLS 1.2 and 1.3 cipher suites: (accepted on 1.2, accepted on 1.3).
fn sslyze(port: u16) -> (usize, usize) {
    let json = tempfile::NamedTempFile::new().expect("a file");
    let out = Command::new(python())
        .args(["-m", "sslyze", "--tlsv1_2", "--tlsv1_3", "--quiet"])
        .arg(format!("--json_out={}", json.path().display()))
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("sslyze runs (pip install -r tests/support/openai_sdk/requirements.txt)");
    let written = std::fs::read(json.path()).unwrap_or_default();
    let report: Value = serde_json::from_slice(&written).unwrap_or_else(|_| {
        panic!(
            "sslyze: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let scan = &report["server_scan_results"][0]["scan_result"];
    let accepted = |k: &str| {
        scan[k]["result"]["accepted_cipher_suites"]
            .as_array()
            .unwrap_or_else(|| panic!("no {k} in {scan}"))
            .len()
    };
    (
        accepted("tls_1_2_cipher_suites"),
        accepted("tls_1_3_cipher_suites"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_3_is_negotiated_and_tls_1_2_refused_by_default() {
    let t = Tls::start("").await;
    let port = t.port();
    assert!(t.s.url("").starts_with("https://"), "{}", t.s.url(""));

    let (ok, text) = s_client(port, &["-tls1_3"]);
    assert!(ok && text.contains("TLSv1.3"), "{text}");
    let (ok, text) = s_client(port, &["-tls1_2"]);
    assert!(!ok, "TLS 1.2 was accepted: {text}");
    assert!(!text.contains("BEGIN CERTIFICATE"), "{text}");
    let (tls12, tls13) = sslyze(port);
    assert_eq!(tls12, 0, "TLS 1.2 cipher suites accepted");
    assert!(tls13 >= 2, "TLS 1.3 cipher suites: {tls13}");

    // HTTPS answers, with HSTS, and plain HTTP on the same port gets no answer.
    let res = t.web.get(t.s.url("/healthz")).send().await.expect("https");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=63072000"
    );
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    // A WebSocket address handed out is wss://.
    let (status, body) = call(
        &t,
        "POST",
        "/api/v1/auth/login",
        None,
        json!({"email": OWNER_EMAIL, "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().expect("token").to_string();
    let path = format!(
        "/api/v1/assistants/{}/mcp-endpoint",
        t.s.tenant.assistant_id
    );
    let (status, body) = call(&t, "POST", &path, Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body["url"].as_str().unwrap().starts_with("wss://"),
        "{body}"
    );
}

async fn call(
    t: &Tls,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut req = t
        .web
        .request(method.parse().expect("method"), t.s.url(path))
        .json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_2_only_when_allowed() {
    let t = Tls::start("tls_min_version = \"1.2\"").await;
    let (ok, text) = s_client(t.port(), &["-tls1_2"]);
    assert!(ok && text.contains("TLSv1.2"), "{text}");
    let (tls12, tls13) = sslyze(t.port());
    assert!(tls12 >= 1 && tls13 >= 2, "{tls12} {tls13}");
}

/// A renewed certificate is served to new connections after SIGHUP; a broken pair put in
/// place is refused and the one in use stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate() {
    // A long check interval: only the signal can explain a change.
    let t = Tls::start("tls_reload_check_secs = 3600").await;
    let port = t.port();
    assert_eq!(subject(port), "subject=CN=localhost");

    // A broken key: the signal is logged, the certificate in use stays.
    let key = t.dir.path().join("tls/key.pem");
    let good_key = std::fs::read(&key).expect("key");
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    hup(&t);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(subject(port), "subject=CN=localhost");
    std::fs::write(&key, good_key).expect("write");

    let renewed = t.dir.path().join("renewed");
    self_signed(&renewed, &["renewed.test", "127.0.0.1"]);
    for f in ["cert.pem", "key.pem"] {
        std::fs::copy(renewed.join(f), t.dir.path().join("tls").join(f)).expect("copy");
    }
    hup(&t);
    let mut seen = String::new();
    for _ in 0..50 {
        seen = subject(port);
        if seen == "subject=CN=renewed.test" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, "subject=CN=renewed.test");
    assert!(
        t.s.logs()
            .iter()
            .any(|l| l.contains("TLS certificate not reloaded")),
        "the broken pair was reported"
    );
}

fn hup(t: &Tls) {
    let ok = Command::new("kill")
        .args(["-HUP", &t.s.pid().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok);
}

/// Without a signal: the files' change is noticed by the periodic check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_certificate_file_is_picked_up() {
    let t = Tls::start("tls_reload_check_secs = 1").await;
    let port = t.port();
    let renewed = t.dir.path().join("renewed");
    self_signed(&renewed, &["changed.test"]);
    // The key first, then the certificate: in between, the pair does not match and the
    // check keeps the old one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for f in ["key.pem", "cert.pem"] {
        std::fs::copy(renewed.join(f), t.dir.path().join("tls").join(f)).expect("copy");
    }
    let mut seen = String::new();
    for _ in 0..60 {
        seen = subject(port);
        if seen == "subject=CN=changed.test" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, "subject=CN=changed.test");
}

/// A publish with credentials no device has.
const WRONG_DEVICE: [&str; 10] = [
    "-u",
    "nobody",
    "-P",
    "bdt_wrong",
    "-i",
    "bastion-x",
    "-t",
    "t",
    "-m",
    "m",
];

/// The devices' MQTT endpoint over the same TLS: a real client gets MQTT's own refusal of
/// bad credentials through it; a plain connection gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mqtt_endpoint_speaks_tls() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let t = Tls::start(&format!("mqtt_bind = \"127.0.0.1:{port}\"")).await;
    let (ok, text) = s_client(port, &["-tls1_3"]);
    assert!(ok, "{text}");
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--cafile"])
        .arg(t.cert())
        .args(WRONG_DEVICE)
        .args(["--tls-version", "tlsv1.3"])
        .output()
        .expect("mosquitto_pub");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(said.to_lowercase().contains("not authori"), "{said}");
    let plain = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(WRONG_DEVICE)
        .output()
        .expect("mosquitto_pub");
    let said = String::from_utf8_lossy(&plain.stderr).to_lowercase();
    assert!(!plain.status.success());
    assert!(
        !said.contains("not authori"),
        "plain MQTT was spoken: {said}"
    );
}

/// A certificate authority and a server certificate it signed for localhost and
/// 127.0.0.1, made with the openssl command line: `ca.pem`, `cert.pem`, `key.pem`.
fn ca_signed(dir: &Path) {
    std::fs::create_dir_all(dir).expect("dir");
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "30",
                "-subj",
                "/CN=bastion test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"],
            &ec[..],
            &[
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "30",
        "-extfile",
        "leaf.ext",
    ]);
}

/// With a certificate from a CA the scanner trusts, bastion's defaults comply with Mozilla's
/// "modern" TLS configuration as sslyze checks it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_defaults_comply_with_mozillas_modern_configuration() {
    let t = Tls::start_with("", ca_signed).await;
    let out = Command::new(python())
        .args([
            "-m",
            "sslyze",
            "--mozilla_config",
            "modern",
            "--certinfo_ca_file",
        ])
        .arg(t.dir.path().join("tls/ca.pem"))
        .arg(format!("127.0.0.1:{}", t.port()))
        .output()
        .expect("sslyze runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("OK - Compliant"),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn self_signed_writes_a_private_key_only_its_owner_reads() {
    let dir = tempfile::tempdir().expect("dir");
    let out_dir = dir.path().join("data/tls");
    self_signed(&out_dir, &["bastion.lan", "192.0.2.7"]);
    let key = out_dir.join("key.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        // The folders it made (the default is inside the data directory) are its owner's.
        assert_eq!(mode(&out_dir), 0o700);
        assert_eq!(mode(out_dir.parent().unwrap()), 0o700);
    }
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(out_dir.join("cert.pem"))
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("DNS:bastion.lan") && text.contains("IP Address:192.0.2.7"),
        "{text}"
    );
    // Not again without --force.
    let d = out_dir.display().to_string();
    let again = run_cli(&["certs", "self-signed", "--out-dir", &d], &[], &[], None);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}
