//! A short run of every cargo-fuzz target (fuzz/fuzz_targets: access tokens, OAuth state,
//! return addresses, activation codes and MACs, device frames and OTA bodies, MCP messages,
//! MQTT connections, the settings file): each replays its committed seed corpus (fuzz/corpus) and mutates
//! from it for a few seconds; a crash, a failed assertion or a timeout fails the test and
//! leaves the input in fuzz/artifacts. Longer runs are recorded in docs/SECURITY.md.
//!
//! Needs cargo-fuzz (`cargo install cargo-fuzz`, which .ci/run does); the project's stable
//! toolchain builds the targets with RUSTC_BOOTSTRAP=1 and no sanitizer (safe Rust: the
//! coverage guidance is what matters).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Seconds of mutation per target on each test run.
const SECONDS: &str = "8";

fn targets(fuzz: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fuzz.join("fuzz_targets"))
        .expect("fuzz/fuzz_targets")
        .filter_map(|e| {
            let p = e.ok()?.path();
            let stem = p.file_stem()?.to_string_lossy().into_owned();
            (p.extension()? == "rs").then_some(stem)
        })
        .collect();
    names.sort();
    names
}

#[test]
fn every_fuzz_target_runs_clean_from_its_seed_corpus() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let has_cargo_fuzz = Command::new(&cargo)
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_cargo_fuzz,
        "cargo-fuzz is missing: cargo install --locked cargo-fuzz (.ci/run does)"
    );
    let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-target");
    let names = targets(&fuzz);
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        let seeds = fuzz.join("corpus").join(&name);
        assert!(
            std::fs::read_dir(&seeds).is_ok_and(|mut d| d.next().is_some()),
            "{name} has no committed seeds in {}",
            seeds.display()
        );
        // New inputs go to a scratch corpus; the committed one is only read.
        let scratch = tempfile::tempdir().expect("scratch corpus");
        let out = Command::new(&cargo)
            .current_dir(&fuzz)
            .env("RUSTC_BOOTSTRAP", "1")
            .args([
                "fuzz",
                "run",
                "--sanitizer",
                "none",
                "--dev",
                "--target-dir",
            ])
            .arg(&target_dir)
            .arg(&name)
            .arg(scratch.path())
            .arg(&seeds)
            .args([
                "--",
                &format!("-max_total_time={SECONDS}"),
                "-timeout=5",
                "-rss_limit_mb=1024",
                "-print_final_stats=1",
            ])
            .output()
            .expect("cargo fuzz runs");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "fuzz target {name} failed:\n{}",
            said.lines()
                .rev()
                .take(60)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
        let runs = said
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .map(|n| n.trim().to_string())
            .unwrap_or_default();
        eprintln!("{name}: {runs} runs in {SECONDS} s");
    }
}
