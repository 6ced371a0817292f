//! Tool calling in the fake: the `CALL` directive that makes it propose calls, the answer it
//! gives to tool results, and what the record keeps of tools.
//!
//! The fake proposes whatever the directive names, offered in `tools` or not: real models do
//! call tools they were never given, and clients must cope with that.

use serde_json::Value;

use crate::reply::{text_of, word_count};
use crate::state::RecordedToolResult;

/// A call the fake proposes: the tool's name and its arguments as written in the directive
/// (never validated, so a test can make the "model" send malformed arguments).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Proposed {
    pub(crate) name: String,
    pub(crate) arguments: String,
}

/// The `CALL <tool_name> <json arguments>` lines of `text`, in order. The arguments are the
/// rest of the line, `{}` when there is none.
pub(crate) fn directives(text: &str) -> Vec<Proposed> {
    text.lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("CALL ")?.trim_start();
            let (name, arguments) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let arguments = arguments.trim();
            (!name.is_empty()).then(|| Proposed {
                name: name.to_owned(),
                arguments: if arguments.is_empty() {
                    "{}"
                } else {
                    arguments
                }
                .to_owned(),
            })
        })
        .collect()
}

/// The end of a request as the fake answers it: the texts of its last turn, where directives
/// are looked for, and the tool results that turn carries.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct LastTurn {
    pub(crate) texts: Vec<String>,
    pub(crate) results: Vec<String>,
}

/// What the fake answers a request with, before it is put in a format.
pub(crate) enum Decision {
    Calls(Vec<Proposed>),
    /// This text, instead of the echo or the fixed reply.
    Text(String),
    /// The echo or the fixed reply, as without tools.
    Usual,
}

impl LastTurn {
    pub(crate) fn decide(&self) -> Decision {
        let calls: Vec<Proposed> = self.texts.iter().flat_map(|t| directives(t)).collect();
        if !calls.is_empty() {
            Decision::Calls(calls)
        } else if !self.results.is_empty() {
            Decision::Text(format!("Tool results: {}", self.results.join(" | ")))
        } else {
            Decision::Usual
        }
    }
}

/// Arguments cut into the pieces a stream sends: at least two (for any text of two
/// characters or more), so a client has to put them back together.
pub(crate) fn fragments(arguments: &str) -> Vec<String> {
    let chars: Vec<char> = arguments.chars().collect();
    let size = chars.len().div_ceil(2).clamp(1, 8);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// Output "tokens" of proposed calls: the words of their names and arguments.
pub(crate) fn call_words(calls: &[Proposed]) -> u64 {
    calls
        .iter()
        .map(|c| 1 + word_count(&c.arguments))
        .sum::<u64>()
}

/// Prompt words of the tools offered: their names and descriptions, in either format
/// (OpenAI nests them under `function`).
pub(crate) fn offered_words(tools: &Value) -> u64 {
    tool_entries(tools)
        .map(|t| {
            let name = t.get("name").and_then(Value::as_str).unwrap_or_default();
            let description = t
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default();
            word_count(name) + word_count(description)
        })
        .sum()
}

/// Each tool definition of a `tools` list, OpenAI's `function` object or Anthropic's tool.
fn tool_entries(tools: &Value) -> impl Iterator<Item = &Value> {
    tools
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| t.get("function").unwrap_or(t))
}

