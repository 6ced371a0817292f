//! How much conversation fits a model's context, without a tokenizer.
//!
//! We do not ship each provider's tokenizer (they differ per model family and some are not
//! public), so sizes are estimates, deliberately on the high side: an estimate that is too
//! high trims a little more history than needed; one that is too low sends a request the
//! provider refuses as too long, or reserves less budget than the call then costs.
//!
//! Why `ceil(bytes / 3)`: BPE tokenizers average about 4 characters per token on English
//! prose and about 3–3.5 on code, and a UTF-8 byte count is never below the character
//! count; accented Latin (2 bytes per char) and CJK (3 bytes per char, typically about one
//! token each) come out at or above their real count too. It is an estimate, not a bound:
//! text made of rare symbols or emoji can tokenize denser.

use crate::types::{ChatMessage, ChatRequest, Role, ToolCall, ToolSpec};

/// Tokens a message costs beyond its text: the role marker and separators each format adds.
/// Each tool call and each tool spec costs as much again, for its own markup.
pub const MESSAGE_OVERHEAD_TOKENS: u64 = 4;

/// Tokens a request with tools costs for offering them at all: providers add their own
/// instructions on how to call tools to the prompt (Anthropic documents 346 tokens for
/// current Claude models, up to 530 for older ones; OpenAI does not publish its count).
pub const TOOLS_PROMPT_TOKENS: u64 = 600;

/// Estimated tokens of one message's (or system prompt's) text, its per-message overhead
/// included: `ceil(bytes / 3) + 4`. Summing it over the parts of a request gives the
/// request's size.
pub fn estimate_tokens(text: &str) -> u64 {
    tokens_for_bytes(text.len()).saturating_add(MESSAGE_OVERHEAD_TOKENS)
}

/// Tokens of bare text, without overhead: `ceil(bytes / 3)`.
pub(crate) fn tokens_for_bytes(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(3)
}

/// Estimated tokens of one message: its text, the tool calls it proposes (id, name,
/// arguments) and the call id it answers.
pub fn estimate_message_tokens(message: &ChatMessage) -> u64 {
    let answered = message
        .tool_call_id
        .as_deref()
        .map_or(0, |id| tokens_for_bytes(id.len()));
    message
        .tool_calls
        .iter()
        .map(estimate_call_tokens)
        .fold(estimate_tokens(&message.content), u64::saturating_add)
        .saturating_add(answered)
}

fn estimate_call_tokens(call: &ToolCall) -> u64 {
    let bytes = call.id.len() + call.name.len() + call.arguments.len();
    tokens_for_bytes(bytes).saturating_add(MESSAGE_OVERHEAD_TOKENS)
}

/// Estimated tokens of offering one tool: its name, description and schema (as the JSON
/// text we send; providers render it more compactly, so this errs high).
pub fn estimate_tool_tokens(tool: &ToolSpec) -> u64 {
    let schema = tool.parameters.to_string();
    let bytes = tool.name.len() + tool.description.len() + schema.len();
    tokens_for_bytes(bytes).saturating_add(MESSAGE_OVERHEAD_TOKENS)
}

/// Estimated input tokens of a whole request: the system prompt, every message, and the
/// tools offered. Used to reserve budget before a call, and as the billed input when a
/// provider reports no usage.
pub fn estimate_request_tokens(request: &ChatRequest) -> u64 {
    let system = request.system.as_deref().map_or(0, estimate_tokens);
    let tools = if request.tools.is_empty() {
        0
    } else {
        request
            .tools
            .iter()
            .map(estimate_tool_tokens)
            .fold(TOOLS_PROMPT_TOKENS, u64::saturating_add)
    };
    request
        .messages
        .iter()
        .map(estimate_message_tokens)
        .fold(system.saturating_add(tools), u64::saturating_add)
}

