//! The client against canned HTTP answers that no well-behaved provider (nor the fake) gives:
//! redirects, cut-off bodies, silence, errors inside a 200 stream, hostile error messages.
//! The server here only replays bytes; parsing is all on the client side under test.

use bastion_runtime::{
    ChatMessage, ChatRequest, Client, ClientConfig, Endpoint, EventStream, ProviderError,
    ProviderKind, Role, StreamEvent, Usage,
};
use futures::StreamExt;
use secrecy::SecretString;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const KEY: &str = "sk-live-SECRET0123456789";

/// What a scripted connection does after reading the request.
#[derive(Clone)]
enum Reply {
    /// Write these bytes, then close.
    Bytes(Vec<u8>),
    /// Write these bytes, then keep the connection open and silent.
    BytesThenHang(Vec<u8>),
}

struct Scripted {
    base: String,
    /// The head (request line and headers) of every request received.
    heads: Arc<Mutex<Vec<String>>>,
}

impl Scripted {
    fn hits(&self) -> usize {
        self.heads.lock().unwrap().len()
    }
}

/// Serves `replies` in order, one per connection; the last one repeats.
async fn scripted(replies: Vec<Reply>) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let reply = replies[n.min(replies.len() - 1)].clone();
            n += 1;
            let seen = seen.clone();
            tokio::spawn(async move {
                let head = read_request(&mut socket).await;
                seen.lock().unwrap().push(head);
                match reply {
                    Reply::Bytes(bytes) => {
                        let _ = socket.write_all(&bytes).await;
                        let _ = socket.shutdown().await;
                    }
                    Reply::BytesThenHang(bytes) => {
                        let _ = socket.write_all(&bytes).await;
                        std::future::pending::<()>().await;
                    }
                }
            });
        }
    });
    Scripted { base, heads }
}

/// Reads one request (head and `content-length` body); returns the head.
async fn read_request(socket: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-request");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await.unwrap();
        buf.extend_from_slice(&chunk[..n]);
    }
    head
}

fn response(status: &str, headers: &[&str], body: &str) -> Reply {
    let mut text = format!("HTTP/1.1 {status}\r\nconnection: close\r\n");
    for h in headers {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    Reply::Bytes(text.into_bytes())
}

/// An event stream that ends when the connection closes (no length, no chunking).
fn event_stream(body: &str) -> Reply {
    Reply::Bytes(
        format!(
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-type: text/event-stream\r\n\r\n{body}"
        )
        .into_bytes(),
    )
}

fn endpoint(base: &str, kind: ProviderKind) -> Endpoint {
    Endpoint {
        kind,
        base_url: base.parse().unwrap(),
        api_key: SecretString::from(KEY),
    }
}

fn client(cfg: ClientConfig) -> Client {
    Client::new(cfg).unwrap()
}

fn fast() -> ClientConfig {
    ClientConfig {
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(50),
        private_hosts: vec!["127.0.0.1".into()],
        ..ClientConfig::default()
    }
}

fn request() -> ChatRequest {
    ChatRequest {
        model: "m".into(),
        system: None,
        messages: vec![ChatMessage::new(Role::User, "hello")],
        temperature: None,
        max_tokens: 10,
        tools: vec![],
    }
}

async fn drain(mut stream: EventStream) -> (Vec<StreamEvent>, Option<ProviderError>) {
    let mut events = vec![];
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => events.push(event),
            Err(err) => {
                assert!(stream.next().await.is_none(), "items after an error");
                return (events, Some(err));
            }
        }
    }
    (events, None)
}

