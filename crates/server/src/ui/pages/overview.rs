//! An assistant at a glance: today's conversations and model errors (for those who may read
//! traces), feedback (feedback.read) and devices online (devices.manage).

use crate::error::ApiResult;
use crate::ui::frame::AssistantPage;
use crate::ui::Page;
use bastion_core::Capability as C;
use maud::html;

const DAY_MS: i64 = 86_400_000;

/// `GET /ui/assistants/{assistant_id}`.
pub async fn get(AssistantPage { state, at, frame }: AssistantPage) -> ApiResult<Page> {
    let today = if frame.may(C::TracesRead) {
        let midnight = bastion_store::now_ms() / DAY_MS * DAY_MS;
        Some(
            state
                .store
                .llm_calls()
                .summary_since(&at.scope, midnight)
                .await?,
        )
    } else {
        None
    };
    let feedback = if frame.may(C::FeedbackRead) {
        Some(state.store.feedback().counts(&at.scope).await?)
    } else {
        None
    };
    let devices = if frame.may(C::DevicesManage) {
        let list = state.store.devices().list(&at.scope).await?;
        let online = list
            .iter()
            .filter(|d| state.devices.channels.is_online(d.id))
            .count();
        Some((online, list.len()))
    } else {
        None
    };
    let content = html! {
        @if !at.assistant.description.is_empty() { p.lead { (at.assistant.description) } }
        dl.stats {
            @if let Some(t) = today {
                div { dt { "Conversations today" } dd data-stat="conversations" { (t.conversations) } }
                div { dt { "Model calls today" } dd { (t.calls) } }
                div { dt { "Errors today" } dd data-stat="errors" { (t.errors) } }
            }
            @if let Some(f) = feedback {
                div { dt { "Feedback" } dd data-stat="feedback" { "👍 " (f.up) " · 👎 " (f.down) } }
            }
            @if let Some((online, all)) = devices {
                div { dt { "Devices online" } dd data-stat="devices" { (online) " of " (all) } }
            }
        }
        @if frame.may(C::Chat) {
            p { a.button href=(format!("/ui/assistants/{}/chat", at.assistant.id)) { "Start a chat" } }
        }
    };
    Ok(Page(frame.page("Overview", "Overview", content)))
}
