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

/// The served document: [`with_access`], with every problem answer the request flow can
/// give any operation documented on it ([`complete_problems`]).
pub fn served(routes: &[RouteSpec]) -> serde_json::Value {
    let mut doc = serde_json::to_value(with_access(routes)).unwrap_or_default();
    complete_problems(&mut doc);
    doc
}

const PROBLEM_REF: &str = "#/components/schemas/Problem";
const PROBLEM_JSON: &str = "application/problem+json";

/// Problem answers are `application/problem+json`, and the ones any operation may give
/// because of the request flow (a malformed request, the rate limits, the timeout; a body
/// too large or of another type; no credentials, no capability, no such tenant) are listed
/// on every operation they apply to, so a client (or a fuzzer) finds each answer documented.
fn complete_problems(doc: &mut serde_json::Value) {
    use serde_json::{json, Value};
    let problem = |description: &str| json!({"description": description, "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}});
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            let access = op
                .get("x-bastion-access")
                .and_then(Value::as_str)
                .unwrap_or("public")
                .to_owned();
            let has_body = op.contains_key("requestBody");
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            for r in responses.values_mut() {
                let Some(content) = r.get_mut("content").and_then(Value::as_object_mut) else {
                    continue;
                };
                let is_problem = content
                    .get("application/json")
                    .is_some_and(|c| c["schema"]["$ref"] == PROBLEM_REF);
                if is_problem {
                    if let Some(c) = content.remove("application/json") {
                        content.insert(PROBLEM_JSON.into(), c);
                    }
                }
            }
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| problem(description));
            };
            add("400", "malformed request");
            add(
                "429",
                "a rate limit reached: retry after the Retry-After header's seconds",
            );
            add(
                "503",
                "the request took too long, or the service is not ready",
            );
            if has_body {
                add("413", "the body is too large");
                add("415", "the body is not JSON");
                add("422", "the body is JSON but not a valid request");
            }
            if access != "public" {
                add("401", "no valid credentials");
                add(
                    "403",
                    "the credentials do not hold what the operation requires",
                );
                add(
                    "404",
                    "no such item, or a tenant the caller does not belong to",
                );
            }
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "health", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn document(State(state): State<AppState>) -> Json<serde_json::Value> {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    let doc = DOC.get_or_init(|| served(&super::route_table(state.clone())));
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
