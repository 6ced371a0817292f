//! Ownership transfer, its own confirmed action: an owner offers ownership of the assistant
//! to one of its members, and only that member can accept it, within a day. Acceptance makes
//! the recipient owner and the offering owner admin at once, so the assistant always has an
//! owner; no role change or invitation grants ownership. Offers, withdrawals and
//! acceptances (refused ones too) are audited.

use crate::error::{ApiError, ApiResult};
use crate::events::{self, FAILURE, SUCCESS};
use crate::flow::{Actor, InAssistant, Meta};
use crate::json::ApiJson;
use crate::routes::views::{rfc3339, MemberView};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bastion_core::UserId;
use bastion_store::ownership::OwnershipOffer;
use bastion_store::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

/// How long an offer can be accepted.
pub const OFFER_TTL_MS: i64 = 24 * 3_600_000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferInput {
    /// The member who is offered ownership.
    #[schema(format = Uuid)]
    pub user_id: String,
}

/// A pending offer of the assistant's ownership.
#[derive(Serialize, ToSchema)]
pub struct OwnershipOfferView {
    /// The member who may accept it.
    #[schema(format = Uuid)]
    pub to_user: String,
    /// The owner who made it, and who becomes admin on acceptance.
    #[schema(format = Uuid)]
    pub from_user: String,
    pub created_at: String,
    pub expires_at: String,
}

impl From<&OwnershipOffer> for OwnershipOfferView {
    fn from(o: &OwnershipOffer) -> Self {
        OwnershipOfferView {
            to_user: o.to_user.to_string(),
            from_user: o.from_user.to_string(),
            created_at: rfc3339(o.created_at),
            expires_at: rfc3339(o.expires_at),
        }
    }
}

/// Offers ownership to a member (not an owner already); replaces any earlier offer. The
/// member accepts it at `…/ownership-transfer/accept` within 24 hours.
#[utoipa::path(post, path = "/api/v1/assistants/{assistant_id}/ownership-transfer", tag = "members", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)), request_body = TransferInput,
    responses((status = 201, body = OwnershipOfferView), (status = 403, body = crate::error::Problem),
        (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub async fn offer(
    State(state): State<AppState>,
    actor: Actor,
    meta: Meta,
    at: InAssistant,
    ApiJson(input): ApiJson<TransferInput>,
) -> ApiResult<(StatusCode, Json<OwnershipOfferView>)> {
    let to: UserId = input
        .user_id
        .parse()
        .map_err(|_| ApiError::Unprocessable("user_id: not a user id".into()))?;
    let o = state
        .store
        .ownership()
        .offer(&at.scope, to, OFFER_TTL_MS)
        .await?;
    state
        .audit(events::on_assistant(
            &at,
            actor,
            &meta,
            "ownership.offer",
            SUCCESS,
            json!({"to": o.to_user.to_string(), "expires_at": o.expires_at}),
        ))
        .await;
    Ok((StatusCode::CREATED, Json(OwnershipOfferView::from(&o))))
}

/// The pending (unexpired) offer, if any.
#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/ownership-transfer", tag = "members", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)),
    responses((status = 200, body = OwnershipOfferView), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn pending(
    State(state): State<AppState>,
    at: InAssistant,
) -> ApiResult<Json<OwnershipOfferView>> {
    let o = state
        .store
        .ownership()
        .pending(&at.scope)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(OwnershipOfferView::from(&o)))
}

/// Withdraws the offer.
#[utoipa::path(delete, path = "/api/v1/assistants/{assistant_id}/ownership-transfer", tag = "members", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn cancel(
    State(state): State<AppState>,
    actor: Actor,
    meta: Meta,
    at: InAssistant,
) -> ApiResult<StatusCode> {
    let o = state.store.ownership().cancel(&at.scope).await?;
    state
        .audit(events::on_assistant(
            &at,
            actor,
            &meta,
            "ownership.cancel",
            SUCCESS,
            json!({"to": o.to_user.to_string(), "from": o.from_user.to_string()}),
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts the offer made to the caller: the caller becomes owner and the offering owner
/// admin. 404 when no offer is addressed to the caller; 409 when it has expired or its
/// maker is no longer an owner.
#[utoipa::path(post, path = "/api/v1/assistants/{assistant_id}/ownership-transfer/accept", tag = "members", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)),
    responses((status = 200, body = MemberView), (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
pub async fn accept(
    State(state): State<AppState>,
    actor: Actor,
    meta: Meta,
    at: InAssistant,
) -> ApiResult<Json<MemberView>> {
    let audit = |outcome: &str, detail: serde_json::Value| {
        events::on_assistant(&at, actor, &meta, "ownership.transfer", outcome, detail)
    };
    match state.store.ownership().accept(&at.scope).await {
        Ok((o, member)) => {
            let id = at.scope.assistant_id();
            state.directory.forget_grant(o.to_user, id);
            state.directory.forget_grant(o.from_user, id);
            state
                .audit(audit(
                    SUCCESS,
                    json!({"from": o.from_user.to_string(), "to": o.to_user.to_string()}),
                ))
                .await;
            Ok(Json(MemberView::from(&member)))
        }
        Err(e) => {
            let reason = match &e {
                StoreError::NotFound => "no offer for this user",
                StoreError::OfferExpired => "expired",
                StoreError::OffererNotOwner => "offerer no longer owner",
                _ => return Err(e.into()),
            };
            state.audit(audit(FAILURE, json!({"reason": reason}))).await;
            Err(e.into())
        }
    }
}
