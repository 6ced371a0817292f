//! Devices (devices.manage): binding by the code a device shows (after a look at which
//! device it is), the list with live state (the script follows `…/devices/events`),
//! approval, revoking a device's channel token, unbinding, and the pairing policy.

use crate::error::ApiResult;
use crate::routes::devices;
use crate::ui::frame::AssistantPage;
use crate::ui::{widgets, Page};
use axum::extract::State;
use axum::Json;
use maud::html;

/// `GET /ui/assistants/{assistant_id}/devices`.
pub async fn get(AssistantPage { state, at, frame }: AssistantPage) -> ApiResult<Page> {
    // Taken before the list is read, so the script following from it misses no change.
    let cursor = state.devices.events.cursor();
    let Json(list) = devices::list(State(state.clone()), at.clone()).await?;
    let Json(policy) = devices::get_policy(State(state.clone()), at.clone()).await?;
    let policy = widgets::json(&policy);
    let base = format!("/api/v1/assistants/{}/devices", at.assistant.id);
    let rows = list
        .iter()
        .map(widgets::json)
        .map(|d| {
            let id = widgets::text(&d, "id");
            let path = format!("{base}/{id}");
            let status = widgets::text(&d, "status");
            html! { tr data-device-id=(id) {
                td { code { (widgets::text(&d, "mac")) } }
                td { (widgets::text(&d, "board")) " " (widgets::text(&d, "app_version")) }
                td data-field="status" { (status) }
                td data-field="online" { (if d["online"] == true { "online" } else { "offline" }) }
                td data-field="last_seen_at" { (widgets::when(&d, "last_seen_at")) }
                td data-field="last_ip" { (widgets::text(&d, "last_ip")) }
                td {
                    @if status == "pending_approval" { (widgets::action("Approve", "POST", &format!("{path}/approve"), None, "")) }
                    @if !widgets::text(&d, "token_last4").is_empty() {
                        (widgets::action("Revoke token", "POST", &format!("{path}/revoke"), None, "Cut this device's channel now? It gets a new token on its next handshake."))
                    }
                    (widgets::action("Unbind", "DELETE", &path, None, "Unbind this device? Its channel is cut and it shows a new activation code."))
                }
            } }
        })
        .collect();
    let pairing = ["auto", "approval"].map(|p| (p.to_owned(), p.to_owned()));
    let kinds = [
        ("alphanumeric", "6 letters and digits (default)"),
        ("digits", "6 digits (for devices that speak the code)"),
    ]
    .map(|(v, l)| (v.to_owned(), l.to_owned()));
    let content = html! {
        section aria-labelledby="bind-h" {
            h2 #bind-h { "Bind a device" }
            form #bind-form data-api=(format!("{base}/bind")) data-method="POST" data-done="preview" {
                div.field {
                    label for="f-code" { "Activation code the device shows or says" }
                    input #f-code name="code" autocomplete="off" autocapitalize="characters" required maxlength="16";
                }
                button type="submit" { "Look up" }
                (widgets::outcome())
                div.preview data-preview hidden {}
            }
        }
        h2 { "Devices" }
        div data-device-events=(format!("{base}/events")) data-device-base=(base) data-device-cursor=(cursor) {
            (widgets::table("Devices of this assistant", &["MAC", "Board", "Status", "Channel", "Last seen", "Address", ""], rows, "No devices yet."))
        }
        h2 { "Pairing policy" }
        form #policy-form data-api=(format!("{base}/policy")) data-method="PUT" data-done="reload" {
            (widgets::select("A device bound by code", "pairing", &pairing, &widgets::text(&policy, "pairing")))
            (widgets::select("Activation codes", "code_kind", &kinds, &widgets::text(&policy, "code_kind")))
            button type="submit" { "Save policy" }
            (widgets::outcome())
        }
    };
    Ok(Page(frame.page("Devices", "Devices", content)))
}
