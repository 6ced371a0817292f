//! The pages, each registered with the access rule of the API data it shows.

mod audit;
mod chat;
mod conversations;
mod devices;
mod home;
mod keys;
pub(super) mod login;
mod members;
mod overview;
mod settings;
mod tools;

use crate::routes::Api;
use crate::ui::assets;
use axum::http::Method as M;
use bastion_core::{Access, Capability as C};

pub fn register(api: Api) -> Api {
    use Access::*;
    api.route(M::GET, "/ui", Public, home::to_home)
        .route(M::GET, "/ui/", Authenticated, home::get)
        .route(M::GET, "/ui/login", Public, login::get)
        .route(M::GET, "/ui/static/{digest}/{name}", Public, assets::serve)
        .route(
            M::GET,
            "/ui/assistants/{assistant_id}",
            AssistantMember,
            overview::get,
        )
        .route(
            M::GET,
            "/ui/assistants/{assistant_id}/chat",
            Assistant(C::Chat),
            chat::get,
        )
        .route(
            M::GET,
            "/ui/assistants/{assistant_id}/conversations",
            Assistant(C::ConversationsRead),
            conversations::list,
        )
        .route(
            M::GET,
            "/ui/assistants/{assistant_id}/conversations/{conversation_id}",
            Assistant(C::ConversationsRead),
            conversations::get,
        )
        .route(
            M::GET,
            "/ui/assistants/{assistant_id}/members",
            Assistant(C::MembersManage),
            members::get,
        )
        .route(
            M::GET,
            "/ui/assistants/{assistant_id}/api-keys",
            Assistant(C::KeysManage),
            keys::api_keys,
        )
        .route(
            M::GET,
            "/ui/assistants/{assistant_id}/tools",
            Assistant(C::ToolsManage),
            tools::list,
        )
        .route(
            M::GET,
            "/ui/assistants/{assistant_id}/mcp-servers",
            Assistant(C::McpManage),
            tools::servers,
        )
        .route(
            M::GET,
            "/ui/assistants/{assistant_id}/approvals",
            Assistant(C::ToolsApprove),
            tools::approvals,
        )
        .route(
            M::GET,
            "/ui/assistants/{assistant_id}/devices",
            Assistant(C::DevicesManage),
            devices::get,
        )
        .route(
            M::GET,
            "/ui/assistants/{assistant_id}/settings",
            Assistant(C::SettingsManage),
            settings::get,
        )
        .route(
            M::GET,
            "/ui/workspaces/{workspace_id}/provider-keys",
            Workspace(C::KeysManage),
            keys::provider_keys,
        )
        .route(
            M::GET,
            "/ui/workspaces/{workspace_id}/audit",
            Workspace(C::AuditRead),
            audit::get,
        )
}
