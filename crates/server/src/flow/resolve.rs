//! Step 1: resolve the assistant from the Host header (custom domain or
//! `{slug}.{base_domain}`) and/or the `{assistant_id}` path parameter, and the workspace from
//! `{workspace_id}`. Unknown or disagreeing → 404, before anyone is authenticated.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::RawPathParams;
use axum::http::{header, HeaderMap};
use bastion_core::{AssistantId, WorkspaceId};
use bastion_store::assistants::Assistant;
use std::sync::Arc;

#[derive(Default)]
pub struct Target {
    pub assistant: Option<Arc<Assistant>>,
    pub workspace: Option<WorkspaceId>,
}

pub async fn resolve(
    state: &AppState,
    headers: &HeaderMap,
    params: &RawPathParams,
) -> Result<Target, ApiError> {
    let from_host = host_assistant(state, headers).await?;
    let mut target = Target::default();
    for (name, value) in params.iter() {
        match name {
            "assistant_id" => {
                let id: AssistantId = value.parse().map_err(|_| ApiError::NotFound)?;
                let a = state
                    .directory
                    .assistant(id)
                    .await?
                    .ok_or(ApiError::NotFound)?;
                target.assistant = Some(a);
            }
            "workspace_id" => {
                target.workspace = Some(value.parse().map_err(|_| ApiError::NotFound)?);
            }
            _ => {}
        }
    }
    match (from_host, &target.assistant) {
        (Some(h), Some(p)) if h.id != p.id => return Err(ApiError::NotFound),
        (Some(h), None) => target.assistant = Some(h),
        _ => {}
    }
    Ok(target)
}

/// The assistant the Host header names, if it names one. A subdomain of `base_domain`
/// that is no assistant's slug is a 404; any other unknown host is simply not a tenant host.
async fn host_assistant(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Arc<Assistant>>, ApiError> {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return Ok(None);
    };
    let host = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
    if let Some(base) = &state.settings.base_domain {
        if let Some(slug) = host
            .strip_suffix(base.as_str())
            .and_then(|s| s.strip_suffix('.'))
        {
            if slug.contains('.') || slug.is_empty() {
                return Err(ApiError::NotFound);
            }
            return state
                .directory
                .assistant_by_slug(slug)
                .await?
                .map(Some)
                .ok_or(ApiError::NotFound);
        }
        if &host == base {
            return Ok(None);
        }
    }
    if !crate::validate::is_hostname(&host) {
        return Ok(None); // an IP literal, localhost, or garbage: not a tenant host
    }
    Ok(state.directory.assistant_by_domain(&host).await?)
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host; // IPv6 literal: never a tenant host
    }
    host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
}
