//! The Control UI under `/ui/`: pages rendered on the server (maud) and one small script.
//!
//! Every page is a route of the same table as the API, registered with the access rule of
//! the API route whose data it shows, so the request flow (resolve → authenticate →
//! authorize) runs before a page is rendered exactly as before an API call; a page reads
//! its data through the API's own handlers, so it shows what the API would answer. Every
//! change a page offers is sent by `ui.js` to the API itself (JSON, the session's cookies
//! and its CSRF token): there is no second write path to secure. The navigation shows only
//! what the caller's capabilities allow; a page or action outside them is refused anyway.
//!
//! Pages answer with a strict Content-Security-Policy (scripts and styles from this origin
//! only, nothing inline, no framing), and a refusal of the flow (a problem+json answer)
//! becomes an HTML page with the same status: a 401 is the sign-in page.

mod assets;
mod errors;
mod frame;
mod pages;
mod widgets;

use crate::state::AppState;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

pub use pages::register;

/// The policy of every UI answer: nothing but this origin's own script, style and calls.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

/// The UI's layers: HTML for refusals, then the security headers of a page.
pub fn wrap(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    router
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            errors::as_html,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
}

/// A rendered page.
pub struct Page(pub maud::Markup);

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            self.0.into_string(),
        )
            .into_response()
    }
}
