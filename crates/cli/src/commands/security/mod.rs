//! `bastion security audit`: what makes this deployment weaker than it should be, from its
//! settings and key files, its store (every tenant's setup) and, when it answers, the
//! running instance. Each finding has a severity, where it is and how to fix it; any
//! critical finding makes the exit code 1.

mod config_checks;
mod findings;
mod live_checks;
mod store_checks;

use crate::config::{self, StoreArgs};
use clap::{Args, Subcommand};
use findings::{Finding, Severity};
use serde_json::json;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum SecurityCommand {
    /// Inspect the settings, the store and the running instance for unsafe choices.
    #[command(
        long_about = "Inspect this deployment for unsafe choices and print each finding with \
its severity (critical, high, medium, low), where it is and how to fix it.\n\n\
Checked: the settings and key files (a public address without TLS, TLS below 1.3, weak or \
default keys, key files others can read, metrics without a token behind a proxy, Redis and \
PostgreSQL without TLS on other hosts); the store, across every tenant (owners and admins \
without MFA, API keys without expiry or spend cap, provider keys without a cap, tools and MCP \
servers allowed to private addresses, external tools without approval, digits-only activation \
codes, automatic device pairing on a public deployment, a broken audit chain); and the running \
instance when it answers (HSTS, TLS 1.2, metrics without a token).\n\n\
Exit code 1 when any finding is critical, 0 otherwise.\n\n\
Examples:\n  bastion security audit\n  bastion security audit --config /etc/bastion.toml --json | jq '.findings[] | select(.severity == \"high\")'"
    )]
    Audit(AuditArgs),
}

#[derive(Args)]
pub struct AuditArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Print the findings as one JSON document.
    #[arg(long)]
    json: bool,
    /// Where the running instance answers [default: from bind, and TLS settings].
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Do not contact the running instance.
    #[arg(long)]
    offline: bool,
}

pub async fn run(cmd: SecurityCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SecurityCommand::Audit(args) => audit(args).await,
    }
}

async fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let settings = config::load(args.store.config.as_deref(), args.store.overrides())?;
    eprintln!("checking the settings and key files…");
    let mut findings = config_checks::check(&settings);

    // A fresh machine has no store yet: nothing is created to audit it.
    let sqlite_missing =
        settings.database_url.is_none() && !settings.data_dir.join("bastion.db").exists();
    let store_checked = if sqlite_missing {
        eprintln!(
            "no store at {}: tenant checks skipped",
            settings.data_dir.display()
        );
        false
    } else {
        eprintln!("checking the store…");
        match super::open_store(&settings).await {
            Ok(store) => {
                let found = store_checks::check(&store, &settings).await;
                store.close().await;
                findings.extend(found?);
                true
            }
            // The settings are audited all the same (a database on another host, say).
            Err(e) => {
                eprintln!("the store cannot be opened ({e:#}): tenant checks skipped");
                false
            }
        }
    };

    let url = args
        .url
        .clone()
        .unwrap_or_else(|| live_checks::default_url(&settings));
    let instance = if args.offline {
        None
    } else {
        eprintln!("checking the running instance at {url}…");
        let live = live_checks::check(url.trim_end_matches('/'), &settings).await;
        if !live.reachable {
            eprintln!("{url} did not answer: live checks skipped");
        }
        findings.extend(live.findings);
        Some(live.reachable)
    };

    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(b.id)));
    let critical = findings
        .iter()
        .filter(|f| f.severity == Severity::Critical)
        .count();
    if args.json {
        let doc = json!({
            "findings": findings,
            "critical": critical,
            "checked": {
                "settings": true,
                "store": store_checked,
                "instance": instance.map(|reachable| json!({"url": url, "reachable": reachable})),
            },
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_text(&findings);
    }
    Ok(if critical > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_text(findings: &[Finding]) {
    if findings.is_empty() {
        println!("no findings");
        return;
    }
    for f in findings {
        println!("{:<8} {}: {}", f.severity.label(), f.id, f.title);
        println!("         {}", f.detail);
        println!("         fix: {}", f.fix);
    }
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    println!(
        "\n{} findings: {} critical, {} high, {} medium, {} low",
        findings.len(),
        count(Severity::Critical),
        count(Severity::High),
        count(Severity::Medium),
        count(Severity::Low)
    );
}
