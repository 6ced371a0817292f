//! bastion's HTTP server: the axum application, the request flow every route passes
//! through, the routes, and the one mapping of errors to problem+json.

pub mod attempts;
pub mod chat;
pub mod credentials;
pub mod devices;
pub mod directory;
pub mod error;
pub mod events;
pub mod flow;
pub mod json;
pub mod nonces;
pub mod oauth;
pub mod routes;
pub mod sessions;
pub mod settings;
pub mod state;
pub mod tls;
pub mod ui;
pub mod validate;

mod layers;

pub use settings::Settings;
pub use state::AppState;

use bastion_store::Store;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use secrecy::ExposeSecret;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;

/// The process-wide Prometheus recorder (a process has one metrics registry).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("bastion_http_request_duration_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        10.0,
                    ],
                )
                .expect("static bucket list is non-empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may be installed already (tests); then ours only renders empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The complete application: routes behind the request flow, inside the global layers.
pub fn app(state: AppState) -> axum::Router {
    layers::wrap(routes::router(state.clone()), &state.settings)
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    settings: Settings,
    signing_keys: &bastion_auth::signing_key::SigningKeys,
    master_key: &[u8],
    previous_master_keys: &[&[u8]],
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let redis = match &settings.redis_url {
        Some(url) => Some(
            bastion_auth::shared_redis::connect(url.expose_secret())
                .await
                .map_err(|e| std::io::Error::other(format!("cannot connect to redis_url: {e}")))?,
        ),
        None => None,
    };
    let state = AppState::new(
        store.clone(),
        settings,
        signing_keys,
        master_key,
        previous_master_keys,
        redis,
        metrics_handle(),
    )
    .map_err(|e| std::io::Error::other(e.to_string()))?;
    // Answers a process that died left half-written are marked interrupted. On SQLite the
    // database is this process's alone; a shared PostgreSQL may hold other nodes' live
    // answers, so there only answers untouched for longer than a stream may idle are.
    let margin = if store.backend() == bastion_store::Backend::Sqlite {
        0
    } else {
        2 * 1000 * state.settings.provider_timeout_secs as i64
    };
    match store
        .conversations()
        .interrupt_unfinished(bastion_store::now_ms() - margin)
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            answers = n,
            "answers cut short by an earlier stop are marked interrupted"
        ),
        Err(e) => tracing::error!(error = %e, "could not mark interrupted answers"),
    }
    // bastion's own TLS: one certificate for every listener, reloaded in place.
    let tls = match (&state.settings.tls_cert_file, &state.settings.tls_key_file) {
        (Some(cert), Some(key)) => {
            let certs = tls::Certificates::open(cert, key).map_err(std::io::Error::other)?;
            let every = std::time::Duration::from_secs(state.settings.tls_reload_check_secs);
            let watcher = tokio::spawn(certs.clone().watch(every));
            let min = state.settings.tls_min_version;
            let http = tls::server_config(certs.clone(), min, &[b"http/1.1"])
                .map_err(std::io::Error::other)?;
            let mqtt = tls::server_config(certs, min, &[b"mqtt"]).map_err(std::io::Error::other)?;
            Some((http, mqtt, watcher))
        }
        _ => None,
    };
    let mqtt = match state.settings.mqtt_bind {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen for MQTT on {addr}: {e}"))
            })?;
            let bound = listener.local_addr()?;
            let _ = state.devices.mqtt_addr.set(bound);
            tracing::info!(addr = %bound, "MQTT endpoint for devices listening");
            let tls = tls.as_ref().map(|(_, mqtt, _)| mqtt.clone());
            Some(tokio::spawn(devices::mqtt::serve(
                listener,
                state.clone(),
                tls,
            )))
        }
        None => None,
    };
    // Devices nobody bound that went quiet are forgotten, now and every hour.
    let forgetting = {
        let (store, days) = (store.clone(), i64::from(state.settings.unbound_device_days));
        tokio::spawn(async move {
            loop {
                let before = bastion_store::now_ms() - days * 86_400_000;
                match store.devices().forget_unbound_unseen(before).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(devices = n, "unbound devices not seen for long forgotten")
                    }
                    Err(e) => tracing::warn!(error = %e, "unbound devices could not be forgotten"),
                }
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            }
        })
    };
    if store.backend() == bastion_store::Backend::Sqlite {
        // This node is the only one: no device is connected before it starts.
        if let Err(e) = store.devices().all_offline().await {
            tracing::warn!(error = %e, "device states not reset");
        }
    }
    let app = app(state.clone());
    match &tls {
        Some((http, _, _)) => {
            let listener = tls::TlsListener::new(listener, http.clone())?;
            let app = app
                .layer(axum::middleware::map_request(tls::peer_address))
                .into_make_service_with_connect_info::<tls::Peer>();
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
        None => {
            // Streamed answers are many small writes: without TCP_NODELAY, Nagle's algorithm
            // holds each one until the client's delayed ACK (~40 ms on Linux) comes back.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "could not set TCP_NODELAY");
                }
            });
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await?;
        }
    }
    if let Some((_, _, watcher)) = tls {
        watcher.abort();
    }
    if let Some(mqtt) = mqtt {
        mqtt.abort();
    }
    forgetting.abort();
    state.chat.recorder.finish().await;
    store.close().await;
    Ok(())
}
