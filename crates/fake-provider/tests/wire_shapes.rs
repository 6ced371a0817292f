//! The fake's answers checked field by field with a plain HTTP client, so they are the real
//! formats and not merely what our own client happens to accept.

use bastion_fake_provider::FakeProvider;
use serde_json::{json, Value};

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(
    url: String,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> (u16, Option<String>, String) {
    let mut request = http().post(url).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, content_type, response.text().await.unwrap())
}

/// The `data:` payloads of an event stream, with their `event:` names.
fn events(text: &str) -> Vec<(Option<String>, String)> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut name = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = v.to_owned();
                }
            }
            (name, data)
        })
        .collect()
}

const OPENAI_AUTH: (&str, &str) = ("authorization", "Bearer sk-fake");
const ANTHROPIC_HEADERS: [(&str, &str); 2] = [
    ("x-api-key", "sk-ant-fake"),
    ("anthropic-version", "2023-06-01"),
];

#[tokio::test]
async fn openai_completion_object() {
    let fake = FakeProvider::start();
    let body = json!({"model": "m", "messages": [
        {"role": "system", "content": "sys words"},
        {"role": "user", "content": [{"type": "text", "text": "hi you"}]}
    ]});
    let (status, _, text) = post(
        format!("{}/chat/completions", fake.base_url_openai()),
        &[OPENAI_AUTH],
        body.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].as_u64().unwrap() > 0);
    assert_eq!(v["model"], "m");
    assert_eq!(v["choices"][0]["index"], 0);
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], "You said: hi you");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8})
    );
}

#[tokio::test]
async fn openai_chunk_stream() {
    let fake = FakeProvider::start();
    let body = json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": "hi"}]});
    let (status, content_type, text) = post(
        format!("{}/chat/completions", fake.base_url_openai()),
        &[OPENAI_AUTH],
        body.to_string(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some("text/event-stream"));
    let events = events(&text);
    assert!(events.iter().all(|(name, _)| name.is_none()));
    let data: Vec<&str> = events.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(data.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "You said: hi");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert!(finish["usage"].is_null());
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4})
    );
}

#[tokio::test]
async fn openai_stream_without_include_usage_has_no_usage_chunk() {
    let fake = FakeProvider::start();
    let body =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let (_, _, text) = post(
        format!("{}/chat/completions", fake.base_url_openai()),
        &[OPENAI_AUTH],
        body.to_string(),
    )
    .await;
    assert!(!text.contains("usage"), "{text}");
}

