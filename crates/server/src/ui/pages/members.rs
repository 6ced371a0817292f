//! Members and roles (members.manage): who holds which role, changing it, removing a member,
//! inviting by email, and the invitations still open.

use crate::error::ApiResult;
use crate::routes::{members, roles};
use crate::ui::frame::AssistantPage;
use crate::ui::{widgets, Page};
use axum::extract::State;
use axum::Json;
use bastion_core::{Capability, Role};
use maud::html;

/// `GET /ui/assistants/{assistant_id}/members`.
pub async fn get(AssistantPage { state, at, frame }: AssistantPage) -> ApiResult<Page> {
    let Json(list) = members::list(State(state.clone()), at.clone()).await?;
    let Json(invitations) = members::list_invitations(State(state.clone()), at.clone()).await?;
    let Json(custom) = roles::list(State(state.clone()), at.clone()).await?;
    // Ownership moves only by a transfer the new owner accepts, so it is never offered here.
    let roles: Vec<(String, String)> = Role::ALL
        .iter()
        .filter(|r| **r != Role::Owner)
        .map(|r| (r.as_str().to_owned(), r.as_str().to_owned()))
        .chain(
            custom
                .iter()
                .map(widgets::json)
                .map(|r| (widgets::text(&r, "name"), widgets::text(&r, "name"))),
        )
        .collect();
    let base = format!("/api/v1/assistants/{}", at.assistant.id);
    let rows = list
        .iter()
        .map(widgets::json)
        .map(|m| {
            let user = widgets::text(&m, "user_id");
            let role = widgets::text(&m, "role");
            let path = format!("{base}/members/{user}");
            html! { tr {
                td { (widgets::text(&m, "email")) }
                td {
                    @if role == "owner" { "owner" } @else {
                        form.inline data-api=(path) data-method="PATCH" data-done="reload" {
                            label.visually-hidden for=(format!("role-{user}")) { "Role of " (widgets::text(&m, "email")) }
                            select id=(format!("role-{user}")) name="role" {
                                @for (value, label) in &roles { option value=(value) selected[*value == role] { (label) } }
                            }
                            button type="submit" { "Change" }
                            (widgets::outcome())
                        }
                    }
                }
                td { (widgets::when(&m, "created_at")) }
                td { @if role != "owner" { (widgets::action("Remove", "DELETE", &path, None, "Remove this member?")) } }
            } }
        })
        .collect();
    let invites = invitations
        .iter()
        .map(widgets::json)
        .map(|i| {
            let path = format!("{base}/invitations/{}", widgets::text(&i, "id"));
            html! { tr {
                td { (widgets::text(&i, "email")) }
                td { (widgets::text(&i, "role")) }
                td { (widgets::when(&i, "expires_at")) }
                td { (widgets::action("Revoke", "DELETE", &path, None, "Revoke this invitation?")) }
            } }
        })
        .collect();
    let held = at.scope.holding().capabilities;
    let custom_rows = custom
        .iter()
        .map(widgets::json)
        .map(|r| {
            let path = format!("{base}/roles/{}", widgets::text(&r, "id"));
            html! { tr {
                td { (widgets::text(&r, "name")) }
                td { (widgets::text(&r, "capabilities")) }
                td { (widgets::action("Delete", "DELETE", &path, None, "Delete this role?")) }
            } }
        })
        .collect();
    let content = html! {
        (widgets::table("Members", &["Email", "Role", "Since", ""], rows, "No members."))
        h2 { "Invite" }
        form #invite-form data-api=(format!("{base}/members")) data-method="POST" data-done="secret" data-secret="token"
            data-secret-label="Invitation token for a new user: shown once, hand it to them for sign-up" {
            (widgets::field("Email", "email", "email", true, ""))
            (widgets::select("Role", "role", &roles, "member"))
            button type="submit" { "Invite" }
            (widgets::outcome())
        }
        h2 { "Open invitations" }
        (widgets::table("Open invitations", &["Email", "Role", "Expires", ""], invites, "No open invitations."))
        h2 { "Custom roles" }
        (widgets::table("Custom roles of this assistant", &["Name", "Capabilities", ""], custom_rows, "No custom roles."))
        form #role-form data-api=(format!("{base}/roles")) data-method="POST" data-done="reload" {
            (widgets::field("Name (a-z, 0-9, - and _)", "name", "text", true, ""))
            fieldset {
                legend { "Capabilities (only those you hold)" }
                @for cap in Capability::ALL.iter().filter(|c| held.contains(**c)) {
                    label.check { input type="checkbox" name="capabilities" value=(cap.as_str()) data-kind="list"; (cap.as_str()) }
                }
            }
            button type="submit" { "Create role" }
            (widgets::outcome())
        }
    };
    Ok(Page(frame.page("Members and roles", "Members", content)))
}