/// The longest suffix of `messages` whose estimated size fits `budget_tokens`.
///
/// - The last message (the newest user turn) is always kept, even alone over the budget:
///   without it there is no question to answer, and the provider's own "too long" refusal
///   is then the honest answer. When it is a tool result, the whole tool exchange it ends
///   is kept with it, back to the message that started it (the user's question): results
///   without their calls are refused by both formats, and calls without the question mean
///   nothing.
/// - The suffix never starts with an Assistant or a Tool message: a history that opens with
///   the model speaking confuses models, Anthropic refuses it, and a tool result needs its
///   call before it; such leading messages are dropped too.
pub fn trim_history(messages: &[ChatMessage], budget_tokens: u64) -> &[ChatMessage] {
    let kept = kept_tail_start(messages);
    let mut used = messages[kept..]
        .iter()
        .map(estimate_message_tokens)
        .fold(0, u64::saturating_add);
    let mut start = kept;
    for (i, message) in messages[..kept].iter().enumerate().rev() {
        used = used.saturating_add(estimate_message_tokens(message));
        if used > budget_tokens {
            break;
        }
        start = i;
    }
    while start < kept && matches!(messages[start].role, Role::Assistant | Role::Tool) {
        start += 1;
    }
    &messages[start..]
}

/// Where the part of `messages` that is always kept begins: the last message, extended back
/// over the tool exchange (tool results, and assistant turns proposing calls) it ends.
fn kept_tail_start(messages: &[ChatMessage]) -> usize {
    let in_exchange = |m: &ChatMessage| {
        m.role == Role::Tool || (m.role == Role::Assistant && !m.tool_calls.is_empty())
    };
    let mut start = messages.len().saturating_sub(1);
    while start > 0 && messages.get(start).is_some_and(in_exchange) {
        start -= 1;
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: Role, text: &str) -> ChatMessage {
        ChatMessage::new(role, text)
    }

    /// A message whose estimated cost is exactly `tokens` (≥ overhead).
    fn sized(role: Role, tokens: u64) -> ChatMessage {
        msg(
            role,
            &"x".repeat(((tokens - MESSAGE_OVERHEAD_TOKENS) * 3) as usize),
        )
    }

    #[test]
    fn estimates_round_up_and_count_the_overhead() {
        assert_eq!(estimate_tokens(""), 4);
        assert_eq!(estimate_tokens("a"), 5);
        assert_eq!(estimate_tokens("abc"), 5);
        assert_eq!(estimate_tokens("abcd"), 6);
        // Multi-byte text counts bytes, not characters: 3 CJK chars are 9 bytes.
        assert_eq!(estimate_tokens("日本語"), 3 + 4);
        assert_eq!(estimate_message_tokens(&msg(Role::User, "abcd")), 6);
        assert_eq!(tokens_for_bytes(7), 3);
    }

    #[test]
    fn request_estimate_counts_system_and_messages() {
        let req = ChatRequest {
            model: "m".into(),
            system: Some("abc".into()),
            messages: vec![msg(Role::User, "abcdef"), msg(Role::Assistant, "")],
            temperature: None,
            max_tokens: 10,
            tools: vec![],
        };
        assert_eq!(estimate_request_tokens(&req), (1 + 4) + (2 + 4) + 4);
    }

    #[test]
    fn everything_fits() {
        let h = vec![
            sized(Role::User, 10),
            sized(Role::Assistant, 10),
            sized(Role::User, 10),
        ];
        assert_eq!(trim_history(&h, 30), &h[..]);
        assert_eq!(trim_history(&h, 1000), &h[..]);
    }

    #[test]
    fn keeps_the_longest_fitting_suffix() {
        let h = vec![
            sized(Role::User, 10),
            sized(Role::Assistant, 10),
            sized(Role::User, 10),
            sized(Role::Assistant, 10),
            sized(Role::User, 10),
        ];
        // 29 fits two messages, but the suffix would open with an Assistant: dropped.
        assert_eq!(trim_history(&h, 29), &h[4..]);
        assert_eq!(trim_history(&h, 30), &h[2..]);
        assert_eq!(trim_history(&h, 49), &h[2..]);
    }

    #[test]
    fn a_message_that_does_not_fit_stops_the_walk() {
        // An old small message behind a big one is not picked up: the history stays a suffix.
        let h = vec![
            sized(Role::User, 5),
            sized(Role::Assistant, 100),
            sized(Role::User, 10),
        ];
        assert_eq!(trim_history(&h, 50), &h[2..]);
    }

    #[test]
    fn always_keeps_the_last_message() {
        let h = vec![sized(Role::User, 10), sized(Role::User, 500)];
        assert_eq!(trim_history(&h, 100), &h[1..]);
        assert_eq!(trim_history(&h, 0), &h[1..]);
        // Even when it is (oddly) an Assistant message.
        let h = vec![sized(Role::User, 10), sized(Role::Assistant, 10)];
        assert_eq!(trim_history(&h, 5), &h[1..]);
    }

    #[test]
    fn empty_history() {
        assert!(trim_history(&[], 100).is_empty());
    }

    #[test]
    fn leading_assistants_are_dropped_even_when_they_fit() {
        let h = vec![
            sized(Role::Assistant, 10),
            sized(Role::Assistant, 10),
            sized(Role::User, 10),
        ];
        assert_eq!(trim_history(&h, 1000), &h[2..]);
    }

    fn call(arguments: &str) -> ToolCall {
        ToolCall {
            id: "abc".into(),
            name: "get".into(),
            arguments: arguments.into(),
        }
    }

    #[test]
    fn tool_calls_and_results_count() {
        // "hi" (1) + overhead 4, then per call: "abc" + "get" + "{}" = 8 bytes -> 3, + 4.
        let m = ChatMessage::assistant_calls("hi", vec![call("{}"), call("{}")]);
        assert_eq!(estimate_message_tokens(&m), (1 + 4) + 2 * (3 + 4));
        // The answered id counts too: "call_1" is 6 bytes -> 2.
        let r = ChatMessage::tool_result("call_1", "abc");
        assert_eq!(estimate_message_tokens(&r), (1 + 4) + 2);
    }

    #[test]
    fn offering_tools_is_never_free() {
        let tool = ToolSpec {
            name: "get_weather".into(),
            description: "Current weather".into(),
            parameters: serde_json::json!({"type": "object"}),
        };
        // 11 + 15 + 17 (`{"type":"object"}`) = 43 bytes -> 15, + 4.
        assert_eq!(estimate_tool_tokens(&tool), 15 + 4);
        let mut req = ChatRequest {
            model: "m".into(),
            system: None,
            messages: vec![msg(Role::User, "abc")],
            temperature: None,
            max_tokens: 10,
            tools: vec![],
        };
        let without = estimate_request_tokens(&req);
        req.tools = vec![tool.clone(), tool];
        assert_eq!(
            estimate_request_tokens(&req),
            without + TOOLS_PROMPT_TOKENS + 2 * (15 + 4)
        );
    }

    #[test]
    fn a_tool_exchange_is_kept_whole_with_its_question() {
        let h = vec![
            sized(Role::User, 10),
            sized(Role::Assistant, 10),
            sized(Role::User, 10),
            ChatMessage::assistant_calls("", vec![call("{}")]),
            ChatMessage::tool_result("abc", "x".repeat(300)),
            ChatMessage::assistant_calls("", vec![call("{}")]),
            ChatMessage::tool_result("abc", "y"),
        ];
        // Over budget, the exchange and the question that started it still go together.
        assert_eq!(trim_history(&h, 0), &h[2..]);
        assert_eq!(trim_history(&h, 1000), &h[..]);
        // A suffix that would open on a tool result or a call is cut to the next user turn.
        let h = vec![
            sized(Role::User, 10),
            ChatMessage::assistant_calls("", vec![call("{}")]),
            ChatMessage::tool_result("abc", "r"),
            sized(Role::Assistant, 10),
            sized(Role::User, 10),
        ];
        let fits_three = estimate_message_tokens(&h[2]) + 20;
        assert_eq!(trim_history(&h, fits_three), &h[4..]);
        // Only an exchange: nothing to trim it back to, kept as is.
        let h = vec![
            ChatMessage::assistant_calls("", vec![call("{}")]),
            ChatMessage::tool_result("abc", "r"),
        ];
        assert_eq!(trim_history(&h, 0), &h[..]);
    }
}
