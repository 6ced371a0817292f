//! What the fake answers, and how it counts: one "token" per word.

use serde_json::Value;

/// The answer to one request, cut into the pieces a stream sends.
pub(crate) struct Answer {
    /// One word each, with the whitespace before it, so the pieces concatenate to the text.
    pub(crate) pieces: Vec<String>,
    /// Cut short by `max_tokens`.
    pub(crate) truncated: bool,
    pub(crate) prompt_tokens: u64,
}

impl Answer {
    /// "You said: <last user message>", or `fixed`; at most `max_tokens` words of it.
    /// `prompt_words` is every word the request sent (system prompt included).
    pub(crate) fn new(
        fixed: Option<&str>,
        last_user: &str,
        prompt_words: u64,
        max_tokens: Option<u64>,
    ) -> Answer {
        let text = match fixed {
            Some(text) => text.to_owned(),
            None => format!("You said: {last_user}"),
        };
        Answer::from_text(&text, prompt_words, max_tokens)
    }

    /// `text`, at most `max_tokens` words of it.
    pub(crate) fn from_text(text: &str, prompt_words: u64, max_tokens: Option<u64>) -> Answer {
        let mut pieces = pieces(text);
        let limit = max_tokens
            .and_then(|m| usize::try_from(m).ok())
            .unwrap_or(usize::MAX);
        let truncated = pieces.len() > limit;
        pieces.truncate(limit);
        Answer {
            pieces,
            truncated,
            prompt_tokens: prompt_words.max(1),
        }
    }

    pub(crate) fn text(&self) -> String {
        self.pieces.concat()
    }

    pub(crate) fn completion_tokens(&self) -> u64 {
        self.pieces.len() as u64
    }
}

/// Splits before each whitespace run that follows a word: "You said: hi" → "You", " said:",
/// " hi", the way real tokenizers attach a leading space to a word.
pub(crate) fn pieces(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c.is_whitespace() && current.chars().any(|p| !p.is_whitespace()) {
            pieces.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

pub(crate) fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The text of a message `content` (or an Anthropic `system`): a string, or an array of
/// parts whose `text` parts are joined. Anything else has no text.
pub(crate) fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pieces_keep_the_spaces() {
        assert_eq!(
            pieces("You said: hi  there"),
            ["You", " said:", " hi", "  there"]
        );
        assert_eq!(pieces(" lead"), [" lead"]);
        assert_eq!(pieces("trail "), ["trail", " "]);
        assert!(pieces("").is_empty());
        let text = "a  b\tc\n d ";
        assert_eq!(pieces(text).concat(), text);
    }

    #[test]
    fn answers_echo_and_honour_max_tokens() {
        let a = Answer::new(None, "hello world", 0, None);
        assert_eq!(a.text(), "You said: hello world");
        assert_eq!(a.completion_tokens(), 4);
        assert!(!a.truncated);
        assert_eq!(a.prompt_tokens, 1);

        let a = Answer::new(None, "hello world", 9, Some(2));
        assert_eq!(a.text(), "You said:");
        assert!(a.truncated);
        assert_eq!(a.prompt_tokens, 9);

        let a = Answer::new(Some("fixed reply"), "ignored", 3, Some(2));
        assert_eq!(a.text(), "fixed reply");
        assert!(!a.truncated);
    }

    #[test]
    fn text_of_strings_and_parts() {
        assert_eq!(text_of(&json!("plain")), "plain");
        assert_eq!(
            text_of(
                &json!([{"type": "text", "text": "a b"}, {"type": "image_url"}, {"type": "text", "text": "c"}])
            ),
            "a b c"
        );
        assert_eq!(text_of(&json!(null)), "");
        assert_eq!(word_count("  a b\n c "), 3);
    }
}
