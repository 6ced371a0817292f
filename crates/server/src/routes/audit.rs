//! A workspace's audit log, newest first, paginated by sequence number.

use crate::error::{ApiError, ApiResult};
use crate::flow::InWorkspace;
use crate::json::ApiQuery;
use crate::routes::views::{AuditEventView, AuditPage};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Deserialize, IntoParams)]
pub struct PageQuery {
    /// Only events with a sequence number below this (from `next_before`).
    pub before: Option<i64>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace_id}/audit", tag = "audit", security(("bearer" = [])),
    params(("workspace_id" = String, Path, format = Uuid), PageQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = crate::error::Problem), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    ws: InWorkspace,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<AuditPage>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 200".into(),
        ));
    }
    let events = state.store.audit().page(&ws.scope, q.before, limit).await?;
    let next_before = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    Ok(Json(AuditPage {
        items: events.iter().map(AuditEventView::from).collect(),
        next_before,
    }))
}
