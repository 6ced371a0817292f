//! The route table. Every route is registered through [`Api::route`], which requires its
//! [`Access`] rule and puts the request flow's gate in front of its handler; the same table
//! is listed by [`route_table`] and checked against the OpenAPI document by a test.

pub mod api_keys;
pub mod assistant_settings;
pub mod assistants;
pub mod audit;
pub mod auth;
pub mod conversations;
pub mod device_ws;
pub mod devices;
pub mod domains;
pub mod feedback;
pub mod health;
pub mod mcp_endpoint;
pub mod mcp_servers;
pub mod me;
pub mod members;
pub mod memories;
pub mod mfa;
pub mod mqtt_hooks;
pub mod oauth;
pub mod openai;
pub mod openapi;
pub mod ota;
pub mod ownership;
pub mod provider_keys;
pub mod roles;
pub mod scoped_tokens;
pub mod sessions;
pub mod tools;
pub mod traces;
pub mod views;
pub mod workspaces;

use crate::flow::{self, Gate};
use crate::state::AppState;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter};
use axum::Router;
use bastion_core::{Access, Capability as C};

/// One row of the route table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

pub struct Api {
    state: AppState,
    router: Router<AppState>,
    table: Vec<RouteSpec>,
}

impl Api {
    pub(crate) fn new(state: AppState) -> Self {
        Api {
            state,
            router: Router::new(),
            table: Vec::new(),
        }
    }

    pub(crate) fn route<H, T>(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        handler: H,
    ) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
        let gate = Gate {
            state: self.state.clone(),
            access,
        };
        let endpoint =
            on(filter, handler).route_layer(axum::middleware::from_fn_with_state(gate, flow::gate));
        self.router = self.router.route(path, endpoint);
        self.table.push(RouteSpec {
            method,
            path,
            access,
        });
        self
    }
}

