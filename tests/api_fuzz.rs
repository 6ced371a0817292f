//! API fuzzing with schemathesis (PyPI, in the test venv) against `/openapi.json` of a
//! running server, signed in as the owner of a tenant whose assistant answers through the
//! fake provider: every operation is sent the document's examples, its coverage cases and
//! generated input, valid and not. No answer may be a 5xx, and every answer must be
//! documented: its status code, its content type and its body's schema.

mod common;

use common::chat::Chat;
use common::Backend;
use std::path::PathBuf;
use std::process::Command;

fn schemathesis() -> PathBuf {
    let st = PathBuf::from(common::python()).with_file_name("st");
    assert!(
        st.exists(),
        "schemathesis is missing: pip install -r tests/support/openai_sdk/requirements.txt (.ci/run does)"
    );
    st
}

/// Operations that end the fuzzer's own session or account, or are not HTTP at all.
const EXCLUDED: &[&str] = &[
    "--exclude-name",
    "POST /api/v1/auth/logout",
    "--exclude-name",
    "DELETE /api/v1/auth/sessions",
    "--exclude-name",
    "DELETE /api/v1/auth/sessions/{session_id}",
    "--exclude-name",
    "POST /api/v1/auth/password",
    "--exclude-name",
    "DELETE /api/v1/me",
    // WebSocket upgrades.
    "--exclude-path-regex",
    "/ws$",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    let st = schemathesis();
    let c = Chat::start(Backend::Sqlite, "You help.").await;
    let seed: u32 = rand::random();
    // More for a longer run: BASTION_FUZZ_EXAMPLES=500 cargo test --test api_fuzz.
    let examples = std::env::var("BASTION_FUZZ_EXAMPLES").unwrap_or_else(|_| "25".into());
    // schemathesis keeps its example database in the working directory: a scratch one.
    let scratch = tempfile::tempdir().expect("scratch directory");
    let out = Command::new(&st)
        .current_dir(scratch.path())
        .arg("run")
        .arg(c.s.url("/openapi.json"))
        .args(["-H", &format!("Authorization: Bearer {}", c.owner)])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            &examples,
            "--workers",
            "2",
            "--seed",
            &seed.to_string(),
            "--no-color",
        ])
        .args(EXCLUDED)
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("schemathesis runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let errors: Vec<String> =
        c.s.logs()
            .into_iter()
            .filter(|l| l.contains("ERROR"))
            .collect();
    assert!(
        out.status.success(),
        "schemathesis (seed {seed}) failed:\n{said}\nserver errors:\n{}",
        errors.join("\n")
    );
    assert!(said.contains("Tested:"), "{said}");
}
