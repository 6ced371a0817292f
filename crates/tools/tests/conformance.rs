//! The official MCP client conformance suite (`@modelcontextprotocol/conformance`, pinned by
//! tests/support/mcp/package-lock.json) against bastion's MCP client.
//!
//! For each scenario the suite starts a test server, runs the client under test with the
//! server's URL as its last argument and `MCP_CONFORMANCE_SCENARIO` set, and judges the
//! traffic. The client under test is examples/mcp_conformance_client.rs, which goes through
//! `bastion_tools::mcp` as bastion does (egress guard on, only the loopback test server
//! allowed). Every scenario the pinned suite lists is accounted for below: it must pass, or
//! it is a known failure whose cause is outside this crate's code (it must still fail, in
//! the way described, so a fix is noticed), or it does not apply to bastion (with why). A
//! scenario in none of the three lists fails the test, so new scenarios are looked at.
//!
//! Needs `node` and `npm ci` run in tests/support/mcp; without them the test fails and
//! says so, it is never skipped.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Scenarios bastion's client must pass.
const PASS: &[&str] = &[
    // The handshake at protocol 2025-11-25 (rmcp's newest with an initialize handshake),
    // MCP-Protocol-Version on every later request, and a tool list. The suite's test
    // server answers the notifications/initialized POST with 200 and a JSON body rather
    // than 202 Accepted (modelcontextprotocol/conformance#274); rmcp accepts any 2xx for a
    // notification-only POST, so that quirk no longer breaks the handshake.
    "initialize",
    // initialize, tools/list, tools/call add_numbers(5, 3) over Streamable HTTP.
    "tools_call",
    // SEP-1699 SSE polling: the server ends the tools/call event stream after a priming
    // event (id, retry: 500 ms); the client waits `retry` and reopens the stream with
    // Last-Event-ID, where the answer comes.
    "sse-retry",
];

/// Scenarios that apply to a tools client over Streamable HTTP but fail for a reason
/// outside crates/tools (the suite's own test server, or what rmcp implements). Each is
/// run and must fail with all of its `evidence` (text found in the client's stderr or in
/// the failed checks); if one starts passing, the test fails until it moves to PASS.
/// None at the moment: `initialize` and `sse-retry` were here under rmcp 0.15 (protocol
/// 2025-03-26 without the MCP-Protocol-Version header, a non-202 answer to the initialized
/// notification rejected, no reconnect after a dropped event stream).
struct KnownFailure {
    scenario: &'static str,
    why: &'static str,
    evidence: &'static [&'static str],
}

const KNOWN_FAILURES: &[KnownFailure] = &[];

const NO_OAUTH: &str = "OAuth authorization flow: bastion's MCP client has no OAuth client \
                        (it sends at most a fixed bearer token from the vault)";

/// Scenarios that do not apply to bastion's client, and why.
const NOT_APPLICABLE: &[(&str, &str)] = &[
    (
        "elicitation-sep1034-client-defaults",
        "elicitation: bastion's client refuses server-initiated elicitation by design (a \
         tool server must not talk to the user behind the assistant's back) and does not \
         declare the capability",
    ),
    ("auth/metadata-default", NO_OAUTH),
    ("auth/metadata-var1", NO_OAUTH),
    ("auth/metadata-var2", NO_OAUTH),
    ("auth/metadata-var3", NO_OAUTH),
    ("auth/basic-cimd", NO_OAUTH),
    ("auth/scope-from-www-authenticate", NO_OAUTH),
    ("auth/scope-from-scopes-supported", NO_OAUTH),
    ("auth/scope-omitted-when-undefined", NO_OAUTH),
    ("auth/scope-step-up", NO_OAUTH),
    ("auth/scope-retry-limit", NO_OAUTH),
    ("auth/token-endpoint-auth-basic", NO_OAUTH),
    ("auth/token-endpoint-auth-post", NO_OAUTH),
    ("auth/token-endpoint-auth-none", NO_OAUTH),
    ("auth/resource-mismatch", NO_OAUTH),
    ("auth/pre-registration", NO_OAUTH),
    ("auth/2025-03-26-oauth-metadata-backcompat", NO_OAUTH),
    ("auth/2025-03-26-oauth-endpoint-fallback", NO_OAUTH),
    ("auth/client-credentials-jwt", NO_OAUTH),
    ("auth/client-credentials-basic", NO_OAUTH),
];

