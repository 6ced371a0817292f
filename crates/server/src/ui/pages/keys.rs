//! Credentials: the assistant's API keys (keys.manage; a new key's secret is shown once)
//! and the workspace's provider keys (keys.manage on the workspace; only their last four
//! characters are ever shown).

use crate::error::ApiResult;
use crate::flow::{Caller, InWorkspace};
use crate::routes::{api_keys, provider_keys};
use crate::state::AppState;
use crate::ui::frame::{AssistantPage, Frame};
use crate::ui::{widgets, Page};
use axum::extract::{Query, State};
use axum::Json;
use bastion_core::Capability;
use maud::html;
use serde::Deserialize;

/// `GET /ui/assistants/{assistant_id}/api-keys`.
pub async fn api_keys(AssistantPage { state, at, frame }: AssistantPage) -> ApiResult<Page> {
    let Json(list) = api_keys::list(State(state.clone()), at.clone()).await?;
    let base = format!("/api/v1/assistants/{}/api-keys", at.assistant.id);
    let held = at.scope.holding().capabilities;
    let rows = list
        .iter()
        .map(widgets::json)
        .map(|k| {
            let active = widgets::text(&k, "status") == "active";
            html! { tr {
                td { (widgets::text(&k, "name")) }
                td { code { (widgets::text(&k, "prefix")) "…" } }
                td { (widgets::text(&k, "capabilities")) }
                td { (widgets::text(&k, "status")) }
                td.num { (widgets::text(&k, "monthly_spend_cap_usd")) }
                td { (widgets::when(&k, "expires_at")) }
                td { (widgets::when(&k, "last_used_at")) }
                td { @if active { (widgets::action("Revoke", "DELETE", &format!("{base}/{}", widgets::text(&k, "id")), None, "Revoke this key? Programs using it stop at once.")) } }
            } }
        })
        .collect();
    let content = html! {
        (widgets::table("API keys", &["Name", "Key", "Capabilities", "Status", "Spend cap USD/month", "Expires", "Last used", ""], rows, "No API keys."))
        h2 { "New API key" }
        form #api-key-form data-api=(base) data-method="POST" data-done="secret" data-secret="key"
            data-secret-label="The new key: shown once, store it now" {
            (widgets::field("Name", "name", "text", true, ""))
            fieldset {
                legend { "Capabilities (only those you hold)" }
                @for cap in Capability::ALL.iter().filter(|c| held.contains(**c)) {
                    label.check { input type="checkbox" name="capabilities" value=(cap.as_str()) data-kind="list" checked[*cap == Capability::Chat]; (cap.as_str()) }
                }
            }
            (widgets::field("Monthly spend cap (USD)", "monthly_spend_cap_usd", "number", false, ""))
            (widgets::field("Requests per minute", "rate_limit_per_minute", "number", false, ""))
            (widgets::field("Expires at (RFC 3339, e.g. 2027-01-01T00:00:00Z)", "expires_at", "text", false, ""))
            button type="submit" { "Create key" }
            (widgets::outcome())
        }
    };
    Ok(Page(frame.page("API keys", "API keys", content)))
}

#[derive(Deserialize)]
pub struct From {
    /// The assistant whose navigation the page keeps.
    from: Option<String>,
}

impl From {
    pub fn assistant(&self) -> Option<bastion_core::AssistantId> {
        self.from.as_deref().and_then(|a| a.parse().ok())
    }
}

/// `GET /ui/workspaces/{workspace_id}/provider-keys`.
pub async fn provider_keys(
    State(state): State<AppState>,
    caller: Caller,
    ws: InWorkspace,
    Query(from): Query<From>,
) -> ApiResult<Page> {
    let workspace = ws.scope.workspace_id();
    let frame = Frame::in_workspace(&state, &caller, workspace, from.assistant()).await?;
    let Json(list) = provider_keys::list(State(state.clone()), ws).await?;
    let base = format!("/api/v1/workspaces/{workspace}/provider-keys");
    let rows = list
        .iter()
        .map(widgets::json)
        .map(|k| {
            let path = format!("{base}/{}", widgets::text(&k, "id"));
            let status = widgets::text(&k, "status");
            let promote = serde_json::json!({"status": "active"});
            html! { tr {
                td { (widgets::text(&k, "label")) }
                td { (widgets::text(&k, "provider")) }
                td { code { "…" (widgets::text(&k, "last4")) } }
                td { (widgets::text(&k, "base_url")) }
                td { (widgets::text(&k, "status")) }
                td.num { (widgets::text(&k, "spent_this_month_usd")) " / " (widgets::text(&k, "monthly_spend_cap_usd")) }
                td {
                    @if status == "standby" { (widgets::action("Make active", "PATCH", &path, Some(&promote), "")) }
                    @if status != "revoked" { (widgets::action("Revoke", "DELETE", &path, None, "Revoke this provider key? Its secret is erased and assistants using it stop answering.")) }
                }
            } }
        })
        .collect();
    let providers = [
        ("openai", "OpenAI"),
        ("anthropic", "Anthropic"),
        (
            "openai-compatible",
            "OpenAI-compatible (vLLM, Ollama, llama.cpp, OpenRouter…)",
        ),
    ]
    .map(|(v, l)| (v.to_owned(), l.to_owned()));
    let content = html! {
        (widgets::table("Provider keys of the workspace", &["Label", "Provider", "Key", "Base URL", "Status", "Spent / cap USD this month", ""], rows, "No provider keys."))
        h2 { "Add a provider key" }
        form #provider-key-form data-api=(base) data-method="POST" data-done="reload" {
            (widgets::field("Label", "label", "text", true, ""))
            (widgets::select("Provider", "provider", &providers, "openai"))
            (widgets::field("Secret key", "secret", "password", true, ""))
            (widgets::field("Base URL (for OpenAI-compatible servers)", "base_url", "url", false, ""))
            (widgets::field("Monthly spend cap (USD)", "monthly_spend_cap_usd", "number", false, ""))
            button type="submit" { "Add key" }
            (widgets::outcome())
        }
    };
    Ok(Page(frame.page("Provider keys", "Provider keys", content)))
}