#[tokio::test]
async fn sends_each_formats_headers() {
    let ok = r#"{"choices":[{"index":0,"message":{"content":"x"},"finish_reason":"stop"}]}"#;
    let server = scripted(vec![response("200 OK", &[], ok)]).await;
    client(fast())
        .complete(&endpoint(&server.base, ProviderKind::OpenAi), &request())
        .await
        .unwrap();
    let head = server.heads.lock().unwrap()[0].clone();
    assert!(head.starts_with("post /v1/chat/completions "), "{head}");
    assert!(head.contains(&format!("authorization: bearer {}", KEY.to_lowercase())));

    let ok =
        r#"{"type":"message","content":[{"type":"text","text":"x"}],"stop_reason":"end_turn"}"#;
    let server = scripted(vec![response("200 OK", &[], ok)]).await;
    client(fast())
        .complete(&endpoint(&server.base, ProviderKind::Anthropic), &request())
        .await
        .unwrap();
    let head = server.heads.lock().unwrap()[0].clone();
    assert!(head.starts_with("post /v1/messages "), "{head}");
    assert!(head.contains(&format!("x-api-key: {}", KEY.to_lowercase())));
    assert!(head.contains("anthropic-version: 2023-06-01"));
    assert!(!head.contains("authorization"));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let elsewhere = scripted(vec![response("200 OK", &[], "{}")]).await;
    let location = format!("location: {}/chat/completions", elsewhere.base);
    let server = scripted(vec![response("307 Temporary Redirect", &[&location], "")]).await;
    let err = client(fast())
        .complete(&endpoint(&server.base, ProviderKind::OpenAi), &request())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Protocol(_)), "{err:?}");
    assert_eq!(elsewhere.hits(), 0, "the key went to the redirect target");
}

#[tokio::test]
async fn rejected_messages_are_redacted() {
    let body = format!(
        r#"{{"error":{{"message":"Bad request for key {KEY}\nfrom bst_abcdef123","type":"invalid_request_error"}}}}"#
    );
    let server = scripted(vec![response("400 Bad Request", &[], &body)]).await;
    let err = client(fast())
        .complete(&endpoint(&server.base, ProviderKind::OpenAi), &request())
        .await
        .unwrap_err();
    let shown = err.to_string();
    assert_eq!(
        shown,
        "the provider rejected the request (HTTP 400): Bad request for key [redacted] from [redacted]"
    );
    assert!(!format!("{err:?}").contains("SECRET"));
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn retry_after_is_honoured_up_to_the_cap() {
    let ok = r#"{"choices":[{"index":0,"message":{"content":"x"},"finish_reason":"stop"}]}"#;
    let server = scripted(vec![
        response("429 Too Many Requests", &["retry-after: 30"], "{}"),
        response("200 OK", &[], ok),
    ])
    .await;
    let started = Instant::now();
    client(fast())
        .complete(&endpoint(&server.base, ProviderKind::OpenAi), &request())
        .await
        .unwrap();
    // 30 s asked, 50 ms cap.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(server.hits(), 2);
}

/// The error of a call whose every answer is `status_line`, and how many attempts it made.
async fn failing_with(status_line: &str, body: &str, kind: ProviderKind) -> (ProviderError, usize) {
    let server = scripted(vec![response(status_line, &[], body)]).await;
    let err = client(fast())
        .complete(&endpoint(&server.base, kind), &request())
        .await
        .unwrap_err();
    (err, server.hits())
}

#[tokio::test]
async fn which_statuses_are_retried() {
    // 502 with an HTML body: retried, then Unavailable.
    let (err, hits) =
        failing_with("502 Bad Gateway", "<html>oops</html>", ProviderKind::OpenAi).await;
    assert!(
        matches!(err, ProviderError::Unavailable { status: 502 }),
        "{err:?}"
    );
    assert_eq!(hits, 3);
    // 501 is not transient: one attempt.
    let (err, hits) = failing_with("501 Not Implemented", "", ProviderKind::OpenAi).await;
    assert!(
        matches!(err, ProviderError::Unavailable { status: 501 }),
        "{err:?}"
    );
    assert_eq!(hits, 1);
    // 403 is a key problem: one attempt.
    let (err, hits) = failing_with("403 Forbidden", "", ProviderKind::Anthropic).await;
    assert!(matches!(err, ProviderError::Unauthorized), "{err:?}");
    assert_eq!(hits, 1);
}

#[tokio::test]
async fn silence_before_headers_is_a_timeout_and_not_retried() {
    let server = scripted(vec![Reply::BytesThenHang(vec![])]).await;
    let cfg = ClientConfig {
        response_timeout: Duration::from_millis(200),
        ..fast()
    };
    let err = client(cfg)
        .complete(&endpoint(&server.base, ProviderKind::OpenAi), &request())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Timeout), "{err:?}");
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_body_that_never_completes_is_a_timeout() {
    let head =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"cho";
    let server = scripted(vec![Reply::BytesThenHang(head.to_vec())]).await;
    let cfg = ClientConfig {
        idle_timeout: Duration::from_millis(200),
        ..fast()
    };
    let err = client(cfg)
        .complete(&endpoint(&server.base, ProviderKind::OpenAi), &request())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Timeout), "{err:?}");
}

