//! Step 3: authorize the route's declared access for the principal on the resolved tenant.
//! A tenant the principal does not belong to is a 404 (its existence does not leak); a
//! tenant they belong to without the capability is a 403. In a workspace that requires MFA,
//! its owners and admins are refused (403 `mfa_required`) from a session signed in without
//! a second factor, whatever the route.
//!
//! Two kinds of credential are bound to one assistant, and work nowhere else (403 on any
//! route that is not about an assistant):
//! - a scoped token: the user's live role on its assistant, narrowed to the token's
//!   capabilities, never ownership nor in-person steps; on another assistant it is refused even where the user
//!   is a member (403; 404 where they are not, as for any credential of theirs);
//! - an API key: its own capabilities, never ownership nor in-person steps, only from its allowed source
//!   ranges (403) and within its request rate (429); another assistant is a 404.
//!
//! A refused attempt to change something in a tenant the principal belongs to (a 403 on a
//! POST, PUT, PATCH or DELETE) is an attempted escalation: it is audited as
//! `access.denied` on the tenant's chain, at most once a minute per principal and route so
//! that a loop of refused requests cannot flood the chain. Refused reads are only counted.

use crate::error::ApiError;
use crate::events::{self, FAILURE};
use crate::flow::resolve::Target;
use crate::flow::{Actor, Authenticated, Caller, InAssistant, InWorkspace, Meta};
use crate::state::AppState;
use axum::http::Extensions;
use bastion_auth::rate::RateError;
use bastion_core::{Access, Principal, WorkspaceId};
use bastion_store::KeyGrant;
use serde_json::json;
use std::sync::Arc;

pub async fn authorize(
    state: &AppState,
    access: Access,
    principal: Option<Authenticated>,
    target: Target,
    meta: &Meta,
    ext: &mut Extensions,
) -> Result<(), ApiError> {
    if access == Access::Public {
        if let Some(Authenticated::User(c)) = principal {
            ext.insert(Actor(c.principal()));
            ext.insert(c);
        }
        return Ok(());
    }
    let principal = principal.ok_or(ApiError::Unauthenticated)?;
    ext.insert(Actor(principal.principal()));
    match principal {
        Authenticated::User(caller) => {
            authorize_user(state, access, caller, target, meta, ext).await
        }
        Authenticated::Key(key) => authorize_key(state, access, key, target, meta, ext).await,
    }
}

fn bound_to_one_assistant(what: &str) -> ApiError {
    ApiError::Forbidden(format!("{what} works only on the routes of its assistant"))
}

fn is_about_an_assistant(access: Access) -> bool {
    matches!(
        access,
        Access::AssistantMember
            | Access::AssistantPerson
            | Access::Assistant(_)
            | Access::AssistantOwner
    )
}

/// What a refusal is about, for its audit event.
struct Refused<'a> {
    principal: Principal,
    chain: WorkspaceId,
    target: String,
    access: Access,
    reason: &'a str,
}

