//! The assistant's settings (settings.manage): its name and description, and what its
//! conversations run on: system prompt, provider key, model, temperature and limits.

use crate::error::ApiResult;
use crate::routes::assistant_settings;
use crate::ui::frame::AssistantPage;
use crate::ui::{widgets, Page};
use axum::extract::State;
use axum::Json;
use maud::html;

/// `GET /ui/assistants/{assistant_id}/settings`.
pub async fn get(AssistantPage { state, at, frame }: AssistantPage) -> ApiResult<Page> {
    let Json(s) = assistant_settings::get(State(state.clone()), at.clone()).await?;
    let s = widgets::json(&s);
    let base = format!("/api/v1/assistants/{}", at.assistant.id);
    let a = &at.assistant;
    let content = html! {
        h2 { "Assistant" }
        form #assistant-form data-api=(base) data-method="PATCH" data-done="reload" {
            (widgets::field("Name", "name", "text", true, &a.name))
            (widgets::field("Slug (its address: {slug}.your-domain)", "slug", "text", true, &a.slug))
            div.field {
                label for="f-description" { "Description" }
                textarea #f-description name="description" rows="2" data-keep-empty { (a.description) }
            }
            button type="submit" { "Save" }
            (widgets::outcome())
        }
        h2 { "Model" }
        form #settings-form data-api=(format!("{base}/settings")) data-method="PUT" data-done="reload" {
            div.field {
                label for="f-system_prompt" { "System prompt" }
                textarea #f-system_prompt name="system_prompt" rows="6" data-keep-empty { (widgets::text(&s, "system_prompt")) }
            }
            (widgets::field("Provider key id (from Provider keys)", "provider_key_id", "text", false, &widgets::text(&s, "provider_key_id")))
            (widgets::field("Model", "model", "text", false, &widgets::text(&s, "model")))
            (widgets::field("Temperature", "temperature", "number", false, &widgets::text(&s, "temperature")))
            (widgets::field("Most tokens per reply", "max_reply_tokens", "number", false, &widgets::text(&s, "max_reply_tokens")))
            (widgets::field("Context budget (tokens)", "context_tokens", "number", false, &widgets::text(&s, "context_tokens")))
            (widgets::field("Most tokens per conversation", "max_conversation_tokens", "number", false, &widgets::text(&s, "max_conversation_tokens")))
            (widgets::field("Most tokens per user per day", "max_daily_tokens_per_user", "number", false, &widgets::text(&s, "max_daily_tokens_per_user")))
            button type="submit" { "Save" }
            (widgets::outcome())
        }
    };
    Ok(Page(frame.page("Settings", "Settings", content)))
}
