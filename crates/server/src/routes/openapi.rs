//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use crate::routes::RouteSpec;
use crate::routes::{
    api_keys, assistant_settings, assistants, audit, auth, conversations, device_ws, devices,
    domains, feedback, health, mcp_endpoint, mcp_servers, me, members, memories, mfa, mqtt_hooks,
    oauth, openai, ota, ownership, provider_keys, roles, scoped_tokens, sessions, tools, traces,
    views, workspaces,
};
use crate::state::AppState;
use axum::extract::State;
use axum::http::Method;
use axum::Json;
use std::sync::OnceLock;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "bastion", description = "A secure, multi-tenant runtime for AI assistants."),
    paths(
        health::healthz, health::readyz, health::metrics, document,
        auth::login, auth::login_mfa, auth::signup, oauth::start, oauth::callback,
        me::get, me::delete,
        sessions::refresh, sessions::logout, sessions::list, sessions::revoke, sessions::revoke_all,
        sessions::change_password, mfa::enrol, mfa::confirm, mfa::disable,
        workspaces::list, workspaces::create, workspaces::get, workspaces::update, workspaces::delete,
        workspaces::list_assistants, workspaces::create_assistant, audit::list,
        assistants::list, assistants::get, assistants::update, assistants::delete,
        domains::list, domains::add, domains::remove,
        members::list, members::invite, members::set_role, members::remove,
        members::list_invitations, members::revoke_invitation,
        ownership::offer, ownership::pending, ownership::cancel, ownership::accept,
        roles::list, roles::create, roles::update, roles::delete,
        api_keys::list, api_keys::create, api_keys::get, api_keys::revoke,
        scoped_tokens::issue,
        provider_keys::list, provider_keys::create, provider_keys::get, provider_keys::update,
        provider_keys::delete,
        assistant_settings::get, assistant_settings::put,
        conversations::create, conversations::list, conversations::get, conversations::delete,
        conversations::post_message, conversations::websocket, traces::list,
        feedback::put, feedback::list, memories::list, memories::add, memories::delete,
        openai::chat_completions, openai::models,
        tools::list, tools::create, tools::get, tools::update, tools::delete,
        tools::get_egress, tools::put_egress, tools::list_approvals, tools::get_approval,
        tools::decide, tools::calls,
        mcp_servers::list, mcp_servers::create, mcp_servers::get, mcp_servers::delete,
        mcp_servers::sync, mcp_endpoint::issue, mcp_endpoint::get, mcp_endpoint::revoke,
        mcp_endpoint::attach,
        ota::handshake, ota::activate, device_ws::connect, mqtt_hooks::auth, mqtt_hooks::acl,
        devices::list, devices::get, devices::bind, devices::register, devices::approve,
        devices::revoke, devices::unbind, devices::get_policy, devices::put_policy, devices::events,
    ),
    components(schemas(crate::error::Problem, conversations::TurnStarted, conversations::TurnDelta, conversations::TurnDone, crate::chat::tools::ToolEvent, views::UserView, bastion_core::Capability, bastion_core::Role)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document with each operation's access rule from the route table as
/// `x-bastion-access` (so clients and tests can see what every route requires).
pub fn with_access(routes: &[RouteSpec]) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for r in routes {
        let Some(item) = doc.paths.paths.get_mut(r.path) else {
            continue;
        };
        let op = match r.method {
            Method::GET => item.get.as_mut(),
            Method::POST => item.post.as_mut(),
            Method::PUT => item.put.as_mut(),
            Method::PATCH => item.patch.as_mut(),
            Method::DELETE => item.delete.as_mut(),
            _ => None,
        };
        if let Some(op) = op {
            let ext = op.extensions.get_or_insert_with(Default::default);
            ext.merge(
                ExtensionsBuilder::new()
                    .add("x-bastion-access", r.access.to_string())
                    .build(),
            );
        }
    }
    doc
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "health", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn document(State(state): State<AppState>) -> Json<serde_json::Value> {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    let doc = DOC.get_or_init(|| {
        serde_json::to_value(with_access(&super::route_table(state.clone()))).unwrap_or_default()
    });
    Json(doc.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[tokio::test]
    async fn the_route_table_and_the_openapi_document_list_the_same_operations() {
        let dir = tempfile::tempdir().unwrap();
        let store = bastion_store::Store::open(&bastion_store::Store::sqlite_url(dir.path()))
            .await
            .unwrap();
        let state = AppState::new(
            store,
            crate::Settings::default(),
            &bastion_auth::signing_key::SigningKeys {
                current: zeroize::Zeroizing::new(vec![1u8; 32]),
                retired: Vec::new(),
            },
            &[2u8; 32],
            &[],
            None,
            crate::metrics_handle(),
        )
        .unwrap();
        let table = super::super::route_table(state);
        // The Control UI's pages are routes of the table but not of the API's contract.
        let routed: BTreeSet<(String, String)> = table
            .iter()
            .filter(|r| !r.path.starts_with("/ui"))
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        let api_routes = table.iter().filter(|r| !r.path.starts_with("/ui")).count();
        assert_eq!(routed.len(), api_routes, "a route is registered twice");
        let doc = serde_json::to_value(with_access(&table)).unwrap();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                documented.insert((method.to_uppercase(), path.clone()));
                assert!(
                    op["x-bastion-access"].is_string(),
                    "{method} {path} has no access rule"
                );
            }
        }
        assert_eq!(routed, documented);
    }
}