/// Audits a refused attempt to change something (see the module comment) and returns
/// `error`, the answer to give.
async fn denied(state: &AppState, meta: &Meta, r: Refused<'_>, error: ApiError) -> ApiError {
    metrics::counter!("bastion_access_denied_total", "reason" => r.reason.to_string()).increment(1);
    let changes = !matches!(
        meta.method,
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    let once_a_minute = format!("{}|{}|{}", r.principal, meta.method, meta.route);
    if changes && !state.recent_denials.contains_key(&once_a_minute) {
        state.recent_denials.insert(once_a_minute, ());
        let detail = json!({
            "method": meta.method.as_str(),
            "route": meta.route,
            "required": r.access.to_string(),
            "reason": r.reason,
        });
        let actor = events::actor(r.principal);
        state
            .audit(events::event(
                r.chain,
                actor,
                meta,
                "access.denied",
                r.target,
                FAILURE,
                detail,
            ))
            .await;
    }
    error
}

async fn authorize_user(
    state: &AppState,
    access: Access,
    caller: Caller,
    target: Target,
    meta: &Meta,
    ext: &mut Extensions,
) -> Result<(), ApiError> {
    if caller.scope.is_some() && !is_about_an_assistant(access) {
        return Err(bound_to_one_assistant("a scoped token"));
    }
    let user = caller.user.id;
    match access {
        Access::ApiKey(_) => {
            return Err(ApiError::Forbidden(
                "this endpoint is for programs: authenticate with an assistant API key (bst_…)"
                    .into(),
            ))
        }
        Access::Public | Access::Authenticated => {}
        Access::Operator => {
            if !caller.user.is_operator {
                return Err(ApiError::forbidden());
            }
        }
        Access::AssistantMember
        | Access::AssistantPerson
        | Access::Assistant(_)
        | Access::AssistantOwner => {
            let assistant = target.assistant.ok_or(ApiError::NotFound)?;
            let grant = state
                .directory
                .grant(user, assistant.id)
                .await?
                .ok_or(ApiError::NotFound)?;
            if grant.mfa_required() && !caller.mfa() {
                return Err(ApiError::MfaRequired);
            }
            let refused = |reason| Refused {
                principal: caller.principal(),
                chain: grant.workspace_id(),
                target: assistant.id.to_string(),
                access,
                reason,
            };
            let scope = match caller.scope {
                None => grant.authorize(access),
                Some(s) if s.assistant != assistant.id => {
                    let error = bound_to_one_assistant("a scoped token");
                    let r = refused("token_scoped_elsewhere");
                    return Err(denied(state, meta, r, error).await);
                }
                Some(s) => grant.authorize_within(access, s.capabilities, false),
            };
            let Some(scope) = scope else {
                let r = refused("not_held");
                return Err(denied(state, meta, r, ApiError::forbidden()).await);
            };
            ext.insert(InAssistant { scope, assistant });
        }
        Access::WorkspaceMember | Access::Workspace(_) | Access::WorkspaceOwner => {
            let workspace = target.workspace.ok_or(ApiError::NotFound)?;
            let grant = state
                .directory
                .workspace_grant(user, workspace)
                .await?
                .ok_or(ApiError::NotFound)?;
            if grant.mfa_required() && !caller.mfa() {
                return Err(ApiError::MfaRequired);
            }
            let Some(scope) = grant.authorize(access) else {
                let r = Refused {
                    principal: caller.principal(),
                    chain: workspace,
                    target: workspace.to_string(),
                    access,
                    reason: "not_held",
                };
                return Err(denied(state, meta, r, ApiError::forbidden()).await);
            };
            ext.insert(InWorkspace { scope });
        }
    }
    ext.insert(caller);
    Ok(())
}

async fn authorize_key(
    state: &AppState,
    access: Access,
    key: Arc<KeyGrant>,
    target: Target,
    meta: &Meta,
    ext: &mut Extensions,
) -> Result<(), ApiError> {
    let assistant = match access {
        // The program endpoints name no assistant: the key's own is the tenant, unless the
        // Host names another (404, as for any other assistant).
        Access::ApiKey(_) => match target.assistant {
            Some(a) => Some(a),
            None => state.directory.assistant(key.key().assistant_id).await?,
        },
        a if is_about_an_assistant(a) => target.assistant,
        _ => return Err(bound_to_one_assistant("an API key")),
    };
    let assistant = assistant
        .filter(|a| a.id == key.key().assistant_id)
        .ok_or(ApiError::NotFound)?;
    let refused = |reason| Refused {
        principal: Principal::ApiKey(key.key().id),
        chain: key.workspace_id(),
        target: assistant.id.to_string(),
        access,
        reason,
    };
    if !key.key().allows_ip(meta.ip) {
        let error = ApiError::Forbidden("this API key is not allowed from your address".into());
        return Err(denied(state, meta, refused("key_source_address"), error).await);
    }
    if let Some(limit) = key.key().rate_limit_per_minute {
        match state.rates.hit(&key.key().id.to_string(), limit).await {
            Ok(()) => {}
            Err(RateError::Limited(wait)) => return Err(ApiError::RateLimited(wait)),
            Err(RateError::Unavailable(_)) => return Err(ApiError::Unavailable),
        }
    }
    let Some(scope) = key.authorize(access) else {
        return Err(denied(state, meta, refused("not_held"), ApiError::forbidden()).await);
    };
    state.directory.note_key_use(key.key().id);
    ext.insert(InAssistant { scope, assistant });
    ext.insert(key);
    Ok(())
}
