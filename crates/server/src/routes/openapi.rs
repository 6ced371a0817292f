//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use crate::routes::{assistants, audit, auth, domains, health, me, members, views, workspaces};
use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "bastion", description = "A secure, multi-tenant runtime for AI assistants."),
    paths(
        health::healthz, health::readyz, health::metrics, document,
        auth::login, auth::signup, me::get, me::delete,
        workspaces::list, workspaces::create, workspaces::get, workspaces::update, workspaces::delete,
        workspaces::list_assistants, workspaces::create_assistant, audit::list,
        assistants::list, assistants::get, assistants::update, assistants::delete,
        domains::list, domains::add, domains::remove,
        members::list, members::invite, members::set_role, members::remove,
        members::list_invitations, members::revoke_invitation,
    ),
    components(schemas(crate::error::Problem, views::UserView, bastion_core::Capability, bastion_core::Role)),
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

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "health", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
