//! Tools (tools.manage), MCP servers (mcp.manage) and the approvals waiting for a decision
//! (tools.approve).

use crate::error::ApiResult;
use crate::json::ApiQuery;
use crate::routes::{mcp_servers, tools};
use crate::ui::frame::AssistantPage;
use crate::ui::{widgets, Page};
use axum::extract::State;
use axum::Json;
use maud::html;
use serde_json::{Map, Value};

/// The fields of a tool that its update (a whole `ToolInput`) takes back.
const INPUT_FIELDS: &[&str] = &[
    "name",
    "kind",
    "builtin",
    "endpoint",
    "description",
    "input_schema",
    "enabled",
    "risk",
    "allowed_roles",
    "allow_api_keys",
    "approval",
    "timeout_ms",
    "max_result_bytes",
    "calls_per_minute",
];

/// The update that turns a tool on or off and changes nothing else.
fn toggled(view: &Value) -> Value {
    let mut body = Map::new();
    for k in INPUT_FIELDS {
        if let Some(v) = view.get(*k).filter(|v| !v.is_null()) {
            body.insert((*k).to_owned(), v.clone());
        }
    }
    // A built-in tool's description and schema are its own; only an HTTP tool sends them.
    if view["kind"] != "http" {
        body.remove("description");
        body.remove("input_schema");
    }
    let enabled = view["enabled"].as_bool().unwrap_or(false);
    body.insert("enabled".into(), Value::Bool(!enabled));
    Value::Object(body)
}

/// An approval rule as words.
fn approval_text(rule: &Value) -> String {
    match (rule["rule"].as_str(), rule["risk"].as_str()) {
        (Some("above"), Some(risk)) => format!("above {risk}"),
        (Some(r), _) => r.to_owned(),
        _ => String::new(),
    }
}

/// `GET /ui/assistants/{assistant_id}/tools`.
pub async fn list(AssistantPage { state, at, frame }: AssistantPage) -> ApiResult<Page> {
    let Json(list) = tools::list(State(state.clone()), at.clone()).await?;
    let base = format!("/api/v1/assistants/{}/tools", at.assistant.id);
    let rows = list
        .iter()
        .map(widgets::json)
        .map(|t| {
            let path = format!("{base}/{}", widgets::text(&t, "id"));
            let enabled = t["enabled"].as_bool().unwrap_or(false);
            html! { tr {
                td { (widgets::text(&t, "name")) }
                td { (widgets::text(&t, "kind")) }
                td { (widgets::text(&t, "risk")) }
                td { (approval_text(&t["approval"])) }
                td { (widgets::text(&t, "allowed_roles")) }
                td { (if enabled { "on" } else { "off" }) @if t["needs_review"] == true { " · " strong { "changed upstream: review" } } }
                td {
                    (widgets::action(if enabled { "Turn off" } else { "Turn on" }, "PUT", &path, Some(&toggled(&t)), ""))
                    (widgets::action("Delete", "DELETE", &path, None, "Delete this tool?"))
                }
            } }
        })
        .collect();
    let builtins: Vec<(String, String)> = crate::chat::tools::builtin_names()
        .into_iter()
        .map(|n| (n.to_owned(), n.to_owned()))
        .collect();
    let risks = ["read", "write", "external"].map(|r| (r.to_owned(), r.to_owned()));
    let approvals = [
        (
            r#"{"rule":"above","risk":"read"}"#,
            "calls of write and external tools wait",
        ),
        (r#"{"rule":"always"}"#, "every call waits"),
        (
            r#"{"rule":"above","risk":"write"}"#,
            "calls of external tools wait",
        ),
        (r#"{"rule":"never"}"#, "no call waits"),
    ]
    .map(|(v, l)| (v.to_owned(), l.to_owned()));
    let content = html! {
        (widgets::table("Tools of this assistant", &["Name", "Kind", "Risk", "Approval", "Roles", "State", ""], rows, "No tools yet."))
        h2 { "Add a built-in tool" }
        form #tool-form data-api=(base) data-method="POST" data-done="reload" {
            input type="hidden" name="kind" value="builtin";
            (widgets::select("Built-in", "builtin", &builtins, "fetch_url"))
            (widgets::field("Name the model sees", "name", "text", true, ""))
            (widgets::select("Risk", "risk", &risks, "external"))
            (widgets::json_select("Approval", "approval", &approvals))
            div.field {
                label for="f-allowed_roles" { "Roles whose conversations may use it (one per line)" }
                textarea #f-allowed_roles name="allowed_roles" data-kind="lines" rows="3" {}
            }
            button type="submit" { "Add tool" }
            (widgets::outcome())
        }
    };
    Ok(Page(frame.page("Tools", "Tools", content)))
}

/// `GET /ui/assistants/{assistant_id}/mcp-servers`.
pub async fn servers(AssistantPage { state, at, frame }: AssistantPage) -> ApiResult<Page> {
    let Json(list) = mcp_servers::list(State(state.clone()), at.clone()).await?;
    let base = format!("/api/v1/assistants/{}/mcp-servers", at.assistant.id);
    let rows = list
        .iter()
        .map(widgets::json)
        .map(|s| {
            let path = format!("{base}/{}", widgets::text(&s, "id"));
            html! { tr {
                td { (widgets::text(&s, "name")) }
                td { code { (widgets::text(&s, "url")) } }
                td { @if !widgets::text(&s, "credential_last4").is_empty() { "…" (widgets::text(&s, "credential_last4")) } }
                td { (widgets::when(&s, "synced_at")) }
                td {
                    (widgets::action("Sync tools", "POST", &format!("{path}/sync"), None, ""))
                    (widgets::action("Remove", "DELETE", &path, None, "Remove this server and its tools?"))
                }
            } }
        })
        .collect();
    let content = html! {
        (widgets::table("MCP servers", &["Name", "Address", "Credential", "Tools read", ""], rows, "No MCP servers."))
        p { "A server's tools arrive turned off; turn them on under Tools once reviewed." }
        h2 { "Connect an MCP server" }
        form #mcp-form data-api=(base) data-method="POST" data-done="reload" {
            (widgets::field("Name", "name", "text", true, ""))
            (widgets::field("Streamable HTTP URL", "url", "url", false, ""))
            (widgets::field("Bearer token (kept in the vault, sent to this server only)", "bearer_token", "password", false, ""))
            button type="submit" { "Connect" }
            (widgets::outcome())
        }
    };
    Ok(Page(frame.page("MCP servers", "MCP servers", content)))
}

