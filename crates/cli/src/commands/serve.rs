//! `bastion serve`

use crate::config::{self, Overrides, StoreArgs};
use crate::otlp;
use anyhow::Context;
use bastion_auth::signing_key;
use bastion_server::settings::LogFormat;
use clap::Args;
use std::process::ExitCode;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on [default: 127.0.0.1:8080]. Anything but loopback needs TLS:
    /// bastion's own (tls_cert_file, tls_key_file) or a proxy declared in trusted_proxies.
    #[arg(long, value_name = "HOST:PORT")]
    bind: Option<String>,
    /// Assistants answer at {slug}.DOMAIN.
    #[arg(long, value_name = "DOMAIN")]
    base_domain: Option<String>,
    /// Who may create an account: closed, invite (default) or open.
    #[arg(long, value_name = "MODE")]
    signup: Option<String>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        bind: args.bind,
        base_domain: args.base_domain,
        signup: args.signup,
        ..args.store.overrides()
    };
    let settings = config::load(args.store.config.as_deref(), overrides)?;
    settings.check_bind().context("refusing to start")?;
    // Held until the server stops, then flushed: the spans still queued, the log lines.
    let telemetry = init_logging(&settings)?;
    let result = serve(settings).await;
    telemetry.shutdown().await;
    result
}

async fn serve(settings: bastion_server::Settings) -> anyhow::Result<ExitCode> {
    let store = super::open_store(&settings).await?;
    let keys = signing_key::SigningKeys::load(
        &settings.signing_key_path(),
        &settings.retired_signing_key_files,
    )?;
    let inline_master = settings
        .master_key
        .as_ref()
        .map(secrecy::ExposeSecret::expose_secret);
    let master_path = settings.master_key_path();
    // A first start creates the master key; a later one without it must not, or every
    // secret sealed under the lost key would silently become unreadable.
    if inline_master.is_none() && !master_path.exists() {
        let sealed = store.sealed_secret_count().await?;
        if sealed > 0 {
            anyhow::bail!(
                "refusing to start: the master key {} is missing, but the store holds {sealed}                  secrets sealed under one; restore the key file (or set BASTION_MASTER_KEY)",
                master_path.display()
            );
        }
    }
    let master = signing_key::load_master_key(inline_master, &master_path)?;
    let previous = settings
        .previous_master_key_files
        .iter()
        .map(|p| signing_key::load_existing_master_key(p))
        .collect::<Result<Vec<_>, _>>()?;
    let previous: Vec<&[u8]> = previous.iter().map(|k| k.as_slice()).collect();
    let listener = tokio::net::TcpListener::bind(settings.bind)
        .await
        .with_context(|| format!("cannot listen on {}", settings.bind))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = ?store.backend(), signup = ?settings.signup, "bastion listening");
    // Printed for people and scripts (tests read it to learn the port of --bind 127.0.0.1:0).
    let scheme = if settings.serves_tls() {
        "https"
    } else {
        "http"
    };
    println!("bastion listening on {scheme}://{addr}");
    bastion_server::serve(
        listener,
        store,
        settings,
        &keys,
        &master,
        &previous,
        shutdown_signal(),
    )
    .await?;
    tracing::info!("bastion stopped");
    Ok(ExitCode::SUCCESS)
}

/// What [`init_logging`] set up, to be flushed when the server stops.
struct Telemetry {
    log_flush: tracing_appender::non_blocking::WorkerGuard,
    otlp: Option<otlp::Otlp>,
}

impl Telemetry {
    /// Sends the spans still queued (while logging still works, to report a failure), then
    /// the log lines.
    async fn shutdown(self) {
        if let Some(otlp) = self.otlp {
            otlp.shutdown().await;
        }
        drop(self.log_flush);
    }
}

/// Logs go to stdout through a writer thread, so a request never waits on the terminal or
/// the pipe. The queue applies back-pressure when full rather than dropping lines; the
/// thread writes what is queued in one go and flushes whenever the queue runs empty.
///
/// With `otlp_endpoint` set, the spans of model calls are also exported over OTLP, whatever
/// the log level: each layer has its own filter.
fn init_logging(settings: &bastion_server::Settings) -> anyhow::Result<Telemetry> {
    let otlp = settings
        .otlp_endpoint
        .as_deref()
        .map(otlp::Otlp::new)
        .transpose()?;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.log_level));
    let (writer, log_flush) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout(),
        ));
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(true)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let fmt = match settings.log_format {
        LogFormat::Json => fmt.json().boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(otlp.as_ref().map(otlp::Otlp::layer))
        .with(fmt.with_filter(filter))
        .try_init();
    Ok(Telemetry { log_flush, otlp })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}
