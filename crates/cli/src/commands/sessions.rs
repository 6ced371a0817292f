//! `bastion sessions …`: an operator's view of a user's sign-ins, and revocation (a stolen
//! laptop, a departing employee). Revoking ends the refresh token at once and the access
//! tokens within the servers' cache TTL.

use crate::config::{self, StoreArgs};
use bastion_core::SessionId;
use bastion_store::audit::{NewEvent, PLATFORM_CHAIN};
use bastion_store::sessions::reason;
use bastion_store::Store;
use clap::Subcommand;
use serde_json::json;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum SessionsCommand {
    /// List a user's live sessions: id, method, sign-in time, last refresh, IP, user agent.
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        email: String,
    },
    /// End one session of a user (`--id`), or all of them (`--all`).
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        email: String,
        /// The session to end (from `bastion sessions list`).
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        id: Option<String>,
        /// End every session of the user: sign out everywhere.
        #[arg(long)]
        all: bool,
    },
}

fn when(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

async fn user_of(store: &Store, email: &str) -> anyhow::Result<bastion_store::users::User> {
    store
        .users()
        .by_email(email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user with email {email}"))
}

pub async fn run(cmd: SessionsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SessionsCommand::List { store: args, email } => {
            let settings = config::load(args.config.as_deref(), args.overrides())?;
            let store = super::open_store(&settings).await?;
            let user = user_of(&store, &email).await?;
            let list = store.sessions().list_live(user.id).await?;
            if list.is_empty() {
                println!("{email} has no live sessions");
            }
            for s in list {
                println!(
                    "{}  {:<14} signed in {}  last refresh {}  {}  {}",
                    s.id,
                    s.method,
                    when(s.created_at),
                    when(s.last_used_at),
                    if s.ip.is_empty() { "-" } else { &s.ip },
                    s.user_agent
                );
            }
            store.close().await;
        }
        SessionsCommand::Revoke {
            store: args,
            email,
            id,
            all,
        } => {
            let settings = config::load(args.config.as_deref(), args.overrides())?;
            let store = super::open_store(&settings).await?;
            let user = user_of(&store, &email).await?;
            let (target, ended) = if all {
                let n = store
                    .sessions()
                    .revoke_all(user.id, None, reason::OPERATOR)
                    .await?;
                ("all".to_string(), n)
            } else {
                let raw = id.unwrap_or_default();
                let sid: SessionId = raw
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--id: {raw:?} is not a session id"))?;
                store
                    .sessions()
                    .revoke(user.id, sid, reason::OPERATOR)
                    .await
                    .map_err(|_| anyhow::anyhow!("{email} has no live session {sid}"))?;
                (sid.to_string(), 1)
            };
            store
                .audit()
                .append(NewEvent {
                    chain: PLATFORM_CHAIN.into(),
                    actor: "cli".into(),
                    action: "auth.session.revoke".into(),
                    target: format!("user:{}", user.id),
                    outcome: "success".into(),
                    ip: String::new(),
                    detail: json!({"session": target, "ended": ended}),
                })
                .await?;
            println!("ended {ended} session(s) of {email}");
            store.close().await;
        }
    }
    Ok(ExitCode::SUCCESS)
}
