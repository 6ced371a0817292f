//! What may enter the build (deny.toml): permissive licenses only, crates.io only, no
//! wildcard versions, no OpenSSL; checked with cargo-deny (`cargo install cargo-deny`,
//! which .ci/run does). Advisories need the RustSec database from the network and are run
//! where it can be reached (docs/SECURITY.md).

use std::process::Command;

#[test]
fn licenses_bans_and_sources_pass_cargo_deny() {
    let root = env!("CARGO_MANIFEST_DIR");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let version = Command::new(&cargo).args(["deny", "--version"]).output();
    assert!(
        version.is_ok_and(|o| o.status.success()),
        "cargo-deny is missing: cargo install --locked cargo-deny (.ci/run does)"
    );
    let out = Command::new(&cargo)
        .current_dir(root)
        .args([
            "deny",
            "--offline",
            "--locked",
            "check",
            "licenses",
            "bans",
            "sources",
        ])
        .output()
        .expect("cargo deny runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