/// `GET /ui/assistants/{assistant_id}/approvals`.
pub async fn approvals(AssistantPage { state, at, frame }: AssistantPage) -> ApiResult<Page> {
    let query = tools::ApprovalQuery { status: None };
    let Json(list) =
        tools::list_approvals(State(state.clone()), at.clone(), ApiQuery(query)).await?;
    let base = format!("/api/v1/assistants/{}/tool-approvals", at.assistant.id);
    let rows = list
        .iter()
        .map(widgets::json)
        .map(|a| {
            let path = format!("{base}/{}/decision", widgets::text(&a, "id"));
            html! { tr {
                td { (widgets::text(&a, "tool")) }
                td { code.args { (widgets::text(&a, "arguments")) } }
                td { (widgets::text(&a, "requested_by")) }
                td { (widgets::when(&a, "expires_at")) }
                td {
                    (widgets::action("Approve", "POST", &path, Some(&serde_json::json!({"approve": true})), "Run this call?"))
                    (widgets::action("Deny", "POST", &path, Some(&serde_json::json!({"approve": false})), ""))
                }
            } }
        })
        .collect();
    let content = widgets::table(
        "Tool calls waiting for a decision",
        &["Tool", "Arguments", "Requested by", "Expires", ""],
        rows,
        "Nothing is waiting for approval.",
    );
    Ok(Page(frame.page("Pending approvals", "Approvals", content)))
}

#[cfg(test)]
mod tests {
    use super::toggled;
    use serde_json::json;

    #[test]
    fn a_toggle_flips_enabled_and_keeps_the_rest() {
        let view = json!({"id": "x", "name": "fetch", "kind": "builtin", "builtin": "fetch_url",
            "endpoint": null, "description": "d", "input_schema": {}, "enabled": true,
            "risk": "external", "allowed_roles": ["editor"], "allow_api_keys": false,
            "approval": "always", "timeout_ms": 5000, "max_result_bytes": 100,
            "calls_per_minute": 10, "needs_review": false});
        assert_eq!(
            toggled(&view),
            json!({"name": "fetch", "kind": "builtin", "builtin": "fetch_url", "enabled": false,
                "risk": "external", "allowed_roles": ["editor"], "allow_api_keys": false,
                "approval": "always", "timeout_ms": 5000, "max_result_bytes": 100,
                "calls_per_minute": 10})
        );
    }
}
