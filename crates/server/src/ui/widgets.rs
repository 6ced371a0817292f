//! Pieces every page is made of: the document around a page, values of the API's JSON
//! views as text, and the markup conventions `ui.js` acts on.
//!
//! A form with `data-api` is sent by the script to that API path with `data-method`, its
//! fields as a JSON object (`data-kind` on a field: `number`, `bool`, `list` for checkboxes
//! of one name, `lines` for a textarea of one item per line, `json` for a value that is
//! JSON; an empty field is left out),
//! and `data-done` says what follows success: `reload`, `secret` (show the response's
//! `data-secret` field once), `goto` (`data-goto` with `{field}` taken from the response)
//! or `preview` (show the response and ask to confirm). A button with `data-api` sends
//! `data-body` (JSON) the same way, after `data-confirm` if set.

use super::assets;
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

/// The document around a page's content.
pub fn bare_page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · bastion" }
                link rel="icon" href=(assets::ICON.path());
                link rel="stylesheet" href=(assets::CSS.path());
                script src=(assets::JS.path()) defer {}
            }
            body { (body) }
        }
    }
}

/// A field of a JSON view as text: strings as they are, numbers and booleans written out,
/// lists joined by commas, null and missing as an empty string.
pub fn text(v: &Value, key: &str) -> String {
    plain(&v[key])
}

fn plain(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(", "),
        Value::Object(_) => v.to_string(),
    }
}

/// An RFC 3339 time as `2026-12-05 17:18` (UTC, as stored), or the text unchanged.
pub fn when(v: &Value, key: &str) -> String {
    let t = text(v, key);
    match (t.get(..10), t.get(11..16)) {
        (Some(day), Some(hm)) if t.len() >= 16 => format!("{day} {hm}"),
        _ => t,
    }
}

/// The JSON of an API view, for rendering: a view that cannot be serialized is a bug.
pub fn json<T: serde::Serialize>(view: &T) -> Value {
    serde_json::to_value(view).unwrap_or(Value::Null)
}

/// The element where the script reports an action's outcome (an error's detail).
pub fn outcome() -> Markup {
    html! { p.outcome role="status" aria-live="polite" {} }
}

/// A button that sends one API call, asking first.
pub fn action(label: &str, method: &str, api: &str, body: Option<&Value>, confirm: &str) -> Markup {
    html! {
        button type="button" .danger[method == "DELETE"] data-api=(api) data-method=(method)
            data-body=[body.map(|b| b.to_string())] data-confirm=[(!confirm.is_empty()).then_some(confirm)] { (label) }
    }
}

/// A labelled input.
pub fn field(label: &str, name: &str, kind: &str, required: bool, value: &str) -> Markup {
    let id = format!("f-{name}");
    html! {
        div.field {
            label for=(id) { (label) }
            @match kind {
                "number" => input id=(id) name=(name) type="number" step="any" data-kind="number" required[required] value=(value);
                "password" => input id=(id) name=(name) type="password" autocomplete="off" required[required];
                _ => input id=(id) name=(name) type=(kind) required[required] value=(value);
            }
        }
    }
}

/// A labelled choice among `options` (value, label).
pub fn select(label: &str, name: &str, options: &[(String, String)], chosen: &str) -> Markup {
    let id = format!("f-{name}");
    html! {
        div.field {
            label for=(id) { (label) }
            select id=(id) name=(name) {
                @for (value, text) in options {
                    option value=(value) selected[value == chosen] { (text) }
                }
            }
        }
    }
}

/// A labelled choice whose values are JSON (sent as the value they parse to).
pub fn json_select(label: &str, name: &str, options: &[(String, String)]) -> Markup {
    let id = format!("f-{name}");
    html! {
        div.field {
            label for=(id) { (label) }
            select id=(id) name=(name) data-kind="json" {
                @for (value, text) in options { option value=(value) { (text) } }
            }
        }
    }
}

/// A table of rows with a caption; `empty` when there are none.
pub fn table(caption: &str, head: &[&str], rows: Vec<Markup>, empty: &str) -> Markup {
    html! {
        @if rows.is_empty() {
            p.empty { (empty) }
        } @else {
            div.scroll {
                table {
                    caption { (caption) }
                    thead { tr { @for h in head { th scope="col" { (h) } } } }
                    tbody { @for r in rows { (r) } }
                }
            }
        }
    }
}