/// What the record keeps of a request's tools: the names offered, and every tool result
/// (OpenAI `tool` messages, Anthropic `tool_result` blocks), in order.
pub(crate) fn recorded(body: &Value) -> (Vec<String>, Vec<RecordedToolResult>) {
    let names = tool_entries(&body["tools"])
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    let mut results = Vec::new();
    for message in body["messages"].as_array().into_iter().flatten() {
        if message["role"] == "tool" {
            results.push(RecordedToolResult {
                call_id: message["tool_call_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                content: text_of(&message["content"]),
            });
        }
        results.extend(
            tool_result_blocks(&message["content"]).map(|block| RecordedToolResult {
                call_id: block["tool_use_id"].as_str().unwrap_or_default().to_owned(),
                content: text_of(&block["content"]),
            }),
        );
    }
    (names, results)
}

/// The `tool_result` blocks of an Anthropic message's content.
pub(crate) fn tool_result_blocks(content: &Value) -> impl Iterator<Item = &Value> {
    blocks_of(content, "tool_result")
}

/// The `tool_use` blocks of an Anthropic message's content.
pub(crate) fn tool_use_blocks(content: &Value) -> impl Iterator<Item = &Value> {
    blocks_of(content, "tool_use")
}

fn blocks_of<'a>(content: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> {
    content
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |b| b["type"] == kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn proposed(name: &str, arguments: &str) -> Proposed {
        Proposed {
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    #[test]
    fn directives_are_whole_lines() {
        let text = "Please:\nCALL get_weather {\"city\": \"Oslo\"}\n  CALL now  \nnot a CALL x {}\nCALL \nCALLx y";
        assert_eq!(
            directives(text),
            [
                proposed("get_weather", "{\"city\": \"Oslo\"}"),
                proposed("now", "{}"),
            ]
        );
        // Arguments are taken as written, JSON or not.
        assert_eq!(directives("CALL f {broken"), [proposed("f", "{broken")]);
        assert!(directives("You said: hi").is_empty());
    }

    #[test]
    fn decisions() {
        let turn = |texts: &[&str], results: &[&str]| LastTurn {
            texts: texts.iter().map(|t| t.to_string()).collect(),
            results: results.iter().map(|t| t.to_string()).collect(),
        };
        assert!(matches!(
            turn(&["CALL a {}"], &[]).decide(),
            Decision::Calls(c) if c == [proposed("a", "{}")]
        ));
        // A tool result may ask for the next call.
        assert!(matches!(
            turn(&["12", "CALL b {}"], &["12", "CALL b {}"]).decide(),
            Decision::Calls(c) if c == [proposed("b", "{}")]
        ));
        assert!(matches!(
            turn(&["12 degrees", "rain"], &["12 degrees", "rain"]).decide(),
            Decision::Text(t) if t == "Tool results: 12 degrees | rain"
        ));
        assert!(matches!(turn(&["hi"], &[]).decide(), Decision::Usual));
    }

    #[test]
    fn fragments_split_in_at_least_two() {
        assert_eq!(fragments("{}"), ["{", "}"]);
        assert_eq!(fragments("{\"a\":1}"), ["{\"a\"", ":1}"]);
        let long = "{\"city\":\"Oslo\",\"days\":3}";
        let parts = fragments(long);
        assert!(parts.len() >= 2 && parts.iter().all(|p| p.chars().count() <= 8));
        assert_eq!(parts.concat(), long);
        assert_eq!(fragments("é"), ["é"]);
    }

    #[test]
    fn the_record_of_tools_in_both_formats() {
        let openai = json!({
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d"}}],
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1"}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "12 degrees"},
            ],
        });
        assert_eq!(
            recorded(&openai),
            (
                vec!["get_weather".to_owned()],
                vec![RecordedToolResult {
                    call_id: "call_1".into(),
                    content: "12 degrees".into()
                }]
            )
        );
        let anthropic = json!({
            "tools": [{"name": "a", "input_schema": {}}, {"name": "b", "input_schema": {}}],
            "messages": [{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "y"}]},
                {"type": "text", "text": "and?"},
            ]}],
        });
        let (names, results) = recorded(&anthropic);
        assert_eq!(names, ["a", "b"]);
        assert_eq!(
            results,
            [
                RecordedToolResult {
                    call_id: "toolu_1".into(),
                    content: "x".into()
                },
                RecordedToolResult {
                    call_id: "toolu_2".into(),
                    content: "y".into()
                },
            ]
        );
        assert_eq!(recorded(&json!("not an object")), (vec![], vec![]));
        assert_eq!(offered_words(&openai["tools"]), 2);
    }
}
