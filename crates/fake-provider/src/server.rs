//! Starting the fake, its routes, and the handle that steers it.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::errors::{self, Format};
use crate::state::{RecordedRequest, Shared};
use crate::{anthropic, openai};

/// Large enough for long-context benchmark prompts.
const BODY_LIMIT: usize = 64 << 20;

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Starts fakes. See [`FakeHandle`] for what a running one can be told.
pub struct FakeProvider;

impl FakeProvider {
    /// Starts a recording fake on `127.0.0.1` and a free port, on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime, or when no loopback port can be bound: it is a test helper,
    /// and either is a broken test environment.
    pub fn start() -> FakeHandle {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        Self::start_on(addr).expect("bind the fake provider to a loopback port")
    }

    /// Starts a recording fake on `addr`, on the current tokio runtime.
    pub fn start_on(addr: SocketAddr) -> std::io::Result<FakeHandle> {
        Self::start_with(addr, true)
    }

    /// Starts a fake on `addr`; `recording: false` keeps no request bodies (benchmarks).
    pub fn start_with(addr: SocketAddr, recording: bool) -> std::io::Result<FakeHandle> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(recording));
        let mut stop = shared.stop_signal();
        let app = router(shared.clone());
        tokio::spawn(async move {
            let shutdown = async move {
                // An error means every handle is gone: then there is nobody to stop for.
                let _ = stop.wait_for(|stopped| *stopped).await;
            };
            // Serving only ends on shutdown; an accept error is logged by axum and retried.
            // A real provider's streams arrive token by token, not held back by Nagle.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await;
        });
        Ok(FakeHandle { shared, addr })
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/models", get(models))
        .route("/_fake/requests", get(recorded))
        .fallback(unknown)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

/// Both formats list models at the same path; the key header tells which one is asking.
async fn models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let is_anthropic = headers.contains_key("x-api-key");
    let key = if is_anthropic {
        anthropic::api_key(&headers)
    } else {
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("")
    };
    let plan = shared.arrive("/v1/models", key, &[]);
    let format = if is_anthropic {
        Format::Anthropic
    } else {
        Format::OpenAi
    };
    if let Some(status) = plan.fail_with {
        return errors::injected(format, status);
    }
    match format {
        Format::Anthropic => anthropic::models(plan.key_rejected),
        Format::OpenAi => openai::models(key, plan.key_rejected),
    }
}

/// What was recorded, for a test driving the `bastion-fake-provider` binary from outside.
async fn recorded(State(shared): State<Arc<Shared>>) -> Json<Vec<RecordedRequest>> {
    Json(shared.requests())
}

async fn unknown(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    shared.arrive(uri.path(), "", &body);
    let message = format!("Invalid URL ({method} {})", uri.path());
    errors::error(Format::OpenAi, 404, &message)
}

/// Steers a running fake. Cheap to clone; every clone steers the same fake.
#[derive(Clone)]
pub struct FakeHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl FakeHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1`: the base URL of an OpenAI-format endpoint.
    pub fn base_url_openai(&self) -> String {
        format!("http://{}/v1", self.connect_addr())
    }

    /// The same root: Anthropic's `/v1/messages` is served beside OpenAI's routes.
    pub fn base_url_anthropic(&self) -> String {
        self.base_url_openai()
    }

    /// Where a client connects: a fake bound to every interface is reached on loopback.
    fn connect_addr(&self) -> SocketAddr {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        SocketAddr::new(ip, self.addr.port())
    }

    /// Every request received while recording, in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    pub fn clear_requests(&self) {
        self.shared.clear_requests();
    }

    /// Requests received, recorded or not.
    pub fn request_count(&self) -> u64 {
        self.shared.request_count()
    }

    /// Whether request bodies are kept for [`FakeHandle::requests`].
    pub fn set_recording(&self, on: bool) {
        self.shared.set_recording(on);
    }

    /// The next `n` requests answer `status` (429 with `retry-after: 0`, 500, 503, 529, …)
    /// in the provider's error shape, before any other check.
    pub fn fail_next(&self, n: u32, status: u16) {
        self.shared.fail_next(n, status);
    }

    /// A pause before each event of a stream.
    pub fn set_token_delay(&self, delay: Duration) {
        self.shared.set_token_delay(delay);
    }

    /// `Some(k)`: streams send `k` content deltas, then nothing, forever (until
    /// [`FakeHandle::cut_streams`] or shutdown). `None`: streams complete.
    pub fn set_stall_after(&self, deltas: Option<usize>) {
        self.shared.set_stall_after(deltas);
    }

    /// Breaks the connection of every stream now open, mid-body, as a provider that dies
    /// does. Streams started later are not affected.
    pub fn cut_streams(&self) {
        self.shared.cut_streams();
    }

    /// Treats `key` as invalid from now on (401 in the provider's shape).
    pub fn reject_key(&self, key: impl Into<String>) {
        self.shared.reject_key(key.into());
    }

    /// `Some(text)`: answer `text` instead of echoing the last user message.
    pub fn set_reply(&self, reply: Option<String>) {
        self.shared.set_reply(reply);
    }

    /// Stops the fake: open streams are cut, idle connections closed, new ones refused.
    pub fn shutdown(&self) {
        self.shared.cut_streams();
        self.shared.stop();
    }
}
