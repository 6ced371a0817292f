//! Real MCP servers for tests, from tests/support/mcp (installed by `npm ci` there, which
//! `.ci/run` does): `@modelcontextprotocol/server-everything` and `changing-server.mjs`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn support() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/mcp")
}

/// A node MCP server on a free port, killed when dropped.
pub struct Node {
    child: Child,
    pub port: u16,
}

impl Node {
    pub fn start(script: &Path, args: &[&str], env: &[(&str, &Path)]) -> Node {
        assert!(
            support().join("node_modules").is_dir(),
            "the MCP test servers are not installed: run `npm ci` in tests/support/mcp"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new("node");
        cmd.arg(script)
            .args(args)
            .current_dir(support())
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("node");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("istening") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the MCP server did not start");
        Node { child, port }
    }
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn everything() -> Node {
    Node::start(
        &support().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js"),
        &["streamableHttp"],
        &[],
    )
}
