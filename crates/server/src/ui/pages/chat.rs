//! Chat: the caller's own conversations and one of them, with a message box whose answer
//! streams in token by token (the script reads the API's Server-Sent Events), and thumbs
//! up or down on each answer.

use crate::error::ApiResult;
use crate::routes::conversations::{ConversationView, MessageView};
use crate::ui::frame::AssistantPage;
use crate::ui::{widgets, Page};
use axum::extract::Query;
use bastion_core::ConversationId;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
pub struct Open {
    /// The conversation to show; none starts a new one with the first message.
    c: Option<String>,
}

/// `GET /ui/assistants/{assistant_id}/chat`.
pub async fn get(
    AssistantPage { state, at, frame }: AssistantPage,
    Query(q): Query<Open>,
) -> ApiResult<Page> {
    let repo = state.store.conversations();
    let me = at.scope.principal().to_string();
    let mine: Vec<Value> = repo
        .list(&at.scope, 50, None)
        .await?
        .iter()
        .map(|c| widgets::json(&ConversationView::from(c)))
        .filter(|c| widgets::text(c, "owner") == me)
        .collect();
    let open = match q.c.as_deref().map(str::parse::<ConversationId>) {
        None => None,
        Some(Ok(id)) => {
            let c = repo.own(&at.scope, id).await?;
            let messages: Vec<Value> = repo
                .messages(&c)
                .await?
                .iter()
                .map(|m| widgets::json(&MessageView::from(m)))
                .collect();
            Some((id, messages))
        }
        Some(Err(_)) => return Err(crate::error::ApiError::NotFound),
    };
    let base = format!("/api/v1/assistants/{}", at.assistant.id);
    let content = html! {
        div.chat {
            nav.conversations aria-label="Your conversations" {
                a.button href=(format!("/ui/assistants/{}/chat", at.assistant.id)) { "New conversation" }
                ul {
                    @for c in &mine {
                        li { a href=(format!("/ui/assistants/{}/chat?c={}", at.assistant.id, widgets::text(c, "id")))
                            aria-current=[open.as_ref().is_some_and(|(id, _)| id.to_string() == widgets::text(c, "id")).then_some("page")] {
                            (title(c)) } }
                    }
                }
            }
            section.thread aria-label="Conversation" {
                ol.messages #messages aria-live="polite" {
                    @if let Some((id, messages)) = &open {
                        @for m in messages { (message(&base, &id.to_string(), m)) }
                    }
                }
                form #chat-form data-chat data-api-base=(base)
                    data-conversation=[open.as_ref().map(|(id, _)| id.to_string())]
                    data-page=(format!("/ui/assistants/{}/chat", at.assistant.id)) {
                    div.field {
                        label for="f-content" { "Message" }
                        textarea #f-content name="content" rows="3" required maxlength="32000" {}
                    }
                    button type="submit" { "Send" }
                    (widgets::outcome())
                }
            }
        }
    };
    Ok(Page(frame.page("Chat", "Chat", content)))
}

fn title(c: &Value) -> String {
    let t = widgets::text(c, "title");
    if t.is_empty() {
        format!("Conversation of {}", widgets::when(c, "created_at"))
    } else {
        t
    }
}

/// One message; an answer carries its feedback buttons.
pub fn message(base: &str, conversation: &str, m: &Value) -> Markup {
    let role = widgets::text(m, "role");
    let id = widgets::text(m, "id");
    let feedback = format!("{base}/conversations/{conversation}/messages/{id}/feedback");
    html! {
        li.message.(role) data-message-id=(id) {
            span.visually-hidden { (if role == "user" { "You:" } else { "Assistant:" }) }
            div.content { (widgets::text(m, "content")) }
            @if role == "assistant" {
                div.feedback {
                    (widgets::action("Helpful", "PUT", &feedback, Some(&serde_json::json!({"rating": "up"})), ""))
                    (widgets::action("Not helpful", "PUT", &feedback, Some(&serde_json::json!({"rating": "down"})), ""))
                }
            }
        }
    }
}
