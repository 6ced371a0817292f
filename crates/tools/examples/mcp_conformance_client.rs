//! bastion's MCP client as the client under test of the official MCP conformance suite
//! (`@modelcontextprotocol/conformance`, pinned by tests/support/mcp/package-lock.json).
//!
//! The suite starts a test server for one scenario, runs `mcp_conformance_client <url>`
//! with `MCP_CONFORMANCE_SCENARIO=<scenario>` and judges the traffic it sees. This program
//! does what the scenario expects through [`bastion_tools::mcp`] exactly as bastion does:
//! the egress guard is on, and the only private host it allows is the test server's own
//! loopback host (it refuses any other URL). crates/tools/tests/conformance.rs runs it.
//!
//! It exits 0 when the scenario's steps worked, 1 when one failed (the reason on stderr),
//! and 2 when it was misused (no URL, a non-loopback URL, a scenario it does not perform).

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use bastion_tools::egress::{EgressPolicy, SystemResolver};
use bastion_tools::mcp::{connect, McpLimits, McpSession, McpTarget};
use serde_json::{json, Value};
use url::{Host, Url};

/// The scenarios this client performs. Anything else is refused with exit code 2, so that
/// a scenario nobody looked at cannot pass by accident.
const SCENARIOS: &[&str] = &["initialize", "tools_call", "sse-retry"];

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let (scenario, url) = match parse_args() {
        Ok(found) => found,
        Err(message) => {
            eprintln!("mcp_conformance_client: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&scenario, url).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mcp_conformance_client: scenario {scenario:?}: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `(scenario, url)`: the scenario from `MCP_CONFORMANCE_SCENARIO` (or `--scenario NAME`,
/// for running it by hand), the URL from the last argument.
fn parse_args() -> Result<(String, Url), String> {
    let usage = "usage: MCP_CONFORMANCE_SCENARIO=<scenario> mcp_conformance_client <url>";
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").ok();
    if let Some(i) = args.iter().position(|a| a == "--scenario") {
        if i + 1 >= args.len() {
            return Err(usage.to_owned());
        }
        scenario = Some(args.remove(i + 1));
        args.remove(i);
    }
    let scenario = scenario.filter(|s| !s.is_empty()).ok_or(usage)?;
    if !SCENARIOS.contains(&scenario.as_str()) {
        return Err(format!(
            "scenario {scenario:?} is not one this client performs ({})",
            SCENARIOS.join(", ")
        ));
    }
    let [url] = args.as_slice() else {
        return Err(usage.to_owned());
    };
    let url = Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    Ok((scenario, url))
}

/// The egress policy bastion would use for this server: nothing private is allowed but the
/// conformance server's own host, which must be loopback.
fn policy_for(url: &Url) -> Result<EgressPolicy, String> {
    let loopback = match url.host() {
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    let host = url.host_str().filter(|_| loopback).ok_or_else(|| {
        format!("refusing {url}: the conformance server must be on a loopback host")
    })?;
    Ok(EgressPolicy {
        allowed_private_hosts: vec![host.to_owned()],
    })
}

fn limits() -> McpLimits {
    // Well under the suite's own 30 s per scenario, so a hang is reported by this program
    // rather than by a kill.
    McpLimits {
        connect_timeout: Duration::from_secs(10),
        call_timeout: Duration::from_secs(5),
        ..McpLimits::default()
    }
}

async fn run(scenario: &str, url: Url) -> Result<(), String> {
    let policy = policy_for(&url)?;
    let target = McpTarget::Http { url, bearer: None };
    let session = connect(target, &policy, &SystemResolver, limits())
        .await
        .map_err(|e| format!("connect: {e}"))?;
    println!("connected");
    let outcome = steps(scenario, &session).await;
    // Closed whatever happened, as bastion does: an HTTP session is deleted on the server.
    session.close().await;
    println!("closed");
    outcome
}

/// What `scenario` expects after the handshake.
async fn steps(scenario: &str, session: &McpSession) -> Result<(), String> {
    let tools = session
        .list_tools()
        .await
        .map_err(|e| format!("tools/list: {e}"))?;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    println!("tools: {names:?}");
    match scenario {
        // The handshake and a tool list (the server offers none) are all there is.
        "initialize" => Ok(()),
        // add_numbers(a, b) must answer "The sum of 5 and 3 is 8".
        "tools_call" => {
            let text = call(session, &names, "add_numbers", json!({"a": 5, "b": 3})).await?;
            if text.contains('8') {
                Ok(())
            } else {
                Err(format!("add_numbers(5, 3) answered {text:?}, not 8"))
            }
        }
        // The server ends the call's event stream after a priming event (id, retry: 500)
        // and sends the answer on the GET stream the client must reconnect with.
        "sse-retry" => call(session, &names, "test_reconnection", json!({}))
            .await
            .map(|_| ()),
        other => Err(format!("no steps for scenario {other:?}")),
    }
}

/// Calls `name` (which the server must have listed) and returns its text.
async fn call(
    session: &McpSession,
    listed: &[&str],
    name: &str,
    arguments: Value,
) -> Result<String, String> {
    if !listed.contains(&name) {
        return Err(format!("the server does not list the tool {name:?}"));
    }
    let Value::Object(arguments) = arguments else {
        return Err("tool arguments must be an object".to_owned());
    };
    let output = session
        .call_tool(name, arguments, limits().call_timeout)
        .await
        .map_err(|e| format!("tools/call {name}: {e}"))?;
    println!("{name}: {:?} (is_error: {})", output.text, output.is_error);
    if output.is_error {
        return Err(format!("{name} reported an error: {}", output.text));
    }
    Ok(output.text)
}