fn api(state: AppState) -> Api {
    use Access::*;
    use Method as M;
    Api::new(state)
        .route(M::GET, "/healthz", Public, health::healthz)
        .route(M::GET, "/readyz", Public, health::readyz)
        .route(M::GET, "/metrics", Public, health::metrics)
        .route(M::GET, "/openapi.json", Public, openapi::document)
        .route(M::POST, "/api/v1/auth/login", Public, auth::login)
        .route(M::POST, "/api/v1/auth/signup", Public, auth::signup)
        .route(M::POST, "/api/v1/auth/login/mfa", Public, auth::login_mfa)
        .route(
            M::GET,
            "/api/v1/auth/oauth/{provider}/start",
            Public,
            oauth::start,
        )
        .route(
            M::GET,
            "/api/v1/auth/oauth/{provider}/callback",
            Public,
            oauth::callback,
        )
        .route(M::POST, "/api/v1/auth/refresh", Public, sessions::refresh)
        .route(
            M::POST,
            "/api/v1/auth/tokens",
            Authenticated,
            scoped_tokens::issue,
        )
        .route(
            M::POST,
            "/api/v1/auth/logout",
            Authenticated,
            sessions::logout,
        )
        .route(
            M::GET,
            "/api/v1/auth/sessions",
            Authenticated,
            sessions::list,
        )
        .route(
            M::DELETE,
            "/api/v1/auth/sessions",
            Authenticated,
            sessions::revoke_all,
        )
        .route(
            M::DELETE,
            "/api/v1/auth/sessions/{session_id}",
            Authenticated,
            sessions::revoke,
        )
        .route(
            M::POST,
            "/api/v1/auth/password",
            Authenticated,
            sessions::change_password,
        )
        .route(M::POST, "/api/v1/auth/mfa/totp", Authenticated, mfa::enrol)
        .route(
            M::POST,
            "/api/v1/auth/mfa/totp/confirm",
            Authenticated,
            mfa::confirm,
        )
        .route(
            M::POST,
            "/api/v1/auth/mfa/totp/disable",
            Authenticated,
            mfa::disable,
        )
        .route(M::GET, "/api/v1/me", Authenticated, me::get)
        .route(M::DELETE, "/api/v1/me", Authenticated, me::delete)
        .route(
            M::GET,
            "/api/v1/workspaces",
            Authenticated,
            workspaces::list,
        )
        .route(M::POST, "/api/v1/workspaces", Operator, workspaces::create)
        .route(
            M::GET,
            "/api/v1/workspaces/{workspace_id}",
            WorkspaceMember,
            workspaces::get,
        )
        .route(
            M::PATCH,
            "/api/v1/workspaces/{workspace_id}",
            Workspace(C::SettingsManage),
            workspaces::update,
        )
        .route(
            M::DELETE,
            "/api/v1/workspaces/{workspace_id}",
            WorkspaceOwner,
            workspaces::delete,
        )
        .route(
            M::GET,
            "/api/v1/workspaces/{workspace_id}/assistants",
            WorkspaceMember,
            workspaces::list_assistants,
        )
        .route(
            M::POST,
            "/api/v1/workspaces/{workspace_id}/assistants",
            Workspace(C::SettingsManage),
            workspaces::create_assistant,
        )
        .route(
            M::GET,
            "/api/v1/workspaces/{workspace_id}/audit",
            Workspace(C::AuditRead),
            audit::list,
        )
        .route(
            M::GET,
            "/api/v1/workspaces/{workspace_id}/provider-keys",
            Workspace(C::KeysManage),
            provider_keys::list,
        )
        .route(
            M::POST,
            "/api/v1/workspaces/{workspace_id}/provider-keys",
            Workspace(C::KeysManage),
            provider_keys::create,
        )
        .route(
            M::GET,
            "/api/v1/workspaces/{workspace_id}/provider-keys/{provider_key_id}",
            Workspace(C::KeysManage),
            provider_keys::get,
        )
        .route(
            M::PATCH,
            "/api/v1/workspaces/{workspace_id}/provider-keys/{provider_key_id}",
            Workspace(C::KeysManage),
            provider_keys::update,
        )
        .route(
            M::DELETE,
            "/api/v1/workspaces/{workspace_id}/provider-keys/{provider_key_id}",
            Workspace(C::KeysManage),
            provider_keys::delete,
        )
        .route(
            M::GET,
            "/api/v1/assistants",
            Authenticated,
            assistants::list,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}",
            AssistantMember,
            assistants::get,
        )
        .route(
            M::PATCH,
            "/api/v1/assistants/{assistant_id}",
            Assistant(C::SettingsManage),
            assistants::update,
        )
        .route(
            M::DELETE,
            "/api/v1/assistants/{assistant_id}",
            AssistantOwner,
            assistants::delete,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/domains",
            AssistantMember,
            domains::list,
        )
        .route(
            M::POST,
            "/api/v1/assistants/{assistant_id}/domains",
            Assistant(C::SettingsManage),
            domains::add,
        )
        .route(
            M::DELETE,
            "/api/v1/assistants/{assistant_id}/domains/{domain}",
            Assistant(C::SettingsManage),
            domains::remove,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/members",
            Assistant(C::MembersManage),
            members::list,
        )
        .route(
            M::POST,
            "/api/v1/assistants/{assistant_id}/members",
            Assistant(C::MembersManage),
            members::invite,
        )
        .route(
            M::PATCH,
            "/api/v1/assistants/{assistant_id}/members/{user_id}",
            Assistant(C::MembersManage),
            members::set_role,
        )
        .route(
            M::DELETE,
            "/api/v1/assistants/{assistant_id}/members/{user_id}",
            Assistant(C::MembersManage),
            members::remove,
        )
        .route(
            M::POST,
            "/api/v1/assistants/{assistant_id}/ownership-transfer",
            AssistantOwner,
            ownership::offer,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/ownership-transfer",
            AssistantOwner,
            ownership::pending,
        )
        .route(
            M::DELETE,
            "/api/v1/assistants/{assistant_id}/ownership-transfer",
            AssistantOwner,
            ownership::cancel,
        )
        .route(
            M::POST,
            "/api/v1/assistants/{assistant_id}/ownership-transfer/accept",
            AssistantPerson,
            ownership::accept,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/roles",
            Assistant(C::MembersManage),
            roles::list,
        )
        .route(
            M::POST,
            "/api/v1/assistants/{assistant_id}/roles",
            Assistant(C::MembersManage),
            roles::create,
        )
        .route(
            M::PATCH,
            "/api/v1/assistants/{assistant_id}/roles/{role_id}",
            Assistant(C::MembersManage),
            roles::update,
        )
        .route(
            M::DELETE,
            "/api/v1/assistants/{assistant_id}/roles/{role_id}",
            Assistant(C::MembersManage),
            roles::delete,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/api-keys",
            Assistant(C::KeysManage),
            api_keys::list,
        )
        .route(
            M::POST,
            "/api/v1/assistants/{assistant_id}/api-keys",
            Assistant(C::KeysManage),
            api_keys::create,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/api-keys/{key_id}",
            Assistant(C::KeysManage),
            api_keys::get,
        )
        .route(
            M::DELETE,
            "/api/v1/assistants/{assistant_id}/api-keys/{key_id}",
            Assistant(C::KeysManage),
            api_keys::revoke,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/invitations",
            Assistant(C::MembersManage),
            members::list_invitations,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/settings",
            Assistant(C::SettingsManage),
            assistant_settings::get,
        )
        .route(
            M::PUT,
            "/api/v1/assistants/{assistant_id}/settings",
            Assistant(C::SettingsManage),
            assistant_settings::put,
        )
        .route(
            M::POST,
            "/api/v1/assistants/{assistant_id}/conversations",
            Assistant(C::Chat),
            conversations::create,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/conversations",
            Assistant(C::ConversationsRead),
            conversations::list,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/conversations/{conversation_id}",
            Assistant(C::ConversationsRead),
            conversations::get,
        )
        .route(
            M::DELETE,
            "/api/v1/assistants/{assistant_id}/conversations/{conversation_id}",
            Assistant(C::Chat),
            conversations::delete,
        )
        .route(
            M::POST,
            "/api/v1/assistants/{assistant_id}/conversations/{conversation_id}/messages",
            Assistant(C::Chat),
            conversations::post_message,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/conversations/{conversation_id}/ws",
            Assistant(C::Chat),
            conversations::websocket,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/conversations/{conversation_id}/traces",
            Assistant(C::TracesRead),
            traces::list,
        )
        .route(
            M::PUT,
            "/api/v1/assistants/{assistant_id}/conversations/{conversation_id}/messages/{message_id}/feedback",
            Assistant(C::Chat),
            feedback::put,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/feedback",
            Assistant(C::FeedbackRead),
            feedback::list,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/memories",
            Assistant(C::Chat),
            memories::list,
        )
        .route(
            M::POST,
            "/api/v1/assistants/{assistant_id}/memories",
            Assistant(C::Chat),
            memories::add,
        )
        .route(
            M::DELETE,
            "/api/v1/assistants/{assistant_id}/memories/{memory_id}",
            Assistant(C::Chat),
            memories::delete,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/tools",
            Assistant(C::ToolsManage),
            tools::list,
        )
        .route(
            M::POST,
            "/api/v1/assistants/{assistant_id}/tools",
            Assistant(C::ToolsManage),
            tools::create,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/tools/{tool_id}",
            Assistant(C::ToolsManage),
            tools::get,
        )
        .route(
            M::PUT,
            "/api/v1/assistants/{assistant_id}/tools/{tool_id}",
            Assistant(C::ToolsManage),
            tools::update,
        )
        .route(
            M::DELETE,
            "/api/v1/assistants/{assistant_id}/tools/{tool_id}",
            Assistant(C::ToolsManage),
            tools::delete,
        )
        .route(M::POST, "/ota/", Public, ota::handshake)
        .route(M::POST, "/ota/activate", Public, ota::activate)
        .route(M::GET, "/device/ws", Public, device_ws::connect)
        .route(M::POST, "/mqtt/hooks/auth", Public, mqtt_hooks::auth)
        .route(M::POST, "/mqtt/hooks/acl", Public, mqtt_hooks::acl)
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/devices",
            Assistant(C::DevicesManage),
            devices::list,
        )
        .route(
            M::POST,
            "/api/v1/assistants/{assistant_id}/devices",
            Assistant(C::DevicesManage),
            devices::register,
        )
        .route(
            M::POST,
            "/api/v1/assistants/{assistant_id}/devices/bind",
            Assistant(C::DevicesManage),
            devices::bind,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/devices/events",
            Assistant(C::DevicesManage),
            devices::events,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/devices/policy",
            Assistant(C::DevicesManage),
            devices::get_policy,
        )
        .route(
            M::PUT,
            "/api/v1/assistants/{assistant_id}/devices/policy",
            Assistant(C::DevicesManage),
            devices::put_policy,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/devices/{device_id}",
            Assistant(C::DevicesManage),
            devices::get,
        )
        .route(
            M::DELETE,
            "/api/v1/assistants/{assistant_id}/devices/{device_id}",
            Assistant(C::DevicesManage),
            devices::unbind,
        )
        .route(
            M::POST,
            "/api/v1/assistants/{assistant_id}/devices/{device_id}/approve",
            Assistant(C::DevicesManage),
            devices::approve,
        )
        .route(
            M::POST,
            "/api/v1/assistants/{assistant_id}/devices/{device_id}/revoke",
            Assistant(C::DevicesManage),
            devices::revoke,
        )
        .route(M::GET, "/mcp/ws", Public, mcp_endpoint::attach)
        .route(
            M::POST,
            "/api/v1/assistants/{assistant_id}/mcp-endpoint",
            Assistant(C::McpManage),
            mcp_endpoint::issue,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/mcp-endpoint",
            Assistant(C::McpManage),
            mcp_endpoint::get,
        )
        .route(
            M::DELETE,
            "/api/v1/assistants/{assistant_id}/mcp-endpoint",
            Assistant(C::McpManage),
            mcp_endpoint::revoke,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/mcp-servers",
            Assistant(C::McpManage),
            mcp_servers::list,
        )
        .route(
            M::POST,
            "/api/v1/assistants/{assistant_id}/mcp-servers",
            Assistant(C::McpManage),
            mcp_servers::create,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/mcp-servers/{server_id}",
            Assistant(C::McpManage),
            mcp_servers::get,
        )
        .route(
            M::DELETE,
            "/api/v1/assistants/{assistant_id}/mcp-servers/{server_id}",
            Assistant(C::McpManage),
            mcp_servers::delete,
        )
        .route(
            M::POST,
            "/api/v1/assistants/{assistant_id}/mcp-servers/{server_id}/sync",
            Assistant(C::McpManage),
            mcp_servers::sync,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/egress",
            Assistant(C::SettingsManage),
            tools::get_egress,
        )
        .route(
            M::PUT,
            "/api/v1/assistants/{assistant_id}/egress",
            Assistant(C::SettingsManage),
            tools::put_egress,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/tool-approvals",
            Assistant(C::ToolsApprove),
            tools::list_approvals,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/tool-approvals/{approval_id}",
            Assistant(C::ToolsApprove),
            tools::get_approval,
        )
        .route(
            M::POST,
            "/api/v1/assistants/{assistant_id}/tool-approvals/{approval_id}/decision",
            Assistant(C::ToolsApprove),
            tools::decide,
        )
        .route(
            M::GET,
            "/api/v1/assistants/{assistant_id}/conversations/{conversation_id}/tool-calls",
            Assistant(C::TracesRead),
            tools::calls,
        )
        .route(
            M::POST,
            "/v1/chat/completions",
            ApiKey(C::Chat),
            openai::chat_completions,
        )
        .route(M::GET, "/v1/models", ApiKey(C::Chat), openai::models)
        .route(
            M::DELETE,
            "/api/v1/assistants/{assistant_id}/invitations/{invitation_id}",
            Assistant(C::MembersManage),
            members::revoke_invitation,
        )
}

/// The Control UI's pages: routes of the same kind, behind the same gate.
fn ui(state: AppState) -> Api {
    crate::ui::register(Api::new(state))
}

/// The routes, their methods and access rules, in registration order (the API's, then the
/// Control UI's pages).
pub fn route_table(state: AppState) -> Vec<RouteSpec> {
    let mut table = api(state.clone()).table;
    table.extend(ui(state).table);
    table
}

/// The router of every route, with the per-route gate; global layers are added by `app`.
pub fn router(state: AppState) -> Router {
    let api = api(state.clone());
    let ui = crate::ui::wrap(ui(state.clone()).router, &state);
    api.router
        .merge(ui)
        .fallback(flow::not_found)
        .method_not_allowed_fallback(flow::method_not_allowed)
        .with_state(state)
}