const CONFORMANCE_PACKAGE: &str = "@modelcontextprotocol/conformance";

/// The suite's own limit for one client run, in milliseconds; the client's own limits
/// (examples/mcp_conformance_client.rs) are well under it.
const CLIENT_TIMEOUT_MS: u64 = 30_000;

/// A backstop for one `node` run of the suite.
const NODE_TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn official_mcp_client_conformance_suite() {
    let suite = Suite::find();
    let client = client_binary();
    let listed = suite.client_scenarios();
    accounted_for(&listed);

    let mut problems = Vec::new();
    let mut report = Vec::new();
    for scenario in &listed {
        let scenario = scenario.as_str();
        if let Some((_, why)) = NOT_APPLICABLE.iter().find(|(s, _)| *s == scenario) {
            report.push(format!("{scenario}: not applicable: {why}"));
            continue;
        }
        let run = suite.run(&client, scenario);
        if PASS.contains(&scenario) {
            if run.passed() {
                report.push(format!("{scenario}: passed ({})", run.command));
            } else {
                problems.push(format!("{scenario} must pass but did not:\n{}", run.show()));
            }
        } else if let Some(known) = KNOWN_FAILURES.iter().find(|k| k.scenario == scenario) {
            let missing: Vec<&str> = known
                .evidence
                .iter()
                .copied()
                .filter(|e| !run.mentions(e))
                .collect();
            if run.passed() {
                problems.push(format!(
                    "{scenario} is listed as a known failure but now passes: move it to PASS\n{}",
                    run.show()
                ));
            } else if !missing.is_empty() {
                problems.push(format!(
                    "{scenario} failed, but not as its known failure says (missing: {missing:?}):\n{}",
                    run.show()
                ));
            } else {
                report.push(format!("{scenario}: known failure: {}", known.why));
            }
        }
    }
    println!(
        "{CONFORMANCE_PACKAGE} {} client scenarios:\n  {}",
        suite.version,
        report.join("\n  ")
    );
    assert!(problems.is_empty(), "\n{}", problems.join("\n\n"));
}

/// Every listed scenario is in exactly one of the three lists, and every list entry is a
/// scenario the pinned suite has (so the lists follow a version change).
fn accounted_for(listed: &[String]) {
    let ours: Vec<&str> = PASS
        .iter()
        .copied()
        .chain(KNOWN_FAILURES.iter().map(|k| k.scenario))
        .chain(NOT_APPLICABLE.iter().map(|(s, _)| *s))
        .collect();
    let unknown: Vec<&String> = listed
        .iter()
        .filter(|s| !ours.contains(&s.as_str()))
        .collect();
    let gone: Vec<&str> = ours
        .iter()
        .copied()
        .filter(|s| !listed.iter().any(|l| l == s))
        .collect();
    let mut twice: Vec<&str> = ours
        .iter()
        .copied()
        .filter(|s| ours.iter().filter(|o| *o == s).count() > 1)
        .collect();
    twice.sort_unstable();
    twice.dedup();
    assert!(
        unknown.is_empty() && gone.is_empty() && twice.is_empty(),
        "the conformance suite's client scenarios and this test's lists differ: \
         not in any list (decide: PASS, KNOWN_FAILURES or NOT_APPLICABLE): {unknown:?}; \
         listed here but not by the suite: {gone:?}; in more than one list: {twice:?}"
    );
}

// ---- the suite ---------------------------------------------------------------------------

