//! The JSON body extractor: size-capped by the body limit, then depth- and string-capped,
//! then typed. Every failure is a 4xx problem+json naming what was wrong.

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = state.settings.max_body_bytes;
        let bytes = Bytes::from_request(req, state).await.map_err(|e| match e {
            BytesRejection::FailedToBufferBody(_) => ApiError::PayloadTooLarge(limit),
            other => ApiError::BadRequest(other.body_text()),
        })?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
        check_shape(
            &value,
            state.settings.max_json_depth,
            state.settings.max_string_bytes,
        )?;
        serde_json::from_value(value)
            .map(ApiJson)
            .map_err(|e| ApiError::Unprocessable(e.to_string()))
    }
}

/// Refuses documents whose arrays and objects nest deeper than `max_depth`, or holding a string (or key) longer
/// than `max_string` bytes.
pub fn check_shape(value: &Value, max_depth: usize, max_string: usize) -> Result<(), ApiError> {
    let mut stack = vec![(value, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        let is_container = v.is_array() || v.is_object();
        if is_container && depth > max_depth {
            return Err(ApiError::BadRequest(format!(
                "JSON nested deeper than {max_depth} levels"
            )));
        }
        match v {
            Value::String(s) if s.len() > max_string => {
                return Err(ApiError::BadRequest(format!(
                    "a JSON string exceeds {max_string} bytes"
                )));
            }
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            Value::Object(map) => {
                for (k, item) in map {
                    if k.len() > max_string {
                        return Err(ApiError::BadRequest(format!(
                            "a JSON key exceeds {max_string} bytes"
                        )));
                    }
                    stack.push((item, depth + 1));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The query string extractor: a query that does not parse into `T` is a 400 problem+json
/// saying which parameter, like a bad body (axum's own rejection is plain text).
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_and_string_caps() {
        assert!(check_shape(&json!({"a": [1, {"b": "c"}]}), 3, 10).is_ok());
        assert!(check_shape(&json!({"a": [1, {"b": "c"}]}), 2, 10).is_err());
        assert!(check_shape(&json!({"a": "x".repeat(11)}), 8, 10).is_err());
        assert!(check_shape(&json!({"k".repeat(11): 1}), 8, 10).is_err());
    }
}
