//! What the model is sent: the assistant's system prompt, the facts the user asked it to
//! remember, and as much of the conversation as fits the model's context budget.

use bastion_runtime::budget::{estimate_tokens, trim_history};
use bastion_runtime::{ChatMessage, ChatRequest, Role};
use bastion_store::assistant_settings::AssistantSettings;
use bastion_store::conversations::{Message, MessageRole, MessageStatus};
use bastion_store::memories::Memory;

/// The system prompt with the user's memories appended.
pub fn system(settings: &AssistantSettings, memories: &[Memory]) -> Option<String> {
    let mut s = settings.system_prompt.clone();
    if !memories.is_empty() {
        if !s.is_empty() {
            s.push_str("\n\n");
        }
        s.push_str("Facts the user asked you to remember:");
        for m in memories {
            s.push_str("\n- ");
            s.push_str(&m.content);
        }
    }
    (!s.is_empty()).then_some(s)
}

/// The conversation as the model sees it: answers that failed or never got a word are left
/// out (they would teach the model nothing and break the user/assistant alternation).
pub fn history(messages: &[Message]) -> Vec<ChatMessage> {
    messages
        .iter()
        .filter(|m| {
            m.role == MessageRole::User
                || (m.status != MessageStatus::Failed && !m.content.is_empty())
        })
        .map(|m| {
            let role = match m.role {
                MessageRole::User => Role::User,
                MessageRole::Assistant => Role::Assistant,
            };
            ChatMessage::new(role, m.content.clone())
        })
        .collect()
}

/// A request for `settings`' model with `system` and as much of `history` as fits.
pub fn request(
    settings: &AssistantSettings,
    system: Option<String>,
    history: &[ChatMessage],
    max_tokens: u32,
) -> ChatRequest {
    let room = (settings.context_tokens as u64)
        .saturating_sub(u64::from(max_tokens))
        .saturating_sub(system.as_deref().map(estimate_tokens).unwrap_or(0));
    ChatRequest {
        model: settings.model.clone(),
        system,
        messages: trim_history(history, room).to_vec(),
        temperature: settings.temperature_milli.map(|t| t as f32 / 1000.0),
        max_tokens,
        tools: Vec::new(),
    }
}

/// The estimated tokens of everything `request` sends.
pub fn estimate(request: &ChatRequest) -> u64 {
    bastion_runtime::budget::estimate_request_tokens(request)
}
