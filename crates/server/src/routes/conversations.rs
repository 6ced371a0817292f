//! Conversations (`/api/v1/assistants/{id}/conversations`): a member starts one (chat),
//! lists and reads their own (conversations.read; everyone's with conversations.read_all),
//! deletes their own, and talks in it: `POST …/messages` answers as Server-Sent Events, and
//! `GET …/ws` does the same over a WebSocket.

use crate::chat::prompt;
use crate::chat::tools::ToolBox;
use crate::chat::turn::{self, Turn, TurnEvent};
use crate::chat::{Ask, CallContext};
use crate::error::{ApiError, ApiResult, Problem};
use crate::flow::{InAssistant, KeyUsed, Meta, PathParams};
use crate::json::ApiJson;
use crate::json::ApiQuery;
use crate::routes::views::rfc3339;
use crate::state::AppState;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bastion_core::{ConversationId, MessageId};
use bastion_runtime::{ChatMessage, Role};
use bastion_store::conversations::{Conversation, Message, MessageRole, MessageStatus};
use bastion_store::AssistantScope;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use utoipa::ToSchema;

/// Most characters in one message.
const MAX_MESSAGE_CHARS: usize = 32_000;

#[derive(Serialize, ToSchema)]
pub struct ConversationView {
    #[schema(format = Uuid)]
    pub id: String,
    pub title: String,
    /// Who started it: `user:<id>` or `key:<id>`.
    pub owner: String,
    pub tokens_used: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Conversation> for ConversationView {
    fn from(c: &Conversation) -> Self {
        ConversationView {
            id: c.id.to_string(),
            title: c.title.clone(),
            owner: c.owner.to_string(),
            tokens_used: c.tokens_used,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MessageView {
    #[schema(format = Uuid)]
    pub id: String,
    pub role: MessageRole,
    pub content: String,
    pub status: MessageStatus,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub created_at: String,
}

impl From<&Message> for MessageView {
    fn from(m: &Message) -> Self {
        MessageView {
            id: m.id.to_string(),
            role: m.role,
            content: m.content.clone(),
            status: m.status,
            input_tokens: m.input_tokens,
            output_tokens: m.output_tokens,
            created_at: rfc3339(m.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ConversationWithMessages {
    #[serde(flatten)]
    pub conversation: ConversationView,
    pub messages: Vec<MessageView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationCreate {
    /// Up to 200 characters; default "New conversation".
    pub title: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageCreate {
    /// The user's message, 1 to 32,000 characters.
    pub content: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// At most this many (1 to 200, default 50).
    pub limit: Option<i64>,
    /// Continue after this conversation (the last id of the previous page).
    pub before: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/assistants/{assistant_id}/conversations", tag = "conversations", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid)), request_body = ConversationCreate,
    responses((status = 201, body = ConversationView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    at: InAssistant,
    ApiJson(input): ApiJson<ConversationCreate>,
) -> ApiResult<(StatusCode, Json<ConversationView>)> {
    let title = match input.title.as_deref().map(str::trim) {
        None | Some("") => "New conversation".to_string(),
        Some(t) => crate::validate::display_name("title", t)?,
    };
    let c = state
        .store
        .conversations()
        .create(&at.scope, &title)
        .await?;
    Ok((StatusCode::CREATED, Json(ConversationView::from(&c))))
}

/// The caller's conversations, or all of the assistant's with conversations.read_all;
/// most recently active first.
#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/conversations", tag = "conversations", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ListQuery),
    responses((status = 200, body = [ConversationView]), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    at: InAssistant,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<ConversationView>>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let before = match q.before.as_deref() {
        Some(b) => Some(
            b.parse::<ConversationId>()
                .map_err(|_| ApiError::Unprocessable("before: a conversation id".into()))?,
        ),
        None => None,
    };
    let list = state
        .store
        .conversations()
        .list(&at.scope, limit, before)
        .await?;
    Ok(Json(list.iter().map(ConversationView::from).collect()))
}

#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/conversations/{conversation_id}", tag = "conversations", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("conversation_id" = String, Path, format = Uuid)),
    responses((status = 200, body = ConversationWithMessages), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    at: InAssistant,
    params: PathParams,
) -> ApiResult<Json<ConversationWithMessages>> {
    let id = params.id("conversation_id")?;
    let repo = state.store.conversations();
    let c = repo.visible(&at.scope, id).await?;
    let messages = repo.messages(&c).await?;
    Ok(Json(ConversationWithMessages {
        conversation: ConversationView::from(&c),
        messages: messages.iter().map(MessageView::from).collect(),
    }))
}

/// Deletes one of the caller's own conversations with its messages, traces and feedback.
#[utoipa::path(delete, path = "/api/v1/assistants/{assistant_id}/conversations/{conversation_id}", tag = "conversations", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("conversation_id" = String, Path, format = Uuid)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    at: InAssistant,
    params: PathParams,
) -> ApiResult<StatusCode> {
    let id = params.id("conversation_id")?;
    state.store.conversations().delete(&at.scope, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A turn that has begun: the stored user message, and the answer being written.
pub(crate) struct Begun {
    pub user_message: Message,
    pub answer_id: MessageId,
    pub events: tokio::sync::mpsc::Receiver<TurnEvent>,
}

/// Everything before the model is called: the limits and caps (a refusal here costs nothing
/// and stores nothing), then the user's message and an empty answer are stored.
pub(crate) async fn begin_turn(
    state: &AppState,
    scope: &AssistantScope,
    key: &KeyUsed,
    meta: &Meta,
    conversation: ConversationId,
    content: String,
) -> ApiResult<Begun> {
    let n = content.chars().count();
    if n == 0 || n > MAX_MESSAGE_CHARS || content.trim().is_empty() {
        return Err(ApiError::Unprocessable(format!(
            "content: 1 to {MAX_MESSAGE_CHARS} characters, not only spaces"
        )));
    }
    let repo = state.store.conversations();
    let c = repo.own(scope, conversation).await?;
    let route = state.chat.routes.get(state, scope).await?;
    let earlier = repo.messages(&c).await?;
    if earlier
        .last()
        .is_some_and(|m| m.status == MessageStatus::Streaming)
    {
        return Err(ApiError::Conflict(
            "an answer in this conversation is still being written".into(),
        ));
    }
    let memories = match scope.user_id() {
        Some(_) => state.store.memories().list(scope).await?,
        None => Vec::new(),
    };
    let mut history = prompt::history(&earlier);
    history.push(ChatMessage::new(Role::User, content.clone()));
    let system = prompt::system(&route.settings, &memories);
    let reserve = u32::try_from(route.settings.max_reply_tokens).unwrap_or(u32::MAX);
    let mut request = prompt::request(&route.settings, system, &history, reserve);
    let tools = ToolBox::load(state, scope).await?;
    request.tools = tools.specs();
    let admitted = state
        .chat
        .admit(
            state,
            meta,
            Ask {
                scope,
                route: &route,
                key: key.0.as_deref(),
                prompt_tokens: prompt::estimate(&request),
                conversation_tokens_used: Some(c.tokens_used),
            },
        )
        .await?;
    request.max_tokens = admitted.max_tokens;
    let user_message = repo
        .append(&c, MessageRole::User, &content, MessageStatus::Complete)
        .await?;
    let answer = repo
        .append(&c, MessageRole::Assistant, "", MessageStatus::Streaming)
        .await?;
    let record = state.chat.begin(
        scope,
        &route,
        admitted,
        &request,
        CallContext {
            conversation: Some(c.id),
            message: Some(answer.id),
            keep_content: true,
        },
    );
    let answer_id = answer.id;
    let events = turn::start(
        state.clone(),
        Turn {
            conversation: c,
            answer,
            route,
            request,
            record,
            scope: scope.clone(),
            meta: meta.clone(),
            key: key.0.clone(),
            tools,
        },
    );
    Ok(Begun {
        user_message,
        answer_id,
        events,
    })
}

/// The acknowledgement that opens a turn's stream: the user's message is stored.
#[derive(Serialize, ToSchema)]
pub struct TurnStarted {
    pub user_message: MessageView,
    #[schema(format = Uuid)]
    pub answer_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct TurnDelta {
    pub text: String,
}

#[derive(Serialize, ToSchema)]
pub struct TurnDone {
    pub answer: MessageView,
    pub finish_reason: String,
}

/// One event of a turn: its name and JSON data.
fn event_of(e: TurnEvent) -> (&'static str, serde_json::Value) {
    match e {
        TurnEvent::Delta(text) => ("delta", serde_json::json!(TurnDelta { text })),
        TurnEvent::Tool(t) => ("tool", serde_json::json!(t)),
        TurnEvent::Done {
            answer,
            finish_reason,
            ..
        } => (
            "done",
            serde_json::json!(TurnDone {
                answer: MessageView::from(&answer),
                finish_reason,
            }),
        ),
        TurnEvent::Failed(e) => ("error", serde_json::json!(e.problem())),
    }
}

/// Sends a message and streams the answer as Server-Sent Events: `message` (the stored user
/// message: acknowledged), `delta`… (parts of the answer, each stored before it is sent),
/// then `done` (the stored answer) or `error` (a problem+json). Refusals before the model
/// is called (limits, spend caps, no model configured) are ordinary problem+json answers.
#[utoipa::path(post, path = "/api/v1/assistants/{assistant_id}/conversations/{conversation_id}/messages", tag = "conversations", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("conversation_id" = String, Path, format = Uuid)), request_body = MessageCreate,
    responses((status = 200, description = "text/event-stream of message, delta, done or error events", content_type = "text/event-stream"),
        (status = 402, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn post_message(
    State(state): State<AppState>,
    at: InAssistant,
    key: KeyUsed,
    meta: Meta,
    params: PathParams,
    ApiJson(input): ApiJson<MessageCreate>,
) -> ApiResult<Response> {
    let id = params.id("conversation_id")?;
    let begun = begin_turn(&state, &at.scope, &key, &meta, id, input.content).await?;
    let started = TurnStarted {
        user_message: MessageView::from(&begun.user_message),
        answer_id: begun.answer_id.to_string(),
    };
    let first = futures::stream::once(async move {
        Ok::<_, Infallible>(
            Event::default()
                .event("message")
                .json_data(started)
                .unwrap_or_default(),
        )
    });
    let rest = futures::stream::unfold(begun.events, |mut rx| async move {
        let e = rx.recv().await?;
        let (name, data) = event_of(e);
        Some((
            Ok::<_, Infallible>(Event::default().event(name).data(data.to_string())),
            rx,
        ))
    });
    use futures::StreamExt;
    Ok(Sse::new(first.chain(rest))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Refuses a WebSocket opened by a page of another site: a browser sends the user's cookies
/// with it, and a GET needs no CSRF token, so the Origin is the only guard.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true; // not a browser
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    url::Url::parse(origin).ok().is_some_and(|o| {
        let authority = match o.port() {
            Some(p) => format!("{}:{p}", o.host_str().unwrap_or("")),
            None => o.host_str().unwrap_or("").to_string(),
        };
        authority.eq_ignore_ascii_case(host)
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WsSend {
    content: String,
}

/// The same conversation over a WebSocket: send `{"content": "…"}`, receive JSON frames
/// `{"event": "message"|"delta"|"done"|"error", "data": …}` as over SSE. One turn at a time.
#[utoipa::path(get, path = "/api/v1/assistants/{assistant_id}/conversations/{conversation_id}/ws", tag = "conversations", security(("bearer" = [])),
    params(("assistant_id" = String, Path, format = Uuid), ("conversation_id" = String, Path, format = Uuid)),
    responses((status = 101, description = "WebSocket"), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn websocket(
    State(state): State<AppState>,
    at: InAssistant,
    key: KeyUsed,
    meta: Meta,
    headers: HeaderMap,
    params: PathParams,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let id: ConversationId = params.id("conversation_id")?;
    if !same_origin(&headers) {
        return Err(ApiError::Forbidden(
            "a WebSocket from another site's page is refused".into(),
        ));
    }
    // Found before the upgrade, so an unknown conversation is an HTTP 404.
    state.store.conversations().own(&at.scope, id).await?;
    let ws =
        ws.map_err(|_| ApiError::BadRequest("a WebSocket upgrade request is expected".into()))?;
    let max = state.settings.max_body_bytes;
    Ok(ws
        .max_message_size(max)
        .on_upgrade(move |socket| talk(socket, state, at, key, meta, id)))
}

async fn talk(
    mut socket: WebSocket,
    state: AppState,
    at: InAssistant,
    key: KeyUsed,
    meta: Meta,
    id: ConversationId,
) {
    let frame = |name: &str, data: serde_json::Value| {
        WsMessage::Text(
            serde_json::json!({"event": name, "data": data})
                .to_string()
                .into(),
        )
    };
    while let Some(Ok(msg)) = socket.recv().await {
        let text = match msg {
            WsMessage::Text(t) => t,
            WsMessage::Close(_) => return,
            _ => continue,
        };
        let input: WsSend = match serde_json::from_str(text.as_str()) {
            Ok(i) => i,
            Err(e) => {
                let problem =
                    ApiError::Unprocessable(format!("expected {{\"content\": \"…\"}}: {e}"))
                        .problem();
                if socket
                    .send(frame("error", serde_json::json!(problem)))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
        };
        let mut begun = match begin_turn(&state, &at.scope, &key, &meta, id, input.content).await {
            Ok(b) => b,
            Err(e) => {
                if socket
                    .send(frame("error", serde_json::json!(e.problem())))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
        };
        let started = TurnStarted {
            user_message: MessageView::from(&begun.user_message),
            answer_id: begun.answer_id.to_string(),
        };
        if socket
            .send(frame("message", serde_json::json!(started)))
            .await
            .is_err()
        {
            return;
        }
        while let Some(e) = begun.events.recv().await {
            let (name, data) = event_of(e);
            if socket.send(frame(name, data)).await.is_err() {
                return;
            }
        }
    }
}
