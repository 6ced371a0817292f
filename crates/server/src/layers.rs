//! The global layers around every route: request id, the record step, panic containment,
//! timeout, body limit and security headers.

use crate::error::ApiError;
use crate::flow::record;
use crate::settings::Settings;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::Router;
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;

pub fn wrap(router: Router, settings: &Settings) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let timeout = Duration::from_secs(settings.request_timeout_secs);
    router.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(request_id))
            .layer(middleware::from_fn(record::record))
            .layer(CatchPanicLayer::custom(|_| {
                ApiError::Internal("a handler panicked".into()).into_response()
            }))
            .layer(SetResponseHeaderLayer::overriding(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ))
            // An API answer is data, never a page: nothing in it may run or be framed. The
            // Control UI's pages set their own, stricter-than-default policy.
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("DENY"),
            ))
            .option_layer(cors(settings))
            // Served over bastion's own TLS: browsers keep to HTTPS for two years.
            .option_layer(settings.serves_tls().then(|| {
                SetResponseHeaderLayer::overriding(
                    header::STRICT_TRANSPORT_SECURITY,
                    HeaderValue::from_static("max-age=63072000"),
                )
            }))
            .layer(middleware::from_fn(
                move |req: Request, next: Next| async move {
                    match tokio::time::timeout(timeout, next.run(req)).await {
                        Ok(res) => res,
                        Err(_) => ApiError::Timeout.into_response(),
                    }
                },
            ))
            .layer(DefaultBodyLimit::max(settings.max_body_bytes)),
    )
}

/// Cross-origin reads are off unless `cors_allowed_origins` names the origins (a web app
/// on another site calling the API with bearer tokens); never with credentials, so a
/// session cookie is not usable from another site.
fn cors(settings: &Settings) -> Option<tower_http::cors::CorsLayer> {
    if settings.cors_allowed_origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = settings
        .cors_allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([
                axum::http::Method::GET,
                axum::http::Method::POST,
                axum::http::Method::PUT,
                axum::http::Method::PATCH,
                axum::http::Method::DELETE,
            ])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .max_age(Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request as HttpRequest, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    fn app() -> Router {
        let settings = Settings {
            request_timeout_secs: 1,
            ..Settings::default()
        };
        let router = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route("/panic", get(|| async { panic!("boom") as &'static str }));
        wrap(router, &settings)
    }

    async fn call(path: &str) -> (StatusCode, String, String) {
        let res = app()
            .oneshot(HttpRequest::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let ct = res.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, ct, String::from_utf8_lossy(&body).to_string())
    }

    #[tokio::test]
    async fn a_slow_request_is_cut_off_with_a_problem() {
        let (status, ct, body) = call("/slow").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ct, "application/problem+json");
        assert!(body.contains("\"code\":\"timeout\""), "{body}");
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_problem_without_internals() {
        let (status, ct, body) = call("/panic").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(ct, "application/problem+json");
        assert!(!body.contains("boom"), "{body}");
    }
}