#[tokio::test]
async fn a_stream_closed_before_its_finish_is_a_protocol_error() {
    let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n";
    let server = scripted(vec![event_stream(body)]).await;
    let stream = client(fast())
        .stream(&endpoint(&server.base, ProviderKind::OpenAi), &request())
        .await
        .unwrap();
    let (events, err) = drain(stream).await;
    assert_eq!(events, [StreamEvent::Delta("Hel".into())]);
    assert!(matches!(err, Some(ProviderError::Protocol(_))), "{err:?}");
}

#[tokio::test]
async fn a_broken_chunked_stream_is_a_protocol_error() {
    let chunk = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3}}}\n\n";
    let bytes = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n",
        chunk.len()
    );
    // The connection closes without the final zero-length chunk.
    let server = scripted(vec![Reply::Bytes(bytes.into_bytes())]).await;
    let stream = client(fast())
        .stream(&endpoint(&server.base, ProviderKind::Anthropic), &request())
        .await
        .unwrap();
    let (events, err) = drain(stream).await;
    assert!(events.is_empty());
    assert!(matches!(err, Some(ProviderError::Protocol(_))), "{err:?}");
}

#[tokio::test]
async fn errors_inside_a_stream_are_mapped_and_redacted() {
    let body = format!(
        "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"usage\":{{\"input_tokens\":3}}}}}}\n\n\
         event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"invalid_request_error\",\"message\":\"bad {KEY}\"}}}}\n\n"
    );
    let server = scripted(vec![event_stream(&body)]).await;
    let stream = client(fast())
        .stream(&endpoint(&server.base, ProviderKind::Anthropic), &request())
        .await
        .unwrap();
    let (_, err) = drain(stream).await;
    match err {
        Some(ProviderError::Rejected {
            status: 400,
            message,
        }) => {
            assert_eq!(message, "bad [redacted]")
        }
        other => panic!("{other:?}"),
    }

    let body = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let server = scripted(vec![event_stream(body)]).await;
    let stream = client(fast())
        .stream(&endpoint(&server.base, ProviderKind::Anthropic), &request())
        .await
        .unwrap();
    let (_, err) = drain(stream).await;
    assert!(
        matches!(err, Some(ProviderError::Unavailable { status: 529 })),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_stream_without_usage_is_billed_an_estimate() {
    // An OpenAI-compatible server that ignores include_usage.
    let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"abcdef\"}}]}\n\n\
                data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
                data: [DONE]\n\n";
    let server = scripted(vec![event_stream(body)]).await;
    let stream = client(fast())
        .stream(&endpoint(&server.base, ProviderKind::OpenAi), &request())
        .await
        .unwrap();
    let (events, err) = drain(stream).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Done {
            finish_reason: "stop".into(),
            // "hello": ceil(5/3) + 4 overhead; "abcdef": ceil(6/3).
            usage: Usage {
                input_tokens: 6,
                output_tokens: 2
            }
        })
    );
}

#[tokio::test]
async fn a_json_answer_to_a_stream_request_is_a_protocol_error() {
    let server = scripted(vec![response(
        "200 OK",
        &["content-type: application/json"],
        "{}",
    )])
    .await;
    let err = client(fast())
        .stream(&endpoint(&server.base, ProviderKind::OpenAi), &request())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ProviderError::Protocol(_)), "{err:?}");
}

#[tokio::test]
async fn nothing_listening_is_connect_after_retries() {
    // Bind and drop, so the port is very likely free.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = client(fast())
        .complete(
            &endpoint(
                &format!("http://user:pw@{addr}/v1?key=q"),
                ProviderKind::OpenAi,
            ),
            &request(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Connect), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("pw") && !shown.contains("key=q"), "{shown}");
}
