//! `bastion init`

use super::NewPassword;
use crate::config::{self, StoreArgs};
use anyhow::{bail, Context};
use bastion_auth::{password, signing_key};
use bastion_core::{Access, Capability};
use bastion_store::audit::{NewEvent, PLATFORM_CHAIN};
use clap::Args;
use secrecy::ExposeSecret;
use serde_json::json;
use std::process::ExitCode;

#[derive(Args)]
pub struct InitArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Email of the first user: owner of the first workspace and assistant, and platform operator.
    #[arg(long)]
    email: String,
    /// Read the password from the first line of standard input instead of generating one.
    #[arg(long)]
    password_stdin: bool,
    /// Name of the first workspace.
    #[arg(long, default_value = "Default workspace")]
    workspace: String,
    /// Slug of the first assistant (3–63 of a–z, 0–9, inner hyphens).
    #[arg(long, default_value = "assistant")]
    assistant_slug: String,
}

pub async fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    let settings = config::load(args.store.config.as_deref(), args.store.overrides())?;
    let email = bastion_server::validate::email(&args.email)
        .map_err(|e| anyhow::anyhow!("--email: {e}"))?;
    bastion_server::validate::slug(&args.assistant_slug)
        .map_err(|e| anyhow::anyhow!("--assistant-slug: {e}"))?;
    let store = super::open_store(&settings).await?;
    if store.users().count().await? > 0 {
        bail!("this store is already initialized; add users with `bastion users add`");
    }
    let pw = NewPassword::obtain(args.password_stdin, &email)?;
    signing_key::load_or_create(&settings.signing_key_path())?;
    if settings.master_key.is_none() {
        signing_key::load_master_key(None, &settings.master_key_path())?;
    }
    let hash = password::hash(pw.secret().clone()).await?;
    let user = store.users().create(&email, &hash, true).await?;
    let ws = store.workspaces().create(&args.workspace, user.id).await?;
    let scope = store
        .workspaces()
        .grant(user.id, ws.id)
        .await?
        .and_then(|g| g.authorize(Access::Workspace(Capability::SettingsManage)))
        .context("the new workspace has no owner grant")?;
    let assistant = store
        .assistants()
        .create(&scope, &args.assistant_slug, "Assistant", "")
        .await?;
    store
        .audit()
        .append(NewEvent {
            chain: PLATFORM_CHAIN.into(),
            actor: "cli".into(),
            action: "platform.init".into(),
            target: format!("user:{}", user.id),
            outcome: "success".into(),
            ip: String::new(),
            detail: json!({"workspace": ws.id.to_string(), "assistant": assistant.id.to_string()}),
        })
        .await?;
    println!("user       {} ({})", user.email, user.id);
    println!("workspace  {} ({})", ws.name, ws.id);
    println!("assistant  {} ({})", assistant.slug, assistant.id);
    if let NewPassword::Generated(p) = &pw {
        println!("password   {}", p.expose_secret());
        println!("           (shown once: store it now)");
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