#[tokio::test]
async fn anthropic_message_object() {
    let fake = FakeProvider::start();
    let body = json!({"model": "claude", "max_tokens": 2, "system": "be nice",
                      "messages": [{"role": "user", "content": "one two three"}]});
    let (status, _, text) = post(
        format!("{}/messages", fake.base_url_anthropic()),
        &ANTHROPIC_HEADERS,
        body.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude");
    assert_eq!(v["content"], json!([{"type": "text", "text": "You said:"}]));
    assert_eq!(v["stop_reason"], "max_tokens");
    assert!(v["stop_sequence"].is_null());
    assert_eq!(v["usage"], json!({"input_tokens": 5, "output_tokens": 2}));
}

#[tokio::test]
async fn anthropic_event_stream() {
    let fake = FakeProvider::start();
    let body = json!({"model": "claude", "max_tokens": 100, "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]});
    let (status, content_type, text) = post(
        format!("{}/messages", fake.base_url_anthropic()),
        &ANTHROPIC_HEADERS,
        body.to_string(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some("text/event-stream"));
    let events = events(&text);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let data: Vec<Value> = events
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    for ((name, _), value) in events.iter().zip(&data) {
        assert_eq!(value["type"], name.as_deref().unwrap());
    }
    assert_eq!(data[0]["message"]["usage"]["input_tokens"], 1);
    let text: String = data[3..6]
        .iter()
        .map(|d| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "You said: hi");
    assert_eq!(data[7]["delta"]["stop_reason"], "end_turn");
    assert_eq!(data[7]["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn errors_come_in_each_providers_shape() {
    let fake = FakeProvider::start();
    let openai = format!("{}/chat/completions", fake.base_url_openai());
    let anthropic = format!("{}/messages", fake.base_url_anthropic());
    let ok_openai = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let ok_anthropic =
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});

    // Missing or wrong keys.
    let (status, _, text) = post(openai.clone(), &[], ok_openai.to_string()).await;
    assert_eq!(status, 401);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");
    assert!(v["error"]["message"].is_string());
    fake.reject_key("sk-fake");
    let (status, _, text) = post(openai.clone(), &[OPENAI_AUTH], ok_openai.to_string()).await;
    assert_eq!(status, 401);
    assert!(
        text.contains("Incorrect API key provided: ***fake."),
        "{text}"
    );
    let (status, _, text) = post(
        anthropic.clone(),
        &[("anthropic-version", "2023-06-01")],
        ok_anthropic.to_string(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
    );

    // A missing anthropic-version header.
    let (status, _, text) = post(
        anthropic.clone(),
        &[("x-api-key", "k")],
        ok_anthropic.to_string(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(text.contains("anthropic-version"), "{text}");

    // Malformed bodies are a 400 in shape, never a panic or a dropped connection.
    let good_openai = ("authorization", "Bearer other");
    for body in [
        "not json",
        "{}",
        r#"{"model": 1, "messages": "x"}"#,
        "[]",
        "",
    ] {
        let (status, _, text) = post(openai.clone(), &[good_openai], body).await;
        assert_eq!(status, 400, "{body}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let (status, _, text) = post(anthropic.clone(), &ANTHROPIC_HEADERS, body).await;
        assert_eq!(status, 400, "{body}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    // A system role inside Anthropic messages is refused, as the real API does.
    let body = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}]});
    let (status, _, _) = post(anthropic.clone(), &ANTHROPIC_HEADERS, body.to_string()).await;
    assert_eq!(status, 400);

    // Injected failures, with retry-after on 429.
    fake.fail_next(1, 429);
    let response = http()
        .post(&openai)
        .header("authorization", "Bearer other")
        .body(ok_openai.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "0");
    let v: Value = response.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    fake.fail_next(1, 529);
    let (status, _, text) = post(anthropic, &ANTHROPIC_HEADERS, ok_anthropic.to_string()).await;
    assert_eq!(status, 529);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");
}

#[tokio::test]
async fn models_and_the_request_record() {
    let fake = FakeProvider::start();
    let response = http()
        .get(format!("{}/models", fake.base_url_openai()))
        .header("authorization", "Bearer k")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let v: Value = response.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["object"], "model");

    let response = http()
        .get(format!("{}/models", fake.base_url_anthropic()))
        .header("x-api-key", "k")
        .send()
        .await
        .unwrap();
    let v: Value = response.json().await.unwrap();
    assert_eq!(v["data"][0]["type"], "model");
    assert_eq!(v["has_more"], false);

    let response = http()
        .post(format!("http://{}/nowhere", fake.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // The record, also served for out-of-process users of the binary.
    let v: Value = http()
        .get(format!("http://{}/_fake/requests", fake.addr()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v,
        json!([
            {"path": "/v1/models", "api_key": "k", "body": null},
            {"path": "/v1/models", "api_key": "k", "body": null},
            {"path": "/nowhere", "api_key": "", "body": null},
        ])
    );
    assert_eq!(fake.request_count(), 3);
}

const CALLS: &str = "CALL get_weather {\"city\":\"Oslo\"}\nCALL now";

#[tokio::test]
async fn openai_tool_calls_whole_and_in_fragments() {
    let fake = FakeProvider::start();
    let url = format!("{}/chat/completions", fake.base_url_openai());
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "d", "parameters": {"type": "object"}}}]);
    let body =
        json!({"model": "m", "tools": tools, "messages": [{"role": "user", "content": CALLS}]});
    let (status, _, text) = post(url.clone(), &[OPENAI_AUTH], body.to_string()).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let message = &v["choices"][0]["message"];
    assert!(message["content"].is_null());
    let calls = message["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
    assert_ne!(calls[0]["id"], calls[1]["id"]);
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(
        calls[0]["function"],
        json!({"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"})
    );
    // Not offered, proposed anyway.
    assert_eq!(
        calls[1]["function"],
        json!({"name": "now", "arguments": "{}"})
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0);

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (status, _, text) = post(url, &[OPENAI_AUTH], streamed.to_string()).await;
    assert_eq!(status, 200);
    let data: Vec<String> = events(&text).into_iter().map(|(_, d)| d).collect();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let fragments: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .collect();
    // The first fragment of each call names it; the arguments follow in two pieces or more,
    // the two calls' fragments interleaved.
    let indexes: Vec<u64> = fragments
        .iter()
        .map(|f| f["index"].as_u64().unwrap())
        .collect();
    assert_eq!(&indexes[..4], [0, 1, 0, 1]);
    for index in [0, 1] {
        let of_call: Vec<&&Value> = fragments.iter().filter(|f| f["index"] == index).collect();
        assert!(of_call[0]["id"].as_str().unwrap().starts_with("call_"));
        assert_eq!(of_call[0]["type"], "function");
        assert!(of_call[0]["function"]["name"].is_string());
        assert!(of_call[1..].iter().all(|f| f.get("id").is_none()));
        assert!(of_call.len() >= 3, "a head and two pieces at least");
    }
    let arguments: String = fragments
        .iter()
        .filter(|f| f["index"] == 0)
        .filter_map(|f| f["function"]["arguments"].as_str())
        .collect();
    assert_eq!(arguments, "{\"city\":\"Oslo\"}");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    assert!(
        chunks[chunks.len() - 1]["usage"]["completion_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );

    // What the record keeps of it.
    let sent = fake.requests();
    assert_eq!(sent[0].tools, ["get_weather"]);
}

#[tokio::test]
async fn anthropic_tool_use_whole_and_streamed() {
    let fake = FakeProvider::start();
    let url = format!("{}/messages", fake.base_url_anthropic());
    let body = json!({"model": "m", "max_tokens": 50,
                      "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
                      "messages": [{"role": "user", "content": CALLS}]});
    let (status, _, text) = post(url.clone(), &ANTHROPIC_HEADERS, body.to_string()).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let content = v["content"].as_array().unwrap();
    assert_eq!(content.len(), 2);
    assert_eq!(content[0]["type"], "tool_use");
    assert!(content[0]["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(content[0]["name"], "get_weather");
    assert_eq!(content[0]["input"], json!({"city": "Oslo"}));
    assert_eq!(content[1]["input"], json!({}));
    assert_eq!(v["stop_reason"], "tool_use");
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0);

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (_, _, text) = post(url, &ANTHROPIC_HEADERS, streamed.to_string()).await;
    let events = events(&text);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
    let data: Vec<Value> = events
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    let starts: Vec<&Value> = data
        .iter()
        .filter(|d| d["type"] == "content_block_start")
        .collect();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[0]["content_block"]["type"], "tool_use");
    assert_eq!(starts[0]["content_block"]["name"], "get_weather");
    assert_eq!(starts[0]["content_block"]["input"], json!({}));
    let pieces: Vec<&str> = data
        .iter()
        .filter(|d| d["type"] == "content_block_delta" && d["index"] == 0)
        .map(|d| {
            assert_eq!(d["delta"]["type"], "input_json_delta");
            d["delta"]["partial_json"].as_str().unwrap()
        })
        .collect();
    assert!(pieces.len() >= 2);
    assert_eq!(pieces.concat(), "{\"city\":\"Oslo\"}");
    assert_eq!(data[data.len() - 2]["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn tool_results_answering_no_call_are_refused_in_each_providers_shape() {
    let fake = FakeProvider::start();
    let openai = format!("{}/chat/completions", fake.base_url_openai());
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_2", "content": "x"},
    ]});
    let (status, _, text) = post(openai.clone(), &[OPENAI_AUTH], body.to_string()).await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("'call_2'"));
    // Answering the real id is fine, and the answer shows what the model was given.
    let mut ok = body.clone();
    ok["messages"][2]["tool_call_id"] = json!("call_1");
    let (status, _, text) = post(openai, &[OPENAI_AUTH], ok.to_string()).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Tool results: x");

    let anthropic = format!("{}/messages", fake.base_url_anthropic());
    let tool_use = json!({"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]});
    let result = json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}]});
    // The result must answer the message right before it, not an earlier one.
    let late = json!({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "hi"}, tool_use, {"role": "user", "content": "more"},
        {"role": "assistant", "content": "ok"}, result]});
    let (status, _, text) = post(anthropic.clone(), &ANTHROPIC_HEADERS, late.to_string()).await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("toolu_1"));
    let ok = json!({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "hi"}, tool_use, result]});
    let (status, _, text) = post(anthropic, &ANTHROPIC_HEADERS, ok.to_string()).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["content"][0]["text"], "Tool results: x");
}
