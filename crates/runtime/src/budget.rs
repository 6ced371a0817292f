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

use crate::types::{ChatMessage, ChatRequest, Role};

/// Tokens a message costs beyond its text: the role marker and separators each format adds.
pub const MESSAGE_OVERHEAD_TOKENS: u64 = 4;

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

/// Estimated tokens of one message.
pub fn estimate_message_tokens(message: &ChatMessage) -> u64 {
    estimate_tokens(&message.content)
}

/// Estimated input tokens of a whole request: the system prompt and every message. Used to
/// reserve budget before a call, and as the billed input when a provider reports no usage.
pub fn estimate_request_tokens(request: &ChatRequest) -> u64 {
    let system = request.system.as_deref().map_or(0, estimate_tokens);
    request
        .messages
        .iter()
        .map(estimate_message_tokens)
        .fold(system, u64::saturating_add)
}

/// The longest suffix of `messages` whose estimated size fits `budget_tokens`.
///
/// - The last message (the newest user turn) is always kept, even alone over the budget:
///   without it there is no question to answer, and the provider's own "too long" refusal
///   is then the honest answer.
/// - The suffix never starts with an Assistant message: a history that opens with the model
///   speaking confuses models, and Anthropic refuses it, so such leading messages are dropped
///   too.
pub fn trim_history(messages: &[ChatMessage], budget_tokens: u64) -> &[ChatMessage] {
    let Some((last, earlier)) = messages.split_last() else {
        return messages;
    };
    let mut used = estimate_message_tokens(last);
    let mut start = earlier.len();
    for (i, message) in earlier.iter().enumerate().rev() {
        used = used.saturating_add(estimate_message_tokens(message));
        if used > budget_tokens {
            break;
        }
        start = i;
    }
    while start < earlier.len() && messages[start].role == Role::Assistant {
        start += 1;
    }
    &messages[start..]
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
}
