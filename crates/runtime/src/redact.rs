//! Turning a provider's error message into text we may show and log.
//!
//! Providers echo what they were sent: OpenAI's 401 quotes (part of) the key, a gateway may
//! quote a header. So a message is redacted (the endpoint's own key, and anything shaped like
//! an OpenAI/Anthropic `sk-…` key or a bastion `bst_…` key), stripped of control characters
//! (no forged log lines), and shortened. Redaction comes before shortening: cutting first
//! could leave a key prefix that no longer matches the whole key.

const REDACTED: &str = "[redacted]";
/// Characters kept of a provider's message.
pub(crate) const MAX_MESSAGE_CHARS: usize = 200;
/// Prefixes of credential-looking tokens that are removed whoever they belong to.
const TOKEN_PREFIXES: [&str; 2] = ["sk-", "bst_"];

pub(crate) fn provider_message(message: &str, api_key: &str) -> String {
    let mut text = if api_key.is_empty() {
        message.to_owned()
    } else {
        message.replace(api_key, REDACTED)
    };
    for prefix in TOKEN_PREFIXES {
        text = redact_tokens(&text, prefix);
    }
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate_chars(cleaned.trim(), MAX_MESSAGE_CHARS)
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '*' || c == '.'
}

/// Replaces every `prefix` + token characters that starts a word. A match inside a word
/// ("task-based", "risk-free") is left alone: it is no key.
fn redact_tokens(text: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let starts_word = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        let after = &rest[at + prefix.len()..];
        let token_len = after
            .find(|c: char| !is_token_char(c))
            .unwrap_or(after.len());
        if starts_word && token_len > 0 {
            out.push_str(&rest[..at]);
            out.push_str(REDACTED);
            rest = &after[token_len..];
        } else {
            out.push_str(&rest[..at + prefix.len()]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_the_endpoint_key_anywhere() {
        let key = "my-custom-key-without-prefix";
        let out = provider_message(&format!("bad key {key}, really ({key})"), key);
        assert_eq!(out, "bad key [redacted], really ([redacted])");
    }

    #[test]
    fn removes_key_shaped_tokens_of_anyone() {
        let out = provider_message(
            "Incorrect API key provided: sk-proj-abc***wxyz. Also bst_0123abcd and sk-ant-api03-Zz_9.",
            "",
        );
        assert_eq!(
            out,
            "Incorrect API key provided: [redacted] Also [redacted] and [redacted]"
        );
        // The trailing '.' of a sentence is taken as part of the token: over-redacting a
        // full stop is cheaper than leaking a key that contains dots.
    }

    #[test]
    fn leaves_words_that_merely_contain_a_prefix() {
        let text = "a task-based, risk-free request; sk- alone";
        assert_eq!(provider_message(text, ""), text);
    }

    #[test]
    fn redacts_before_truncating() {
        let key = "k".repeat(300);
        let out = provider_message(&format!("{}{key}", "x".repeat(190)), &key);
        assert!(out.starts_with(&"x".repeat(190)));
        assert!(!out.contains('k'), "a key prefix survived: {out}");
    }

    #[test]
    fn truncates_to_200_chars_on_char_boundaries() {
        let out = provider_message(&"é".repeat(500), "");
        assert_eq!(out.chars().count(), MAX_MESSAGE_CHARS + 1); // + the ellipsis
        assert!(out.ends_with('…'));
        assert_eq!(provider_message("short", ""), "short");
    }

    #[test]
    fn control_characters_cannot_forge_log_lines() {
        assert_eq!(
            provider_message("line one\nlevel=error forged\r\n", ""),
            "line one level=error forged"
        );
    }
}
