//! The workspace's audit log (audit.read on the workspace), newest first, page by page.

use crate::error::ApiResult;
use crate::flow::{Caller, InWorkspace};
use crate::json::ApiQuery;
use crate::routes::audit::{self, PageQuery};
use crate::state::AppState;
use crate::ui::frame::Frame;
use crate::ui::{widgets, Page};
use axum::extract::{Query, State};
use axum::Json;
use maud::html;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct At {
    before: Option<i64>,
    from: Option<String>,
}

/// `GET /ui/workspaces/{workspace_id}/audit`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ws: InWorkspace,
    Query(at): Query<At>,
) -> ApiResult<Page> {
    let workspace = ws.scope.workspace_id();
    let from = at.from.as_deref().and_then(|a| a.parse().ok());
    let frame = Frame::in_workspace(&state, &caller, workspace, from).await?;
    let query = PageQuery {
        before: at.before,
        limit: Some(50),
    };
    let Json(page) = audit::list(State(state.clone()), ws, ApiQuery(query)).await?;
    let page = widgets::json(&page);
    let empty = Vec::new();
    let rows = page["items"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|e| {
            html! { tr {
                td.num { (widgets::text(e, "seq")) }
                td { (widgets::when(e, "at")) }
                td { (widgets::text(e, "actor")) }
                td { (widgets::text(e, "action")) }
                td { (widgets::text(e, "target")) }
                td { (widgets::text(e, "outcome")) }
                td { (widgets::text(e, "ip")) }
                td { code.detail { (widgets::text(e, "detail")) } }
            } }
        })
        .collect();
    let content = html! {
        (widgets::table("Audit events, newest first", &["#", "When", "Actor", "Action", "Target", "Outcome", "Address", "Detail"], rows, "No events."))
        @if let Some(next) = page["next_before"].as_i64() {
            p { a href={ "?before=" (next) @if let Some(f) = &at.from { "&from=" (f) } } { "Older events" } }
        }
    };
    Ok(Page(frame.page("Audit log", "Audit log", content)))
}
