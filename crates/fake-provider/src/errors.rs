//! Error answers in each provider's own JSON shape.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    OpenAi,
    Anthropic,
}

/// An error answer: OpenAI's `{"error": {message, type, param, code}}` or Anthropic's
/// `{"type": "error", "error": {type, message}}`. A 429 carries `retry-after: 0` so clients
/// under test retry at once.
pub(crate) fn error(format: Format, status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match format {
        Format::OpenAi => {
            let (kind, code) = match status {
                401 => ("invalid_request_error", json!("invalid_api_key")),
                404 => ("invalid_request_error", json!("not_found")),
                429 => ("requests", json!("rate_limit_exceeded")),
                500..=599 => ("server_error", json!(null)),
                _ => ("invalid_request_error", json!(null)),
            };
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
        }
        Format::Anthropic => {
            let kind = match status {
                400 => "invalid_request_error",
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                _ => "api_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
    };
    let mut response = (code, Json(body)).into_response();
    if status == 429 {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("0"));
    }
    response
}

/// The message each provider sends with a status, for `fail_next`.
pub(crate) fn injected(format: Format, status: u16) -> Response {
    let message = match (format, status) {
        (Format::OpenAi, 429) => "Rate limit reached for requests. Please try again later.",
        (Format::Anthropic, 429) => "Number of requests has exceeded your rate limit.",
        (_, 503) => "The engine is currently overloaded, please try again later.",
        (_, 529) => "Overloaded",
        (Format::OpenAi, 500..=599) => "The server had an error while processing your request.",
        (Format::Anthropic, 500..=599) => "Internal server error",
        _ => "Injected failure.",
    };
    error(format, status, message)
}

/// OpenAI's 401 names the key it refused with all but its last four characters masked.
pub(crate) fn openai_bad_key(key: &str) -> Response {
    let message = if key.is_empty() {
        "You didn't provide an API key. You need to provide your API key in an Authorization \
         header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            .to_owned()
    } else {
        let chars: Vec<char> = key.chars().collect();
        let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
        format!(
            "Incorrect API key provided: {}{tail}. You can find your API key at \
             https://platform.openai.com/account/api-keys.",
            "*".repeat(chars.len().saturating_sub(4))
        )
    };
    error(Format::OpenAi, 401, &message)
}
