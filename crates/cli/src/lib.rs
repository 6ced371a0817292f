//! The `bastion` command line: `serve`, `init`, `users`, `sessions`, `audit`, `vault`,
//! `routes`, `certs`, `security`. Each command that touches the store takes `--config` and
//! `--data-dir`; settings come from the TOML file, then `BASTION_*` environment variables,
//! then flags, each overriding the one before.

mod commands;
mod config;
mod otlp;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "bastion",
    version,
    about = "A secure, multi-tenant runtime for AI assistants",
    long_about = "bastion serves assistants to many tenants from one binary: the HTTP API, and (as \
they land) the Control UI, device channels and the OpenAI-compatible endpoint.\n\n\
Quick start:\n  bastion init --email you@example.com   # first user, workspace and assistant\n  \
bastion serve                           # http://127.0.0.1:8080\n\n\
Settings come from --config FILE (TOML), then BASTION_* environment variables (e.g. \
BASTION_DATABASE_URL), then flags; each overrides the one before."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded SQLite in --data-dir unless database_url is set).
    Serve(commands::serve::ServeArgs),
    /// Set up an empty store: the first user (a platform operator), a workspace and an assistant.
    Init(commands::init::InitArgs),
    /// Manage user accounts (for platform operators).
    #[command(subcommand)]
    Users(commands::users::UsersCommand),
    /// List and end users' sign-in sessions.
    #[command(subcommand)]
    Sessions(commands::sessions::SessionsCommand),
    /// Inspect the audit log.
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// The vault of sealed secrets: rotate the master key, check every secret opens.
    #[command(subcommand)]
    Vault(commands::vault::VaultCommand),
    /// Print the route table: each route's method, path and access rule (needs no store).
    #[command(
        long_about = "Print the route table: one line per route with its method, path and the \
access rule the request flow checks before the handler runs (public, authenticated, operator, \
assistant:CAPABILITY, workspace:CAPABILITY, …).\n\n\
The table is the one the server registers its routes from. It is built on a temporary store \
that is removed afterwards: no settings are read and no data directory or database is \
touched.\n\n\
Examples:\n  bastion routes\n  bastion routes --json | jq '.[] | select(.access == \"public\")'"
    )]
    Routes(commands::routes::RoutesArgs),
    /// Audit this deployment's security: settings, key files, every tenant's setup, the
    /// running instance.
    #[command(subcommand)]
    Security(commands::security::SecurityCommand),
    /// TLS certificates: a self-signed pair for trying bastion's own TLS locally.
    #[command(subcommand)]
    Certs(commands::certs::CertsCommand),
}

/// Runs the command line and turns any error into a message and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => commands::serve::run(args).await,
            Command::Init(args) => commands::init::run(args).await,
            Command::Users(cmd) => commands::users::run(cmd).await,
            Command::Sessions(cmd) => commands::sessions::run(cmd).await,
            Command::Audit(cmd) => commands::audit::run(cmd).await,
            Command::Vault(cmd) => commands::vault::run(cmd).await,
            Command::Routes(args) => commands::routes::run(args).await,
            Command::Certs(cmd) => commands::certs::run(cmd).await,
            Command::Security(cmd) => commands::security::run(cmd).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
