//! When to try a call again, and how long to wait first.
//!
//! A call is retried only while nothing of the answer has reached the caller: on a failed
//! connection, or on a status that says "not now" (429, 500, 502, 503, 504, Anthropic's 529
//! "overloaded"). A timeout waiting for headers, or a connection lost after the request went
//! out, is not retried: the provider may be generating (and billing) that answer already.

use rand::Rng;
use reqwest::header::HeaderMap;
use std::time::Duration;

pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504 | 529)
}

/// The wait before retry number `retry` (0 for the first retry): "full jitter", a uniform
/// pick in `[0, min(max, base·2^retry)]`, so clients that failed together do not retry
/// together. A provider's own `Retry-After` wins, capped at `max` so one header cannot stall
/// a conversation for minutes.
pub(crate) fn delay(
    retry: u32,
    base: Duration,
    max: Duration,
    retry_after: Option<Duration>,
) -> Duration {
    if let Some(wait) = retry_after {
        return wait.min(max);
    }
    let ceiling = base
        .checked_mul(2u32.saturating_pow(retry))
        .unwrap_or(max)
        .min(max);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::thread_rng().gen_range(0..=nanos))
}

/// `Retry-After` in seconds, or OpenAI's `retry-after-ms` when present (it is the more
/// precise of the two). The HTTP-date form of `Retry-After` is not used by the providers we
/// speak to and is ignored.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);
    // `try_from_secs_f64` refuses negative, NaN and overflowing values instead of panicking.
    let ms = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok());
    if let Some(wait) = ms.and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok()) {
        return Some(wait);
    }
    header("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    const BASE: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(8);

    #[test]
    fn retryable_statuses() {
        for s in [429, 500, 502, 503, 504, 529] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 408, 413, 501, 505] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }

    #[test]
    fn backoff_grows_exponentially_within_the_cap() {
        for retry in 0..40 {
            let ceiling = BASE
                .checked_mul(2u32.saturating_pow(retry))
                .unwrap_or(MAX)
                .min(MAX);
            for _ in 0..50 {
                assert!(delay(retry, BASE, MAX, None) <= ceiling);
            }
        }
        // Jitter spreads the waits: 200 draws of the first retry are not all one value.
        let first: std::collections::HashSet<_> =
            (0..200).map(|_| delay(0, BASE, MAX, None)).collect();
        assert!(first.len() > 1);
    }

    #[test]
    fn retry_after_is_honoured_but_capped() {
        assert_eq!(
            delay(0, BASE, MAX, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(delay(5, BASE, MAX, Some(Duration::from_secs(120))), MAX);
        assert_eq!(delay(0, BASE, MAX, Some(Duration::ZERO)), Duration::ZERO);
    }

    #[test]
    fn parses_retry_after_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        h.insert("retry-after-ms", HeaderValue::from_static("1e300"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }
}
