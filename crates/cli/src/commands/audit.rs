//! `bastion audit …`

use crate::config::{self, StoreArgs};
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk every hash chain of the audit log; name the first broken link of each.
    /// Exit code 0 when every chain verifies, 1 otherwise.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify { store: args } => {
            let settings = config::load(args.config.as_deref(), args.overrides())?;
            let store = super::open_store(&settings).await?;
            eprintln!("verifying the audit log…");
            let report = store.audit().verify().await?;
            store.close().await;
            if report.broken.is_empty() {
                println!(
                    "ok: {} events in {} chains verify",
                    report.events, report.chains
                );
                return Ok(ExitCode::SUCCESS);
            }
            for b in &report.broken {
                println!(
                    "BROKEN: chain {} at seq {} (event {}): {}",
                    b.chain, b.seq, b.id, b.reason
                );
            }
            println!(
                "{} of {} chains are broken ({} events checked)",
                report.broken.len(),
                report.chains,
                report.events
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