/// tests/support/mcp, found by walking up from this crate.
fn support_dir() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let candidate = dir.join("tests/support/mcp");
        if candidate.join("package.json").is_file() {
            return candidate;
        }
        assert!(
            dir.pop(),
            "tests/support/mcp not found above {}",
            env!("CARGO_MANIFEST_DIR")
        );
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The installed conformance package, which must be the version package.json pins.
struct Suite {
    cli: PathBuf,
    version: String,
}

impl Suite {
    fn find() -> Suite {
        let dir = support_dir();
        let package = dir.join("node_modules").join(CONFORMANCE_PACKAGE);
        let cli = package.join("dist/index.js");
        assert!(
            cli.is_file(),
            "the MCP conformance suite is not installed: run `npm ci` in tests/support/mcp ({})",
            dir.display()
        );
        let pinned = read_json(&dir.join("package.json"))["devDependencies"][CONFORMANCE_PACKAGE]
            .as_str()
            .unwrap_or_else(|| {
                panic!("tests/support/mcp/package.json does not pin {CONFORMANCE_PACKAGE}")
            })
            .to_owned();
        let version = read_json(&package.join("package.json"))["version"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(
            version,
            pinned,
            "{CONFORMANCE_PACKAGE} {version} is installed but {pinned} is pinned: run `npm ci` \
             in {}",
            dir.display()
        );
        Suite { cli, version }
    }

    /// `node <cli> <args>` in `cwd`: its exit code (None when killed), stdout and stderr.
    fn node(&self, args: &[&str], cwd: &Path) -> (Option<i32>, String, String) {
        let mut child = Command::new("node")
            .arg(&self.cli)
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `node` for the MCP conformance suite: {e}"));
        let out = drain(child.stdout.take().expect("stdout"));
        let err = drain(child.stderr.take().expect("stderr"));
        let deadline = Instant::now() + NODE_TIMEOUT;
        let status = loop {
            match child.try_wait().expect("wait for node") {
                Some(status) => break status.code(),
                None if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let out = out.join().expect("stdout reader");
        let err = err.join().expect("stderr reader");
        (status, out, err)
    }

    /// `conformance list --client`.
    fn client_scenarios(&self) -> Vec<String> {
        let (status, out, err) = self.node(&["list", "--client"], &support_dir());
        assert_eq!(
            status,
            Some(0),
            "conformance list --client failed:\n{out}\n{err}"
        );
        let scenarios: Vec<String> = out
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("- "))
            .map(|s| s.trim().to_owned())
            .collect();
        assert!(
            !scenarios.is_empty(),
            "conformance list --client listed nothing:\n{out}"
        );
        scenarios
    }

    /// `conformance client --command <client> --scenario <scenario> -o <tmp>`.
    fn run(&self, client: &Path, scenario: &str) -> Run {
        let results = tempfile::tempdir().expect("a temporary directory");
        let command = shell_word(client);
        let timeout = CLIENT_TIMEOUT_MS.to_string();
        let output_dir = results.path().to_string_lossy().into_owned();
        let args = [
            "client",
            "--command",
            command.as_str(),
            "--scenario",
            scenario,
            "--timeout",
            timeout.as_str(),
            "-o",
            output_dir.as_str(),
        ];
        let (status, out, err) = self.node(&args, results.path());
        let dir = find_file(results.path(), "checks.json").map(|p| p.with_file_name(""));
        let read = |name: &str| {
            dir.as_ref()
                .and_then(|d| std::fs::read_to_string(d.join(name)).ok())
                .unwrap_or_default()
        };
        let checks = match dir.as_ref() {
            Some(d) => match read_json(&d.join("checks.json")) {
                Value::Array(checks) => checks,
                other => panic!("checks.json is not an array: {other}"),
            },
            None => Vec::new(),
        };
        Run {
            command: format!(
                "node {} {}",
                self.cli.display(),
                args.map(|a| if a.contains(' ') {
                    format!("{a:?}")
                } else {
                    a.to_owned()
                })
                .join(" ")
            ),
            status,
            output: format!("{out}{err}"),
            checks,
            client_stdout: read("stdout.txt"),
            client_stderr: read("stderr.txt"),
        }
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}

/// The suite runs `--command` through `sh -c` (with the URL appended), so the path is
/// quoted for sh.
fn shell_word(path: &Path) -> String {
    let text = path.to_str().expect("the client's path is UTF-8");
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// One scenario's run.
struct Run {
    command: String,
    status: Option<i32>,
    output: String,
    checks: Vec<Value>,
    client_stdout: String,
    client_stderr: String,
}

impl Run {
    fn statuses(&self, status: &str) -> impl Iterator<Item = &Value> {
        let status = status.to_owned();
        self.checks
            .iter()
            .filter(move |c| c["status"] == status.as_str())
    }

    /// The suite's verdict (exit code 0: no failed or warning check, the client exited 0
    /// in time), and at least one check that succeeded.
    fn passed(&self) -> bool {
        self.status == Some(0)
            && self.statuses("FAILURE").next().is_none()
            && self.statuses("WARNING").next().is_none()
            && self.statuses("SUCCESS").next().is_some()
    }

    /// Whether `text` is in the client's stderr or a failed or warning check.
    fn mentions(&self, text: &str) -> bool {
        self.client_stderr.contains(text)
            || self
                .statuses("FAILURE")
                .chain(self.statuses("WARNING"))
                .any(|c| c.to_string().contains(text))
    }

    fn show(&self) -> String {
        let checks: Vec<String> = self
            .checks
            .iter()
            .filter(|c| c["status"] != "INFO")
            .map(|c| {
                format!(
                    "  {} {}: {}",
                    c["status"].as_str().unwrap_or("?"),
                    c["id"].as_str().unwrap_or("?"),
                    c["errorMessage"]
                        .as_str()
                        .or(c["description"].as_str())
                        .unwrap_or("")
                )
            })
            .collect();
        format!(
            "command: {}\nexit code: {:?}\nchecks:\n{}\nclient stdout:\n{}\nclient stderr:\n{}\n\
             suite output:\n{}",
            self.command,
            self.status,
            checks.join("\n"),
            self.client_stdout.trim_end(),
            self.client_stderr.trim_end(),
            self.output.trim_end()
        )
    }
}

// ---- the client under test ---------------------------------------------------------------

/// examples/mcp_conformance_client, built by cargo into the target directory and profile
/// this test was built with. An integration test is given `CARGO_BIN_EXE_*` for the
/// package's binaries only, not its examples, and `cargo test --test conformance` does not
/// build examples, so this asks cargo (which also decides whether it is up to date).
fn client_binary() -> PathBuf {
    const EXAMPLE: &str = "mcp_conformance_client";
    // <target-dir>[/<triple>]/<profile>/deps/conformance-<hash>
    let exe = std::env::current_exe().expect("this test's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from <target>/<profile>/deps");
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is <target-dir>/tmp");
    // current_exe is canonical; so must this be, to compare them.
    let target_dir = std::fs::canonicalize(target_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", target_dir.display()));
    let target_dir = target_dir.as_path();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut command = Command::new(cargo);
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--locked", "-p", env!("CARGO_PKG_NAME")])
        .args([
            "--example",
            EXAMPLE,
            "--message-format=json-render-diagnostics",
        ])
        .arg("--target-dir")
        .arg(target_dir);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(other) => {
            command.args(["--profile", other]);
        }
        None => panic!("no profile directory in {}", exe.display()),
    }
    // Built with --target <triple>, the profile directory is one level further down.
    let above = profile_dir.parent().expect("a target directory");
    if above != target_dir {
        assert_eq!(
            above.parent(),
            Some(target_dir),
            "{} is not in the target directory {}",
            exe.display(),
            target_dir.display()
        );
        command
            .arg("--target")
            .arg(above.file_name().expect("a target triple"));
    }
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the {EXAMPLE} example: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "building the {EXAMPLE} example failed ({command:?}):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == EXAMPLE)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo built no {EXAMPLE} executable ({command:?}):\n{stdout}"))
}
