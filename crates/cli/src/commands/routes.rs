//! `bastion routes`: the route table, each route with the access rule the request flow
//! enforces on it. Reviewers read it to see what is public and what each route requires.
//!
//! The table comes from the same registration that builds the router, so it cannot drift
//! from what is served. Building it needs an application state, and a state needs a store:
//! this command opens a throwaway SQLite store with throwaway keys in a temporary directory,
//! removed when it ends. It reads no settings and never touches the configured data
//! directory or database.

use anyhow::Context;
use bastion_auth::signing_key;
use bastion_server::routes::{route_table, RouteSpec};
use bastion_server::{AppState, Settings};
use bastion_store::Store;
use clap::Args;
use serde::Serialize;
use std::io::Write;
use std::process::ExitCode;

#[derive(Args)]
pub struct RoutesArgs {
    /// Print a JSON array of {"method", "path", "access"} instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: RoutesArgs) -> anyhow::Result<ExitCode> {
    let table = load_table().await?;
    let text = if args.json {
        render_json(&table)?
    } else {
        render_text(&table)
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // `bastion routes | head` closes the pipe early; that is not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("cannot write the route table"),
    }
}

/// The route table of a state built on a temporary store, which is closed and removed.
async fn load_table() -> anyhow::Result<Vec<RouteSpec>> {
    let scratch = tempfile::Builder::new()
        .prefix("bastion-routes-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let store = Store::open(&Store::sqlite_url(scratch.path()))
        .await
        .context("cannot open a temporary store")?;
    let keys = signing_key::SigningKeys::load(&scratch.path().join("jwt-signing.key"), &[])?;
    let master = signing_key::load_master_key(None, &scratch.path().join("master.key"))?;
    let state = AppState::new(
        store.clone(),
        Settings::default(),
        &keys,
        &master,
        &[],
        None,
        bastion_server::metrics_handle(),
    )?;
    let table = route_table(state);
    store.close().await;
    scratch
        .close()
        .context("cannot remove the temporary directory")?;
    Ok(table)
}

fn render_text(table: &[RouteSpec]) -> String {
    const GAP: usize = 2;
    let method_width = table
        .iter()
        .map(|r| r.method.as_str().len())
        .chain(["METHOD".len()])
        .max()
        .unwrap_or_default()
        + GAP;
    let path_width = table
        .iter()
        .map(|r| r.path.len())
        .chain(["PATH".len()])
        .max()
        .unwrap_or_default()
        + GAP;
    let mut text = format!("{:method_width$}{:path_width$}ACCESS\n", "METHOD", "PATH");
    for r in table {
        text.push_str(&format!(
            "{:method_width$}{:path_width$}{}\n",
            r.method.as_str(),
            r.path,
            r.access
        ));
    }
    text
}

/// One entry of `--json`, its keys in table order.
#[derive(Serialize)]
struct Row<'a> {
    method: &'a str,
    path: &'a str,
    access: String,
}

fn render_json(table: &[RouteSpec]) -> anyhow::Result<String> {
    let rows: Vec<Row<'_>> = table
        .iter()
        .map(|r| Row {
            method: r.method.as_str(),
            path: r.path,
            access: r.access.to_string(),
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&rows)?;
    text.push('\n');
    Ok(text)
}
