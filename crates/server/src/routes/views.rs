//! The JSON shapes of the API. Responses carry only fields a caller may read: no password
//! hashes, no token hashes, no other tenant's ids.

use bastion_core::{Capability, Role};
use bastion_store::assistants::Assistant;
use bastion_store::audit::Event;
use bastion_store::invitations::Invitation;
use bastion_store::memberships::Member;
use bastion_store::users::User;
use bastion_store::workspaces::Workspace;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// RFC 3339 UTC from unix milliseconds.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[derive(Serialize, ToSchema)]
pub struct UserView {
    #[schema(format = Uuid)]
    pub id: String,
    pub email: String,
    pub is_operator: bool,
    pub created_at: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.to_string(),
            email: u.email.clone(),
            is_operator: u.is_operator,
            created_at: rfc3339(u.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WorkspaceView {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    /// The caller's role in this workspace.
    pub role: Role,
    /// Owners and admins must sign in with a second factor to act in this workspace.
    pub require_mfa: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl WorkspaceView {
    pub fn new(w: &Workspace, role: Role) -> Self {
        WorkspaceView {
            id: w.id.to_string(),
            name: w.name.clone(),
            role,
            require_mfa: w.require_mfa,
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AssistantView {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub workspace_id: String,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Assistant> for AssistantView {
    fn from(a: &Assistant) -> Self {
        AssistantView {
            id: a.id.to_string(),
            workspace_id: a.workspace_id.to_string(),
            slug: a.slug.clone(),
            name: a.name.clone(),
            description: a.description.clone(),
            created_at: rfc3339(a.created_at),
            updated_at: rfc3339(a.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MemberView {
    #[schema(format = Uuid)]
    pub user_id: String,
    pub email: String,
    /// A built-in role (`owner`, `admin`, `editor`, `operator`, `viewer`, `member`) or the
    /// name of one of the assistant's custom roles.
    pub role: String,
    pub capabilities: Vec<Capability>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Member> for MemberView {
    fn from(m: &Member) -> Self {
        MemberView {
            user_id: m.user_id.to_string(),
            email: m.email.clone(),
            role: m.role.name().to_string(),
            capabilities: m.role.capabilities().to_vec(),
            created_at: rfc3339(m.created_at),
            updated_at: rfc3339(m.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct InvitationView {
    #[schema(format = Uuid)]
    pub id: String,
    pub email: String,
    /// A built-in role or the name of a custom role.
    pub role: String,
    pub created_at: String,
    pub expires_at: String,
}

impl From<&Invitation> for InvitationView {
    fn from(i: &Invitation) -> Self {
        InvitationView {
            id: i.id.to_string(),
            email: i.email.clone(),
            role: i.role.name().to_string(),
            created_at: rfc3339(i.created_at),
            expires_at: rfc3339(i.expires_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DomainView {
    pub domain: String,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEventView {
    pub seq: i64,
    pub id: String,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub ip: String,
    pub detail: serde_json::Value,
    pub hash: String,
}

impl From<&Event> for AuditEventView {
    fn from(e: &Event) -> Self {
        AuditEventView {
            seq: e.seq,
            id: e.id.clone(),
            at: rfc3339(e.at),
            actor: e.actor.clone(),
            action: e.action.clone(),
            target: e.target.clone(),
            outcome: e.outcome.clone(),
            ip: e.ip.clone(),
            detail: serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null),
            hash: e.hash.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEventView>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// `token` (default) returns the tokens in the body for API clients; `cookie` sets them
    /// as `HttpOnly` cookies for browsers and returns a CSRF token instead.
    #[serde(default)]
    pub mode: SessionMode,
}

#[derive(Deserialize, ToSchema, Clone, Copy, Default, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum SessionMode {
    #[default]
    Token,
    Cookie,
}

/// A signed-in session. In token mode `access_token` and `refresh_token` are set; in cookie
/// mode they travel in cookies and `csrf_token` must accompany every state-changing request
/// as the `X-CSRF-Token` header.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// `Bearer`, or `cookie` in cookie mode.
    pub token_type: &'static str,
    /// Seconds the access token lives.
    pub expires_in: i64,
    /// Opaque, single-use: each refresh returns its successor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Seconds the refresh token lives unused (the session may end sooner, at its absolute expiry).
    pub refresh_expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    #[schema(format = Uuid)]
    pub session_id: String,
}

/// The answer to a password step when the account has MFA: no token, only a challenge
/// to present with a code at `POST /api/v1/auth/login/mfa`.
#[derive(Serialize, ToSchema)]
pub struct MfaChallengeResponse {
    pub mfa_required: bool,
    pub mfa_token: String,
    pub expires_in: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaLoginRequest {
    /// The challenge returned by the password step.
    pub mfa_token: String,
    /// The current 6-digit TOTP code…
    #[serde(default)]
    pub code: Option<String>,
    /// …or one of the recovery codes (each works once).
    #[serde(default)]
    pub recovery_code: Option<String>,
    #[serde(default)]
    pub mode: SessionMode,
}

#[derive(Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// Base32, for typing into an authenticator app. Shown once.
    pub secret: String,
    pub otpauth_uri: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaCodeRequest {
    pub code: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaDisableRequest {
    pub password: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub recovery_code: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RecoveryCodesResponse {
    /// Ten single-use codes, shown once: store them somewhere safe.
    pub recovery_codes: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeRequest {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token; omit it in cookie mode (the cookie carries it).
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub mode: SessionMode,
}

#[derive(Serialize, ToSchema)]
pub struct SessionView {
    #[schema(format = Uuid)]
    pub id: String,
    /// `password`, `password+totp` or `oauth:<provider>`.
    pub method: String,
    pub ip: String,
    pub user_agent: String,
    pub created_at: String,
    /// When its refresh token was last used (access tokens are not tracked per request).
    pub last_used_at: String,
    pub expires_at: String,
    /// The session of the token making this request.
    pub current: bool,
}

impl SessionView {
    pub fn new(s: &bastion_store::sessions::Session, current: bool) -> Self {
        SessionView {
            id: s.id.to_string(),
            method: s.method.clone(),
            ip: s.ip.clone(),
            user_agent: s.user_agent.clone(),
            created_at: rfc3339(s.created_at),
            last_used_at: rfc3339(s.last_used_at),
            expires_at: rfc3339(s.idle_expires_at.min(s.absolute_expires_at)),
            current,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    pub email: String,
    pub password: String,
    /// Required when signup is `invite`: the token the inviter was shown.
    pub invitation_token: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountRequest {
    /// The account's password, to confirm.
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct CustomRoleView {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    pub capabilities: Vec<Capability>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&bastion_store::roles::CustomRole> for CustomRoleView {
    fn from(r: &bastion_store::roles::CustomRole) -> Self {
        CustomRoleView {
            id: r.id.to_string(),
            name: r.name.clone(),
            capabilities: r.capabilities.to_vec(),
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

/// The WebSocket URL of `path` on this request's own host, over `ws` or `wss` as it came.
pub fn ws_url(headers: &axum::http::HeaderMap, secure: bool, path: &str) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if secure { "wss" } else { "ws" };
    format!("{scheme}://{host}{path}")
}
