//! Step 3: authorize the route's declared access for the principal on the resolved tenant.
//! A tenant the principal does not belong to is a 404 (its existence does not leak); a
//! tenant they belong to without the capability is a 403. In a workspace that requires MFA,
//! its owners and admins are refused (403 `mfa_required`) from a session signed in without
//! a second factor, whatever the route.

use crate::error::ApiError;
use crate::flow::resolve::Target;
use crate::flow::{Caller, InAssistant, InWorkspace};
use crate::state::AppState;
use axum::http::Extensions;
use bastion_core::Access;

pub async fn authorize(
    state: &AppState,
    access: Access,
    caller: Option<Caller>,
    target: Target,
    ext: &mut Extensions,
) -> Result<(), ApiError> {
    if access == Access::Public {
        if let Some(c) = caller {
            ext.insert(c);
        }
        return Ok(());
    }
    let caller = caller.ok_or(ApiError::Unauthenticated)?;
    let user = caller.user.id;
    match access {
        Access::Public | Access::Authenticated => {}
        Access::Operator => {
            if !caller.user.is_operator {
                return Err(ApiError::forbidden());
            }
        }
        Access::AssistantMember | Access::Assistant(_) | Access::AssistantOwner => {
            let assistant = target.assistant.ok_or(ApiError::NotFound)?;
            let grant = state
                .directory
                .grant(user, assistant.id)
                .await?
                .ok_or(ApiError::NotFound)?;
            if grant.mfa_required() && !caller.mfa {
                return Err(ApiError::MfaRequired);
            }
            let scope = grant.authorize(access).ok_or_else(ApiError::forbidden)?;
            ext.insert(InAssistant { scope, assistant });
        }
        Access::WorkspaceMember | Access::Workspace(_) | Access::WorkspaceOwner => {
            let workspace = target.workspace.ok_or(ApiError::NotFound)?;
            let grant = state
                .directory
                .workspace_grant(user, workspace)
                .await?
                .ok_or(ApiError::NotFound)?;
            if grant.mfa_required() && !caller.mfa {
                return Err(ApiError::MfaRequired);
            }
            let scope = grant.authorize(access).ok_or_else(ApiError::forbidden)?;
            ext.insert(InWorkspace { scope });
        }
    }
    ext.insert(caller);
    Ok(())
}
