//! Conversations (conversations.read: the caller's own, or all with read_all) and one
//! conversation with its messages, its model calls (traces.read) and its tool calls.

use crate::error::ApiResult;
use crate::flow::PathParams;
use crate::json::ApiQuery;
use crate::routes::{conversations, tools, traces};
use crate::ui::frame::AssistantPage;
use crate::ui::{widgets, Page};
use axum::extract::State;
use axum::Json;
use bastion_core::Capability as C;
use maud::html;

/// `GET /ui/assistants/{assistant_id}/conversations`.
pub async fn list(AssistantPage { state, at, frame }: AssistantPage) -> ApiResult<Page> {
    let query = conversations::ListQuery {
        limit: Some(100),
        before: None,
    };
    let Json(list) = conversations::list(State(state.clone()), at.clone(), ApiQuery(query)).await?;
    let rows = list
        .iter()
        .map(widgets::json)
        .map(|c| {
            html! { tr {
                td { a href=(format!("/ui/assistants/{}/conversations/{}", at.assistant.id, widgets::text(&c, "id"))) {
                    (if widgets::text(&c, "title").is_empty() { "(untitled)".to_owned() } else { widgets::text(&c, "title") }) } }
                td { (widgets::text(&c, "owner")) }
                td.num { (widgets::text(&c, "tokens_used")) }
                td { (widgets::when(&c, "updated_at")) }
            } }
        })
        .collect();
    let content = widgets::table(
        "The latest 100 conversations",
        &["Title", "Owner", "Tokens", "Last message"],
        rows,
        "No conversations yet.",
    );
    Ok(Page(frame.page("Conversations", "Conversations", content)))
}

/// `GET /ui/assistants/{assistant_id}/conversations/{conversation_id}`.
pub async fn get(
    AssistantPage { state, at, frame }: AssistantPage,
    params: PathParams,
) -> ApiResult<Page> {
    let Json(c) = conversations::get(State(state.clone()), at.clone(), params.clone()).await?;
    let c = widgets::json(&c);
    let (traces, calls) = if frame.may(C::TracesRead) {
        let Json(t) = traces::list(State(state.clone()), at.clone(), params.clone()).await?;
        let Json(k) = tools::calls(State(state.clone()), at.clone(), params).await?;
        (Some(widgets::json(&t)), Some(widgets::json(&k)))
    } else {
        (None, None)
    };
    let empty = Vec::new();
    let content = html! {
        p { "Owner: " (widgets::text(&c["conversation"], "owner")) " · tokens used: " (widgets::text(&c["conversation"], "tokens_used")) }
        ol.messages {
            @for m in c["messages"].as_array().unwrap_or(&empty) {
                li.message.(widgets::text(m, "role")) {
                    span.meta { (widgets::text(m, "role")) " · " (widgets::when(m, "created_at")) " · " (widgets::text(m, "status")) }
                    div.content { (widgets::text(m, "content")) }
                }
            }
        }
        @if let Some(t) = &traces {
            h2 { "Model calls" }
            (widgets::table("Model calls of this conversation", &["When", "Model", "Tokens in/out", "Latency ms", "First token ms", "Finish", "Cost USD", "Error"],
                t.as_array().unwrap_or(&empty).iter().map(|t| html! { tr {
                    td { (widgets::when(t, "created_at")) }
                    td { (widgets::text(t, "provider")) " / " (widgets::text(t, "model")) }
                    td.num { (widgets::text(t, "input_tokens")) " / " (widgets::text(t, "output_tokens")) }
                    td.num { (widgets::text(t, "latency_ms")) }
                    td.num { (widgets::text(t, "time_to_first_token_ms")) }
                    td { (widgets::text(t, "finish_reason")) }
                    td.num { (widgets::text(t, "cost_usd")) }
                    td { (widgets::text(t, "error")) }
                } }).collect(), "No model calls recorded."))
        }
        @if let Some(k) = &calls {
            h2 { "Tool calls" }
            (widgets::table("Tool calls of this conversation", &["When", "Tool", "Outcome", "Reason", "Result bytes", "ms"],
                k.as_array().unwrap_or(&empty).iter().map(|k| html! { tr {
                    td { (widgets::when(k, "created_at")) }
                    td { (widgets::text(k, "tool")) }
                    td { (widgets::text(k, "outcome")) }
                    td { (widgets::text(k, "reason")) }
                    td.num { (widgets::text(k, "result_bytes")) }
                    td.num { (widgets::text(k, "duration_ms")) }
                } }).collect(), "No tool calls."))
        }
    };
    let title = widgets::text(&c["conversation"], "title");
    let title = if title.is_empty() {
        "Conversation".to_owned()
    } else {
        title
    };
    Ok(Page(frame.page(&title, "Conversations", content)))
}
