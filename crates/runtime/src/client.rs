//! The client: one pooled HTTP client, the retry loop, and the two kinds of call.

use eventsource_stream::{EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use reqwest::redirect;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

use crate::body::{self, BodyError};
use crate::config::ClientConfig;
use crate::endpoint::Endpoint;
use crate::types::{ChatRequest, Completion, StreamEvent};
use crate::wire::{self, Progress};
use crate::{budget, retry, ProviderError};

/// A streamed answer: `Delta`s, then the proposed tool calls (at most one `ToolCalls`), then
/// exactly one `Done`; or an error, after which it ends.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, ProviderError>> + Send>>;

/// Calls providers. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    cfg: Arc<ClientConfig>,
    /// Where calls may connect (see `address.rs`).
    egress: Arc<bastion_tools::egress::EgressPolicy>,
}

/// What one attempt to get response headers came to, short of a usable response.
enum AttemptError {
    /// Nothing reached the provider: safe to retry. `timed_out` tells which error it ends as.
    Connect { timed_out: bool },
    /// Not to be retried.
    Final(ProviderError),
}

impl Client {
    pub fn new(cfg: ClientConfig) -> Result<Client, ProviderError> {
        let egress = Arc::new(bastion_tools::egress::EgressPolicy {
            allowed_private_hosts: cfg.private_hosts.clone(),
        });
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(crate::address::PublicOnly {
                policy: egress.clone(),
            }))
            // A proxy would connect on our behalf to an address we never checked.
            .no_proxy()
            .connect_timeout(cfg.connect_timeout)
            // A redirect would send the body (and, for x-api-key, the key) to wherever it
            // points; providers do not redirect API calls, so one is an error.
            .redirect(redirect::Policy::none())
            // Sent at once: a request is one write, and a stream must not wait on Nagle.
            .tcp_nodelay(true)
            .user_agent(concat!("bastion/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| ProviderError::protocol("the HTTP client could not be set up"))?;
        Ok(Client {
            http,
            cfg: Arc::new(cfg),
            egress,
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// A whole answer (`"stream": false`).
    pub async fn complete(
        &self,
        ep: &Endpoint,
        req: &ChatRequest,
    ) -> Result<Completion, ProviderError> {
        let body = wire::encode(ep.kind, req, false)?;
        let response = self.send(ep, body, false).await?;
        let bytes = body::read_all(response, self.cfg.idle_timeout, body::MAX_BODY_BYTES).await?;
        wire::decode_completion(ep.kind, &bytes, budget::estimate_request_tokens(req))
            .map_err(|e| e.into_provider_error(&ep.api_key))
    }

    /// A streamed answer (`"stream": true`). Returns once the provider has accepted the
    /// call (response headers in); retries happen before that, never once text flows.
    pub async fn stream(
        &self,
        ep: &Endpoint,
        req: &ChatRequest,
    ) -> Result<EventStream, ProviderError> {
        let body = wire::encode(ep.kind, req, true)?;
        let response = self.send(ep, body, true).await?;
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            return Err(ProviderError::protocol(
                "expected an event stream, got a JSON answer",
            ));
        }
        let events = body::chunks(response, self.cfg.idle_timeout, body::MAX_BODY_BYTES)
            .eventsource()
            .boxed();
        let state = StreamState {
            events,
            kind: ep.kind,
            api_key: ep.api_key.clone(),
            progress: Progress::new(budget::estimate_request_tokens(req)),
            queue: VecDeque::new(),
            over: false,
        };
        Ok(futures::stream::unfold(state, StreamState::next).boxed())
    }

    /// Sends the call until it gets a successful response, retrying as `retry.rs`
    /// allows. Error responses become errors here (their body read for the message).
    async fn send(
        &self,
        ep: &Endpoint,
        body: Vec<u8>,
        stream: bool,
    ) -> Result<reqwest::Response, ProviderError> {
        let url = ep.url_for(wire::path(ep.kind));
        if !crate::address::literal_allowed(&self.egress, &url) {
            return Err(ProviderError::AddressRefused);
        }
        let mut headers = wire::headers(ep)?;
        if stream {
            headers.insert(
                ACCEPT,
                reqwest::header::HeaderValue::from_static("text/event-stream"),
            );
        }
        // Shared by every attempt without copying.
        let body = bytes::Bytes::from(body);
        let attempts = self.cfg.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let is_last = attempt >= attempts;
            let wait = match self.attempt(&url, &headers, body.clone()).await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = retry::retry_after(response.headers());
                    if is_last || !retry::is_retryable_status(status) {
                        return Err(self.error_from(ep, response, retry_after).await);
                    }
                    tracing::debug!(provider = ep.kind.as_str(), status, attempt, "retrying");
                    retry_after
                }
                Err(AttemptError::Connect { timed_out }) => {
                    if is_last {
                        return Err(if timed_out {
                            ProviderError::Timeout
                        } else {
                            ProviderError::Connect
                        });
                    }
                    tracing::debug!(provider = ep.kind.as_str(), attempt, "retrying to connect");
                    None
                }
                Err(AttemptError::Final(err)) => return Err(err),
            };
            let delay = retry::delay(
                attempt - 1,
                self.cfg.backoff_base,
                self.cfg.backoff_max,
                wait,
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        url: &Url,
        headers: &HeaderMap,
        body: bytes::Bytes,
    ) -> Result<reqwest::Response, AttemptError> {
        let request = self
            .http
            .post(url.clone())
            .headers(headers.clone())
            .body(body)
            .send();
        match tokio::time::timeout(self.cfg.response_timeout, request).await {
            Ok(Ok(response)) => Ok(response),
            // No headers in time: the provider may be working on it, so no retry.
            Err(_) => Err(AttemptError::Final(ProviderError::Timeout)),
            Ok(Err(err)) if crate::address::is_refusal(&err) => {
                Err(AttemptError::Final(ProviderError::AddressRefused))
            }
            Ok(Err(err)) if err.is_connect() => Err(AttemptError::Connect {
                timed_out: err.is_timeout(),
            }),
            Ok(Err(err)) => {
                // The request may have reached the provider: not retried. Logged without
                // the URL, which may carry credentials.
                let timed_out = err.is_timeout();
                tracing::debug!(error = %err.without_url(), "provider request failed");
                Err(AttemptError::Final(if timed_out {
                    ProviderError::Timeout
                } else {
                    ProviderError::Connect
                }))
            }
        }
    }

    /// The error for a non-success response, with the provider's message when it sent one.
    async fn error_from(
        &self,
        ep: &Endpoint,
        response: reqwest::Response,
        retry_after: Option<Duration>,
    ) -> ProviderError {
        let status = response.status().as_u16();
        // A body we cannot read in time or at all still leaves the status to go by.
        let message = body::read_all(response, self.cfg.idle_timeout, body::MAX_ERROR_BODY_BYTES)
            .await
            .ok()
            .and_then(|b| wire::error_message(&b));
        wire::classify(status, message.as_deref(), retry_after, &ep.api_key)
    }
}

type SseEvents = Pin<
    Box<dyn Stream<Item = Result<eventsource_stream::Event, EventStreamError<BodyError>>> + Send>,
>;

/// The state behind an [`EventStream`].
struct StreamState {
    events: SseEvents,
    kind: crate::ProviderKind,
    /// For redacting a provider's error message arriving mid-stream.
    api_key: secrecy::SecretString,
    progress: Progress,
    /// Events decoded but not yet handed out (one SSE event can yield several).
    queue: VecDeque<StreamEvent>,
    /// Done or failed: nothing more is read.
    over: bool,
}

impl StreamState {
    async fn next(mut self) -> Option<(Result<StreamEvent, ProviderError>, StreamState)> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some((Ok(event), self));
            }
            if self.over {
                return None;
            }
            if let Err(err) = self.read_one().await {
                self.over = true;
                return Some((Err(err), self));
            }
        }
    }

    /// Reads and decodes the next server-sent event (or the body's end).
    async fn read_one(&mut self) -> Result<(), ProviderError> {
        let key = &self.api_key;
        // The idle timeout is enforced per chunk underneath, in `body::chunks`.
        match self.events.next().await {
            None => {
                self.over = true;
                self.progress
                    .end(&mut self.queue)
                    .map_err(|e| e.into_provider_error(key))
            }
            Some(Ok(event)) => {
                let decoded = wire::stream_event(
                    self.kind,
                    &event.event,
                    &event.data,
                    &mut self.progress,
                    &mut self.queue,
                );
                self.over = self.progress.is_done();
                decoded.map_err(|e| e.into_provider_error(key))
            }
            Some(Err(EventStreamError::Transport(err))) => Err(err.into()),
            Some(Err(EventStreamError::Utf8(_))) => {
                Err(ProviderError::protocol("the event stream is not UTF-8"))
            }
            Some(Err(EventStreamError::Parser(_))) => {
                Err(ProviderError::protocol("malformed event stream"))
            }
        }
    }
}
