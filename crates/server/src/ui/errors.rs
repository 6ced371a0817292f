//! A refusal of the request flow, or any problem answer of a page, shown as a page: the
//! status stays, the problem's title and detail are shown, and a 401 is the sign-in page
//! (whose script first tries the session's refresh token, then asks to sign in).

use super::{pages, widgets, Page};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use maud::html;

/// A problem body larger than this is not a problem this server wrote.
const MAX_PROBLEM_BYTES: usize = 64 * 1024;

pub async fn as_html(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let here = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let res = next.run(req).await;
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == "application/problem+json");
    if !is_problem {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_PROBLEM_BYTES)
        .await
        .unwrap_or_default();
    let problem: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let text = |k: &str| problem[k].as_str().unwrap_or_default().to_owned();
    let page = if parts.status == StatusCode::UNAUTHORIZED {
        pages::login::page(&state, Some(&here))
    } else {
        refusal(parts.status, &text("title"), &text("detail"))
    };
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    // The flow's record of the request (principal, assistant) travels in the extensions.
    let html = Page(page).into_response().into_body();
    Response::from_parts(parts, Body::new(html))
}

fn refusal(status: StatusCode, title: &str, detail: &str) -> maud::Markup {
    let heading = match status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        _ => title,
    };
    widgets::bare_page(
        heading,
        html! {
            main.narrow {
                h1 { (heading) }
                p.problem role="alert" { (detail) }
                p { a href="/ui/" { "Back to your assistants" } }
            }
        },
    )
}
