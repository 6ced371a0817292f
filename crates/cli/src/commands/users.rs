//! `bastion users …`

use super::NewPassword;
use crate::config::{self, StoreArgs};
use bastion_auth::password;
use bastion_store::audit::{NewEvent, PLATFORM_CHAIN};
use clap::Subcommand;
use secrecy::ExposeSecret;
use serde_json::json;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create an account. It grants access to nothing until someone makes it a member.
    Add {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        /// Make the user a platform operator (may create workspaces).
        #[arg(long)]
        operator: bool,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run(cmd: UsersCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        UsersCommand::Add {
            store: args,
            email,
            password_stdin,
            operator,
        } => {
            let settings = config::load(args.config.as_deref(), args.overrides())?;
            let email = bastion_server::validate::email(&email)
                .map_err(|e| anyhow::anyhow!("--email: {e}"))?;
            let store = super::open_store(&settings).await?;
            let pw = NewPassword::obtain(password_stdin, &email)?;
            let hash = password::hash(pw.secret().clone()).await?;
            let user = store.users().create(&email, &hash, operator).await?;
            store
                .audit()
                .append(NewEvent {
                    chain: PLATFORM_CHAIN.into(),
                    actor: "cli".into(),
                    action: "user.create".into(),
                    target: format!("user:{}", user.id),
                    outcome: "success".into(),
                    ip: String::new(),
                    detail: json!({"operator": operator}),
                })
                .await?;
            println!("user       {} ({})", user.email, user.id);
            if let NewPassword::Generated(p) = &pw {
                println!("password   {}", p.expose_secret());
                println!("           (shown once: store it now)");
            }
            store.close().await;
        }
        UsersCommand::List { store: args } => {
            let settings = config::load(args.config.as_deref(), args.overrides())?;
            let store = super::open_store(&settings).await?;
            for u in store.users().list().await? {
                let flag = if u.is_operator { "  operator" } else { "" };
                println!("{}  {}{flag}", u.id, u.email);
            }
            store.close().await;
        }
    }
    Ok(ExitCode::SUCCESS)
}
