//! Custom domains of an assistant.

use crate::error::ApiResult;
use crate::events::{self, SUCCESS};
use crate::flow::{Actor, InAssistant, ItemParam, Meta};
use crate::json::ApiJson;
use crate::routes::views::{rfc3339, DomainView};
use crate::state::AppState;
use crate::validate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainInput {
    pub domain: String,
}

#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/domains", tag = "domains", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)),
    responses((status = 200, body = [DomainView]), (status = 404, body = crate::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    at: InAssistant,
) -> ApiResult<Json<Vec<DomainView>>> {
    let rows = state.store.domains().list(&at.scope).await?;
    Ok(Json(
        rows.iter()
            .map(|d| DomainView {
                domain: d.domain.clone(),
                created_at: rfc3339(d.created_at),
            })
            .collect(),
    ))
}

/// Adds a custom domain; requests with that Host resolve to this assistant.
#[utoipa::path(post, path = "/api/v1/assistants/{assistant_id}/domains", tag = "domains", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)), request_body = DomainInput,
    responses((status = 201, body = DomainView), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn add(
    State(state): State<AppState>,
    actor: Actor,
    meta: Meta,
    at: InAssistant,
    ApiJson(input): ApiJson<DomainInput>,
) -> ApiResult<(StatusCode, Json<DomainView>)> {
    let domain = validate::domain(&input.domain)?;
    if state
        .settings
        .base_domain
        .as_deref()
        .is_some_and(|b| domain == b || domain.ends_with(&format!(".{b}")))
    {
        return Err(crate::error::ApiError::Unprocessable(
            "domain: names under base_domain are assigned by slug".into(),
        ));
    }
    let d = state.store.domains().add(&at.scope, &domain).await?;
    state.directory.forget_domain(&domain);
    state
        .audit(events::on_assistant(
            &at,
            actor,
            &meta,
            "domain.add",
            SUCCESS,
            json!({"domain": domain}),
        ))
        .await;
    Ok((
        StatusCode::CREATED,
        Json(DomainView {
            domain: d.domain,
            created_at: rfc3339(d.created_at),
        }),
    ))
}

#[utoipa::path(delete, path = "/api/v1/assistants/{assistant_id}/domains/{domain}", tag = "domains", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("domain" = String, Path)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn remove(
    State(state): State<AppState>,
    actor: Actor,
    meta: Meta,
    at: InAssistant,
    ItemParam(domain): ItemParam,
) -> ApiResult<StatusCode> {
    let domain = domain.to_ascii_lowercase();
    state.store.domains().remove(&at.scope, &domain).await?;
    state.directory.forget_domain(&domain);
    state
        .audit(events::on_assistant(
            &at,
            actor,
            &meta,
            "domain.remove",
            SUCCESS,
            json!({"domain": domain}),
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}
