//! The runtime's `Client` against the fake, in both wire formats: the fake is checked to speak
//! the formats the client expects, and the client's retries, timeouts and error mapping are
//! checked against real HTTP.

use bastion_fake_provider::{FakeHandle, FakeProvider, RecordedToolResult};
use bastion_runtime::{
    ChatMessage, ChatRequest, Client, ClientConfig, Endpoint, EventStream, ProviderError,
    ProviderKind, Role, StreamEvent, ToolCall, ToolSpec, Usage,
};
use futures::StreamExt;
use secrecy::SecretString;
use serde_json::json;
use std::time::{Duration, Instant};

const KEY: &str = "sk-test-0123456789abcdef";
const BOTH: [ProviderKind; 2] = [ProviderKind::OpenAi, ProviderKind::Anthropic];

fn endpoint(fake: &FakeHandle, kind: ProviderKind, key: &str) -> Endpoint {
    let base = match kind {
        ProviderKind::OpenAi => fake.base_url_openai(),
        ProviderKind::Anthropic => fake.base_url_anthropic(),
    };
    Endpoint {
        kind,
        base_url: base.parse().unwrap(),
        api_key: SecretString::from(key),
    }
}

/// Retries without real waiting, and timeouts short enough for tests.
fn client() -> Client {
    Client::new(ClientConfig {
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        max_attempts: 3,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(10),
        // The fake listens on loopback: allowed here as an operator would allow a local model.
        private_hosts: vec!["127.0.0.1".into()],
    })
    .unwrap()
}

fn request(text: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        model: "fake-model".into(),
        system: Some("be brief".into()),
        messages: vec![
            ChatMessage::new(Role::User, "first question"),
            ChatMessage::new(Role::Assistant, "first answer"),
            ChatMessage::new(Role::User, text),
        ],
        temperature: Some(0.2),
        max_tokens,
        tools: vec![],
    }
}

/// The prompt of `request(text)` in words: "be brief" + 2 + 2 + `text`.
fn prompt_words(text: &str) -> u64 {
    6 + text.split_whitespace().count() as u64
}

/// Everything a stream yields: its deltas, its tool calls and its end (Done, or an error).
struct Outcome {
    deltas: Vec<String>,
    calls: Vec<Vec<ToolCall>>,
    done: Vec<(String, Usage)>,
    error: Option<ProviderError>,
}

async fn drain(mut stream: EventStream) -> Outcome {
    let mut out = Outcome {
        deltas: vec![],
        calls: vec![],
        done: vec![],
        error: None,
    };
    while let Some(item) = stream.next().await {
        match item {
            Ok(StreamEvent::Delta(text)) => {
                assert!(out.done.is_empty(), "a delta after Done");
                assert!(out.calls.is_empty(), "a delta after the tool calls");
                out.deltas.push(text);
            }
            Ok(StreamEvent::ToolCalls(calls)) => {
                assert!(out.done.is_empty(), "tool calls after Done");
                out.calls.push(calls);
            }
            Ok(StreamEvent::Done {
                finish_reason,
                usage,
            }) => out.done.push((finish_reason, usage)),
            Err(err) => {
                assert!(out.error.is_none(), "two errors");
                out.error = Some(err);
            }
        }
    }
    out
}

