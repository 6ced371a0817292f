//! Reading a response body under our limits: a time limit (per chunk for streams, for the
//! whole body otherwise) and a size cap. Base URLs are operator- or tenant-configured, so the
//! server behind one may be anything; a body that never ends or never stops growing must not
//! hold a task or memory forever.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::time::Duration;

use crate::ProviderError;

/// The most we read of a successful answer, streamed or not: far above any real completion
/// (a million tokens of text is a few MiB), low enough to bound memory.
pub(crate) const MAX_BODY_BYTES: usize = 32 << 20;
/// The most we read of an error answer: only its `error.message` is used.
pub(crate) const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

#[derive(Debug)]
pub(crate) enum BodyError {
    /// No chunk (or not the whole body) within the allowed time.
    Idle,
    /// The body grew past its cap.
    TooLarge,
    /// The connection failed while reading.
    Transport(reqwest::Error),
}

impl From<BodyError> for ProviderError {
    fn from(err: BodyError) -> ProviderError {
        match err {
            BodyError::Idle => ProviderError::Timeout,
            BodyError::TooLarge => ProviderError::protocol("the response is too large"),
            BodyError::Transport(err) => {
                // Without the URL: it may carry credentials in its userinfo or query.
                tracing::debug!(error = %err.without_url(), "provider response body failed");
                ProviderError::protocol("the response was cut off")
            }
        }
    }
}

/// The body as chunks, failing when one takes longer than `idle` to arrive or when the total
/// passes `cap`. Ends after the first error.
pub(crate) fn chunks(
    response: reqwest::Response,
    idle: Duration,
    cap: usize,
) -> impl Stream<Item = Result<Bytes, BodyError>> + Send + 'static {
    let inner = Box::pin(response.bytes_stream());
    futures::stream::unfold(Some((inner, 0usize)), move |state| async move {
        let (mut inner, total) = state?;
        match tokio::time::timeout(idle, inner.next()).await {
            Err(_) => Some((Err(BodyError::Idle), None)),
            Ok(None) => None,
            Ok(Some(Err(err))) => Some((Err(BodyError::Transport(err)), None)),
            Ok(Some(Ok(chunk))) => {
                let total = total.saturating_add(chunk.len());
                if total > cap {
                    Some((Err(BodyError::TooLarge), None))
                } else {
                    Some((Ok(chunk), Some((inner, total))))
                }
            }
        }
    })
}

/// The whole body, read within `deadline` and at most `cap` bytes.
pub(crate) async fn read_all(
    response: reqwest::Response,
    deadline: Duration,
    cap: usize,
) -> Result<Vec<u8>, BodyError> {
    let read = async {
        let mut body = Vec::new();
        // The per-chunk limit is the deadline itself: the outer timeout is the binding one.
        let mut parts = std::pin::pin!(chunks(response, deadline, cap));
        while let Some(chunk) = parts.next().await {
            body.extend_from_slice(&chunk?);
        }
        Ok(body)
    };
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or(Err(BodyError::Idle))
}
