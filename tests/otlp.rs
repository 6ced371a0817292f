//! LLM tracing over OTLP: with `otlp_endpoint` set, a model call reaches a collector as a span
//! with the OpenTelemetry GenAI attributes, numbers as numbers, and neither the provider key
//! nor the conversation's text.

mod common;

use common::chat::{Chat, MODEL};
use common::otlp::{start_collector, Received};
use common::Backend;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

/// Every span received, with the resource it came from.
fn spans(received: &Received) -> Vec<(Value, Value)> {
    let mut out = Vec::new();
    for body in received.lock().unwrap().iter() {
        let body: Value = serde_json::from_str(body).expect("OTLP/JSON body");
        for rs in body["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for span in ss["spans"].as_array().into_iter().flatten() {
                    out.push((rs["resource"].clone(), span.clone()));
                }
            }
        }
    }
    out
}

/// The `AnyValue` of attribute `key` in an OTLP attribute list.
fn attr<'a>(attributes: &'a Value, key: &str) -> &'a Value {
    attributes
        .as_array()
        .into_iter()
        .flatten()
        .find(|kv| kv["key"] == key)
        .map(|kv| &kv["value"])
        .unwrap_or(&Value::Null)
}

/// An OTLP/JSON integer (`{"intValue": "12"}`: a string, as 64-bit integers are in JSON).
fn int(v: &Value) -> Option<i64> {
    match &v["intValue"] {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_call_is_exported_as_a_gen_ai_span() {
    let received = Received::default();
    let collector = start_collector(received.clone()).await;
    let c = Chat::start_with_env(
        Backend::Sqlite,
        "You are the tenant's helper.",
        vec![
            ("BASTION_OTLP_ENDPOINT".into(), collector),
            // The batch goes out after 200 ms instead of the default 5 s.
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into()),
        ],
    )
    .await;
    // A tool the model will call: its execution is a span of its own.
    let (status, tool) =
        c.s.post(
            &c.s.assistant_path("/tools"),
            &c.owner,
            json!({"name": "ls", "kind": "builtin", "builtin": "list_files", "risk": "read",
                   "allowed_roles": ["owner"], "approval": {"rule": "never"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tool}");
    let conv = c.conversation(&c.owner).await;
    let (status, events) = c.say(&c.owner, &conv, "CALL ls {\"path\": \"\"}").await;
    assert_eq!(status, StatusCode::OK, "{events:?}");
    let mut tool_span = None;
    for _ in 0..100 {
        tool_span = spans(&received)
            .into_iter()
            .find(|(_, s)| s["name"] == "execute_tool ls");
        if tool_span.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, tool_span) = tool_span.expect("no execute_tool span reached the collector");
    let a = &tool_span["attributes"];
    assert_eq!(
        attr(a, "gen_ai.operation.name")["stringValue"],
        "execute_tool"
    );
    assert_eq!(attr(a, "gen_ai.tool.name")["stringValue"], "ls");
    assert_eq!(
        attr(a, "bastion.tool.outcome")["stringValue"],
        "ok",
        "{tool_span}"
    );
    received.lock().unwrap().clear();

    let said = "hello from the test";
    let (status, events) = c.say(&c.owner, &conv, said).await;
    assert_eq!(status, StatusCode::OK, "{events:?}");
    assert_eq!(
        events.last().map(|e| e.0.as_str()),
        Some("done"),
        "{events:?}"
    );

    let name = format!("chat {MODEL}");
    let mut found = None;
    for _ in 0..100 {
        found = spans(&received)
            .into_iter()
            .find(|(_, s)| s["name"] == name);
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (resource, span) = found.unwrap_or_else(|| {
        panic!(
            "no span {name:?} reached the collector; it got {:?}; bastion logged {:?}",
            received.lock().unwrap(),
            c.s.logs()
        )
    });

    assert_eq!(
        attr(&resource["attributes"], "service.name")["stringValue"],
        "bastion"
    );
    assert_eq!(span["kind"], 3, "SPAN_KIND_CLIENT: {span}");
    let a = &span["attributes"];
    assert_eq!(attr(a, "gen_ai.operation.name")["stringValue"], "chat");
    assert!(
        attr(a, "gen_ai.system")["stringValue"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{span}"
    );
    assert_eq!(attr(a, "gen_ai.request.model")["stringValue"], MODEL);
    assert_eq!(attr(a, "gen_ai.response.model")["stringValue"], MODEL);
    assert_eq!(
        int(attr(a, "gen_ai.request.max_tokens")),
        Some(256),
        "{span}"
    );
    let input = int(attr(a, "gen_ai.usage.input_tokens"));
    let output = int(attr(a, "gen_ai.usage.output_tokens"));
    assert!(input.is_some_and(|n| n > 0), "input tokens: {span}");
    assert!(output.is_some_and(|n| n > 0), "output tokens: {span}");
    assert_eq!(
        attr(a, "gen_ai.response.finish_reasons")["arrayValue"]["values"],
        json!([{"stringValue": "stop"}]),
        "{span}"
    );
    let cost = attr(a, "bastion.cost_usd")["doubleValue"].as_f64();
    assert!(cost.is_some_and(|usd| usd > 0.0), "cost: {span}");
    // $1 and $2 per million tokens in and out (the test configuration's prices).
    let expected = (input.unwrap() as f64 + 2.0 * output.unwrap() as f64) / 1e6;
    assert!(
        (cost.unwrap() - expected).abs() < 1e-9,
        "{cost:?} vs {expected}"
    );
    assert!(
        int(attr(a, "bastion.time_to_first_token_ms")).is_some_and(|ms| ms >= 0),
        "time to first token: {span}"
    );
    assert_eq!(
        attr(a, "bastion.assistant")["stringValue"],
        c.s.tenant.assistant_id
    );
    assert!(attr(a, "error.type").is_null(), "{span}");
    let start: u64 = span["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let end: u64 = span["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    assert!(
        end > start,
        "the span's duration is the call's latency: {span}"
    );

    // Contents are not exported: no key, no message text, no answer, in anything sent.
    for body in received.lock().unwrap().iter() {
        assert!(
            !body.contains(&c.secret),
            "the provider key was exported: {body}"
        );
        assert!(!body.contains(said), "the message was exported: {body}");
        assert!(
            !body.contains("You said"),
            "the answer was exported: {body}"
        );
        assert!(
            !body.contains("tenant's helper"),
            "the prompt was exported: {body}"
        );
    }
}