#[tokio::test]
async fn complete_in_both_formats() {
    let fake = FakeProvider::start();
    let client = client();
    for kind in BOTH {
        let got = client
            .complete(&endpoint(&fake, kind, KEY), &request("hello there", 100))
            .await
            .unwrap();
        assert_eq!(got.content, "You said: hello there", "{kind:?}");
        assert_eq!(got.finish_reason, "stop");
        assert_eq!(
            got.usage,
            Usage {
                input_tokens: prompt_words("hello there"),
                output_tokens: 4
            }
        );
    }
    let sent = fake.requests();
    assert_eq!(sent.len(), 2);
    let (openai, anthropic) = (&sent[0], &sent[1]);
    assert_eq!(openai.path, "/v1/chat/completions");
    assert_eq!(openai.api_key, KEY);
    assert_eq!(openai.body["stream"], false);
    assert_eq!(openai.body["messages"][0]["role"], "system");
    assert_eq!(openai.body["messages"].as_array().unwrap().len(), 4);
    assert_eq!(anthropic.path, "/v1/messages");
    assert_eq!(anthropic.api_key, KEY);
    assert_eq!(anthropic.body["system"], "be brief");
    assert_eq!(anthropic.body["max_tokens"], 100);
    assert_eq!(anthropic.body["messages"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn stream_in_both_formats() {
    let fake = FakeProvider::start();
    let client = client();
    for kind in BOTH {
        let stream = client
            .stream(&endpoint(&fake, kind, KEY), &request("hello there", 100))
            .await
            .unwrap();
        let out = drain(stream).await;
        assert!(out.error.is_none(), "{kind:?}: {:?}", out.error);
        assert_eq!(
            out.deltas,
            ["You", " said:", " hello", " there"],
            "{kind:?}"
        );
        assert_eq!(
            out.done,
            [(
                "stop".to_owned(),
                Usage {
                    input_tokens: prompt_words("hello there"),
                    output_tokens: 4
                }
            )]
        );
    }
    let sent = fake.requests();
    assert_eq!(sent[0].body["stream"], true);
    assert_eq!(sent[0].body["stream_options"]["include_usage"], true);
    assert_eq!(sent[1].body["stream"], true);
}

#[tokio::test]
async fn max_tokens_cuts_the_answer_with_finish_length() {
    let fake = FakeProvider::start();
    let client = client();
    for kind in BOTH {
        let ep = endpoint(&fake, kind, KEY);
        let got = client
            .complete(&ep, &request("one two three", 2))
            .await
            .unwrap();
        assert_eq!(got.content, "You said:", "{kind:?}");
        assert_eq!(got.finish_reason, "length", "{kind:?}");
        assert_eq!(got.usage.output_tokens, 2);

        let out = drain(
            client
                .stream(&ep, &request("one two three", 3))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(out.deltas.concat(), "You said: one");
        assert_eq!(out.done[0].0, "length", "{kind:?}");
        assert_eq!(out.done[0].1.output_tokens, 3);
    }
}

#[tokio::test]
async fn a_fixed_reply_replaces_the_echo() {
    let fake = FakeProvider::start();
    fake.set_reply(Some("Fixed answer here.".into()));
    for kind in BOTH {
        let got = client()
            .complete(&endpoint(&fake, kind, KEY), &request("ignored", 100))
            .await
            .unwrap();
        assert_eq!(got.content, "Fixed answer here.");
    }
}

#[tokio::test]
async fn transient_failures_are_retried() {
    let fake = FakeProvider::start();
    let client = client();
    for kind in BOTH {
        let ep = endpoint(&fake, kind, KEY);
        let before = fake.request_count();
        fake.fail_next(2, 503);
        let got = client.complete(&ep, &request("hi", 100)).await.unwrap();
        assert_eq!(got.content, "You said: hi");
        assert_eq!(
            fake.request_count() - before,
            3,
            "{kind:?}: 2 failures + 1 success"
        );

        // A stream is retried the same way, before any of it is handed out.
        fake.fail_next(2, 503);
        let out = drain(client.stream(&ep, &request("hi", 100)).await.unwrap()).await;
        assert_eq!(out.deltas.concat(), "You said: hi");
        assert_eq!(out.done.len(), 1);
    }
    // Anthropic's "overloaded" status is retried too.
    fake.fail_next(2, 529);
    client
        .complete(
            &endpoint(&fake, ProviderKind::Anthropic, KEY),
            &request("hi", 100),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn persistent_rate_limiting_gives_rate_limited_after_max_attempts() {
    let fake = FakeProvider::start();
    let client = client();
    for kind in BOTH {
        let before = fake.request_count();
        fake.fail_next(5, 429);
        let err = client
            .complete(&endpoint(&fake, kind, KEY), &request("hi", 100))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ProviderError::RateLimited { retry_after: Some(d) } if d.is_zero()),
            "{kind:?}: {err:?}"
        );
        assert_eq!(err.kind(), "rate_limited");
        assert_eq!(fake.request_count() - before, 3, "max_attempts in total");
        fake.fail_next(0, 429);
    }
}

#[tokio::test]
async fn server_errors_after_the_last_attempt_are_unavailable() {
    let fake = FakeProvider::start();
    let once = Client::new(ClientConfig {
        max_attempts: 1,
        private_hosts: vec!["127.0.0.1".into()],
        ..ClientConfig::default()
    })
    .unwrap();
    fake.fail_next(1, 500);
    let err = once
        .complete(
            &endpoint(&fake, ProviderKind::OpenAi, KEY),
            &request("hi", 100),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Unavailable { status: 500 }),
        "{err:?}"
    );
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn a_stalled_stream_ends_in_timeout_after_the_idle_limit() {
    let fake = FakeProvider::start();
    fake.set_stall_after(Some(2));
    let client = Client::new(ClientConfig {
        idle_timeout: Duration::from_millis(300),
        private_hosts: vec!["127.0.0.1".into()],
        ..ClientConfig::default()
    })
    .unwrap();
    for kind in BOTH {
        let started = Instant::now();
        let stream = client
            .stream(&endpoint(&fake, kind, KEY), &request("a b c d", 100))
            .await
            .unwrap();
        let out = drain(stream).await;
        assert_eq!(out.deltas, ["You", " said:"], "{kind:?}");
        assert!(out.done.is_empty());
        assert!(
            matches!(out.error, Some(ProviderError::Timeout)),
            "{:?}",
            out.error
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
}

#[tokio::test]
async fn a_stream_cut_mid_answer_is_a_protocol_error() {
    let fake = FakeProvider::start();
    fake.set_stall_after(Some(1));
    for kind in BOTH {
        let mut stream = client()
            .stream(&endpoint(&fake, kind, KEY), &request("a b c", 100))
            .await
            .unwrap();
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first, StreamEvent::Delta("You".into()));
        fake.cut_streams();
        let out = drain(stream).await;
        assert!(out.done.is_empty(), "{kind:?}");
        assert!(
            matches!(out.error, Some(ProviderError::Protocol(_))),
            "{kind:?}: {:?}",
            out.error
        );
    }
}

#[tokio::test]
async fn token_delay_paces_the_stream() {
    let fake = FakeProvider::start();
    fake.set_token_delay(Duration::from_millis(40));
    let started = Instant::now();
    let out = drain(
        client()
            .stream(
                &endpoint(&fake, ProviderKind::OpenAi, KEY),
                &request("x", 100),
            )
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(out.deltas.concat(), "You said: x");
    // role chunk + 3 deltas + finish + usage + [DONE]: 7 pauses.
    assert!(started.elapsed() >= Duration::from_millis(7 * 40));
}

#[tokio::test]
async fn a_rejected_key_is_unauthorized_and_never_shown() {
    let fake = FakeProvider::start();
    fake.reject_key(KEY);
    for kind in BOTH {
        for stream in [false, true] {
            let ep = endpoint(&fake, kind, KEY);
            let err = if stream {
                client()
                    .stream(&ep, &request("hi", 100))
                    .await
                    .err()
                    .unwrap()
            } else {
                client()
                    .complete(&ep, &request("hi", 100))
                    .await
                    .unwrap_err()
            };
            assert!(matches!(err, ProviderError::Unauthorized), "{err:?}");
            let shown = format!("{err} {err:?}");
            assert!(
                !shown.contains(KEY) && !shown.contains("89abcdef"),
                "{shown}"
            );
        }
    }
    // Not retried: a bad key stays bad.
    assert_eq!(fake.request_count(), 4);
    // No key at all is refused too.
    let err = client()
        .complete(
            &endpoint(&fake, ProviderKind::OpenAi, ""),
            &request("hi", 100),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unauthorized), "{err:?}");
}

#[tokio::test]
async fn a_refused_request_is_rejected_with_the_providers_message() {
    let fake = FakeProvider::start();
    let err = client()
        .complete(
            &endpoint(&fake, ProviderKind::Anthropic, KEY),
            &request("hi", 0),
        )
        .await
        .unwrap_err();
    match &err {
        ProviderError::Rejected { status, message } => {
            assert_eq!(*status, 400);
            assert_eq!(
                message,
                "max_tokens: Input should be greater than or equal to 1"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.request_count(), 1, "a 400 is not retried");
}

#[tokio::test]
async fn a_dead_provider_is_connect() {
    let fake = FakeProvider::start();
    let ep = endpoint(&fake, ProviderKind::OpenAi, KEY);
    fake.shutdown();
    // Give the accept loop a moment to drop the listener.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = client()
        .complete(&ep, &request("hi", 100))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Connect), "{err:?}");
    assert_eq!(err.to_string(), "could not connect to the provider");
}

#[tokio::test]
async fn recording_can_be_switched_off() {
    let fake = FakeProvider::start();
    fake.set_recording(false);
    let ep = endpoint(&fake, ProviderKind::OpenAi, KEY);
    client().complete(&ep, &request("hi", 10)).await.unwrap();
    assert!(fake.requests().is_empty());
    assert_eq!(fake.request_count(), 1);
    fake.set_recording(true);
    client().complete(&ep, &request("hi", 10)).await.unwrap();
    assert_eq!(fake.requests().len(), 1);
    fake.clear_requests();
    assert!(fake.requests().is_empty());
}

fn weather_tool() -> ToolSpec {
    ToolSpec {
        name: "get_weather".into(),
        description: "The current weather in a city".into(),
        parameters: json!({
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        }),
    }
}

fn tool_request(messages: Vec<ChatMessage>) -> ChatRequest {
    ChatRequest {
        model: "fake-model".into(),
        system: Some("be brief".into()),
        messages,
        temperature: None,
        max_tokens: 100,
        tools: vec![weather_tool()],
    }
}

/// What one call answered, streamed or not: its text, its tool calls, its finish reason.
struct Answered {
    text: String,
    calls: Vec<ToolCall>,
    finish_reason: String,
    usage: Usage,
}

async fn ask(
    client: &Client,
    ep: &Endpoint,
    req: &ChatRequest,
    stream: bool,
) -> Result<Answered, ProviderError> {
    if !stream {
        let c = client.complete(ep, req).await?;
        return Ok(Answered {
            text: c.content,
            calls: c.tool_calls,
            finish_reason: c.finish_reason,
            usage: c.usage,
        });
    }
    let out = drain(client.stream(ep, req).await?).await;
    if let Some(err) = out.error {
        return Err(err);
    }
    assert_eq!(out.done.len(), 1);
    assert!(out.calls.len() <= 1, "ToolCalls is sent at most once");
    let (finish_reason, usage) = out.done.into_iter().next().unwrap();
    Ok(Answered {
        text: out.deltas.concat(),
        calls: out.calls.into_iter().flatten().collect(),
        finish_reason,
        usage,
    })
}

fn arguments(call: &ToolCall) -> serde_json::Value {
    serde_json::from_str(&call.arguments).unwrap()
}

#[tokio::test]
async fn a_tool_call_round_trip_in_both_formats_whole_and_streamed() {
    let fake = FakeProvider::start();
    let client = client();
    for kind in BOTH {
        for stream in [false, true] {
            let what = format!("{kind:?}, stream: {stream}");
            let ep = endpoint(&fake, kind, KEY);
            fake.clear_requests();
            let question = ChatMessage::new(Role::User, r#"CALL get_weather {"city":"Oslo"}"#);
            let first = ask(&client, &ep, &tool_request(vec![question.clone()]), stream)
                .await
                .unwrap();
            assert_eq!(first.calls.len(), 1, "{what}");
            let call = &first.calls[0];
            assert_eq!(call.name, "get_weather", "{what}");
            assert_eq!(arguments(call), json!({"city": "Oslo"}), "{what}");
            assert!(!call.id.is_empty(), "{what}");
            assert_eq!(first.text, "", "{what}");
            assert_eq!(first.finish_reason, "tool_calls", "{what}");
            assert!(first.usage.output_tokens > 0, "{what}");

            let second = ask(
                &client,
                &ep,
                &tool_request(vec![
                    question,
                    ChatMessage::assistant_calls("", first.calls.clone()),
                    ChatMessage::tool_result(call.id.clone(), "12 degrees"),
                ]),
                stream,
            )
            .await
            .unwrap();
            assert_eq!(second.text, "Tool results: 12 degrees", "{what}");
            assert!(second.calls.is_empty(), "{what}");
            assert_eq!(second.finish_reason, "stop", "{what}");

            let sent = fake.requests();
            assert_eq!(sent.len(), 2, "{what}");
            assert_eq!(sent[0].tools, ["get_weather"], "{what}");
            assert!(sent[0].tool_results.is_empty(), "{what}");
            assert_eq!(
                sent[1].tool_results,
                [RecordedToolResult {
                    call_id: call.id.clone(),
                    content: "12 degrees".into()
                }],
                "{what}"
            );
        }
    }
}

#[tokio::test]
async fn several_calls_and_their_results_in_both_formats() {
    let fake = FakeProvider::start();
    let client = client();
    for kind in BOTH {
        for stream in [false, true] {
            let what = format!("{kind:?}, stream: {stream}");
            let ep = endpoint(&fake, kind, KEY);
            // `lookup` was never offered: models do that, and the fake proposes it anyway.
            let question = ChatMessage::new(
                Role::User,
                "CALL get_weather {\"city\": \"Oslo\", \"unit\": \"celsius\"}\nCALL lookup {\"q\": \"fjord\"}",
            );
            let first = ask(&client, &ep, &tool_request(vec![question.clone()]), stream)
                .await
                .unwrap();
            let names: Vec<&str> = first.calls.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, ["get_weather", "lookup"], "{what}");
            assert_eq!(
                arguments(&first.calls[0]),
                json!({"city": "Oslo", "unit": "celsius"}),
                "{what}"
            );
            assert_eq!(arguments(&first.calls[1]), json!({"q": "fjord"}), "{what}");
            assert_ne!(first.calls[0].id, first.calls[1].id, "{what}");

            // Both results in one go: Anthropic needs them in one user message, which the
            // fake checks (a result not answering the message right before is refused).
            let results = vec![
                question,
                ChatMessage::assistant_calls("Looking.", first.calls.clone()),
                ChatMessage::tool_result(first.calls[0].id.clone(), "12 degrees"),
                ChatMessage::tool_result(first.calls[1].id.clone(), "a long inlet"),
            ];
            let second = ask(&client, &ep, &tool_request(results.clone()), stream)
                .await
                .unwrap();
            assert_eq!(
                second.text, "Tool results: 12 degrees | a long inlet",
                "{what}"
            );

            // A tool result can ask for the next call.
            let mut chained = results;
            chained.pop();
            chained.push(ChatMessage::tool_result(
                first.calls[1].id.clone(),
                "CALL get_weather {\"city\": \"Bergen\"}",
            ));
            let third = ask(&client, &ep, &tool_request(chained), stream)
                .await
                .unwrap();
            assert_eq!(third.calls.len(), 1, "{what}");
            assert_eq!(arguments(&third.calls[0]), json!({"city": "Bergen"}));
        }
    }
}

#[tokio::test]
async fn a_tool_result_for_an_unknown_call_is_rejected() {
    let fake = FakeProvider::start();
    let client = client();
    let proposed = ToolCall {
        id: "call_real".into(),
        name: "get_weather".into(),
        arguments: r#"{"city":"Oslo"}"#.into(),
    };
    let req = tool_request(vec![
        ChatMessage::new(Role::User, "weather?"),
        ChatMessage::assistant_calls("", vec![proposed]),
        ChatMessage::tool_result("call_unknown", "12 degrees"),
    ]);
    for kind in BOTH {
        for stream in [false, true] {
            let before = fake.request_count();
            let err = ask(&client, &endpoint(&fake, kind, KEY), &req, stream)
                .await
                .err()
                .unwrap();
            match &err {
                ProviderError::Rejected { status, message } => {
                    assert_eq!(*status, 400, "{kind:?}");
                    assert!(message.contains("call_unknown"), "{kind:?}: {message}");
                }
                other => panic!("{kind:?}, stream: {stream}: {other:?}"),
            }
            assert_eq!(fake.request_count() - before, 1, "a 400 is not retried");
        }
    }
}

/// A provider key's base URL is a tenant admin's to set: a loopback endpoint is refused
/// unless the operator listed its exact host, and the refused call never leaves bastion.
#[tokio::test]
async fn a_private_endpoint_is_refused_unless_its_host_is_listed() {
    let fake = FakeProvider::start();
    let strict = Client::new(ClientConfig {
        max_attempts: 1,
        ..ClientConfig::default()
    })
    .unwrap();
    for kind in BOTH {
        let err = strict
            .complete(&endpoint(&fake, kind, KEY), &request("hi", 10))
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::AddressRefused), "{err:?}");
    }
    // A name resolving to loopback is refused by the resolver, before any connection.
    let by_name = Endpoint {
        kind: ProviderKind::OpenAi,
        base_url: fake
            .base_url_openai()
            .replace("127.0.0.1", "localhost")
            .parse()
            .unwrap(),
        api_key: SecretString::from(KEY),
    };
    let err = strict
        .complete(&by_name, &request("hi", 10))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::AddressRefused), "{err:?}");
    assert!(fake.requests().is_empty(), "nothing reached the endpoint");
    // Listing another loopback spelling does not allow this one.
    let other = Client::new(ClientConfig {
        max_attempts: 1,
        private_hosts: vec!["localhost".into(), "127.0.0.2".into()],
        ..ClientConfig::default()
    })
    .unwrap();
    let err = other
        .complete(
            &endpoint(&fake, ProviderKind::OpenAi, KEY),
            &request("hi", 10),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::AddressRefused), "{err:?}");
    assert!(fake.requests().is_empty());
    // The listed name works.
    other.complete(&by_name, &request("hi", 10)).await.unwrap();
}
