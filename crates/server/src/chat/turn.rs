//! One turn of a conversation: the user's message is stored, an answer is started, and the
//! model's reply is streamed into it. The rule that makes a crash lose nothing acknowledged:
//! every part of the reply is written to the answer *before* it is sent to the client, so
//! whatever a client saw is in the store. The turn runs in its own task, so an answer is
//! finished and stored even when the client goes away mid-stream.
//!
//! When the model proposes tool calls, the turn is a loop: each call goes through the tool
//! boundary ([`super::tools`]), the results go back to the model, and the model is called
//! again — each call admitted against the caps and traced on its own — until it answers in
//! words or the turn's tool-call cap takes the tools away.

use super::route::ModelRoute;
use super::tools::{self, CallSite, ToolBox, ToolEvent};
use super::{Ask, CallContext, CallRecord, Outcome};
use crate::error::ApiError;
use crate::flow::Meta;
use crate::state::AppState;
use bastion_runtime::{ChatMessage, ChatRequest, StreamEvent, ToolCall, Usage};
use bastion_store::conversations::{Conversation, Message, MessageStatus};
use bastion_store::{AssistantScope, KeyGrant};
use futures::StreamExt;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What a turn tells its client, in order: deltas and tool events, then one `Done` or
/// `Failed`.
pub enum TurnEvent {
    Delta(String),
    Tool(ToolEvent),
    Done {
        answer: Message,
        usage: Usage,
        finish_reason: String,
    },
    Failed(ApiError),
}

pub struct Turn {
    pub conversation: Conversation,
    pub answer: Message,
    pub route: Arc<ModelRoute>,
    pub request: ChatRequest,
    pub record: CallRecord,
    /// Who is talking: what later model calls of the turn are admitted for, and what the
    /// tool boundary checks.
    pub scope: AssistantScope,
    pub meta: Meta,
    pub key: Option<Arc<KeyGrant>>,
    pub tools: ToolBox,
}

/// The finish reason of a turn cut off because the model kept proposing tool calls.
pub const TOOL_CALL_LIMIT: &str = "tool_call_limit";

/// Most ready parts of a reply written (and sent) together.
const COALESCE: usize = 64;

pub fn start(state: AppState, turn: Turn) -> mpsc::Receiver<TurnEvent> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(run(state, turn, tx));
    rx
}

/// What one model call of the turn came to.
struct Round {
    finish_reason: String,
    usage: Usage,
    calls: Vec<ToolCall>,
}

async fn run(state: AppState, turn: Turn, tx: mpsc::Sender<TurnEvent>) {
    let Turn {
        conversation,
        answer,
        route,
        mut request,
        record,
        scope,
        meta,
        key,
        mut tools,
    } = turn;
    let chat = &state.chat;
    let store = state.store.conversations();
    let provider = route.provider.as_str();
    // The answer's text over every model call of the turn.
    let mut content = String::new();
    let mut total = Usage::default();
    let mut record = Some(record);
    // Model calls of the turn. Refused proposals use no tool calls, so a model that keeps
    // proposing them would loop: past this, the turn ends where it is.
    let max_rounds = state.settings.tool_calls_per_turn + 2;
    let mut rounds = 0;
    let ended: Result<String, ApiError> = loop {
        let Some(mut rec) = record.take() else {
            break Err(ApiError::Internal("turn without a call record".into()));
        };
        let stream = match chat.client.stream(&route.endpoint, &request).await {
            Ok(s) => s,
            Err(e) => break Err(chat.failed_before_answer(rec, provider, e).await),
        };
        let start = content.len();
        let round = stream_round(
            &state,
            provider,
            (&conversation, &answer),
            stream,
            &mut rec,
            &mut content,
            &tx,
        )
        .await;
        let round = match round {
            Ok(r) => r,
            Err(error) => {
                let kind = match &error {
                    ApiError::Provider(e) => e.kind(),
                    _ => "internal",
                };
                chat.end(
                    rec,
                    Outcome::Failed {
                        error: kind,
                        completion: &content[start..],
                    },
                )
                .await;
                break Err(error);
            }
        };
        chat.end(
            rec,
            Outcome::Finished {
                usage: round.usage,
                finish_reason: &round.finish_reason,
                completion: &content[start..],
            },
        )
        .await;
        total.input_tokens += round.usage.input_tokens;
        total.output_tokens += round.usage.output_tokens;
        if round.calls.is_empty() {
            break Ok(round.finish_reason);
        }
        rounds += 1;
        // The model asked for tools: each goes through the boundary, and the model reads
        // what came back (or why nothing did) on its next call.
        let site = CallSite {
            state: &state,
            scope: &scope,
            meta: &meta,
            conversation: Some(conversation.id),
            events: &tx,
        };
        request.messages.push(ChatMessage::assistant_calls(
            content[start..].to_string(),
            round.calls.clone(),
        ));
        for call in &round.calls {
            let result = tools::handle(&site, &mut tools, call).await;
            request.messages.push(result);
        }
        if rounds >= max_rounds {
            break Ok(TOOL_CALL_LIMIT.to_string());
        }
        request.tools = tools.specs();
        let used = conversation.tokens_used
            + i64::try_from(total.input_tokens + total.output_tokens).unwrap_or(i64::MAX);
        let admitted = chat
            .admit(
                &state,
                &meta,
                Ask {
                    scope: &scope,
                    route: &route,
                    key: key.as_deref(),
                    prompt_tokens: super::prompt::estimate(&request),
                    conversation_tokens_used: Some(used),
                },
            )
            .await;
        let admitted = match admitted {
            Ok(a) => a,
            Err(e) => break Err(e),
        };
        request.max_tokens = admitted.max_tokens;
        record = Some(chat.begin(
            &scope,
            &route,
            admitted,
            &request,
            CallContext {
                conversation: Some(conversation.id),
                message: Some(answer.id),
                keep_content: true,
            },
        ));
    };
    let (status, event) = match ended {
        Ok(finish_reason) => (MessageStatus::Complete, Ok(finish_reason)),
        Err(error) => (MessageStatus::Failed, Err(error)),
    };
    let (input, output) = if status == MessageStatus::Complete {
        (total.input_tokens as i64, total.output_tokens as i64)
    } else {
        (0, 0)
    };
    let stored = store
        .finish(&conversation, answer.id, &content, status, input, output)
        .await;
    let event = match (event, stored) {
        (Ok(finish_reason), Ok(())) => {
            let mut answer = answer;
            answer.content = content;
            answer.status = MessageStatus::Complete;
            answer.input_tokens = input;
            answer.output_tokens = output;
            TurnEvent::Done {
                answer,
                usage: total,
                finish_reason,
            }
        }
        (Ok(_), Err(e)) => TurnEvent::Failed(ApiError::Internal(format!("answer not stored: {e}"))),
        (Err(error), _) => TurnEvent::Failed(error),
    };
    let _ = tx.send(event).await;
}

/// Streams one model call into the answer: text parts are stored, then sent; proposed tool
/// calls are collected.
async fn stream_round(
    state: &AppState,
    provider: &str,
    (conversation, answer): (&Conversation, &Message),
    stream: bastion_runtime::EventStream,
    rec: &mut CallRecord,
    content: &mut String,
    tx: &mpsc::Sender<TurnEvent>,
) -> Result<Round, ApiError> {
    let chat = &state.chat;
    let store = state.store.conversations();
    let mut parts = stream.ready_chunks(COALESCE);
    let mut calls = Vec::new();
    let mut ended: Option<Result<(String, Usage), ApiError>> = None;
    while ended.is_none() {
        let Some(batch) = parts.next().await else {
            ended = Some(Err(chat.provider_error(
                provider,
                bastion_runtime::ProviderError::Protocol(
                    "the answer ended without a finish".into(),
                ),
            )));
            break;
        };
        let before = content.len();
        for item in batch {
            match item {
                Ok(StreamEvent::Delta(text)) => {
                    rec.first_token();
                    content.push_str(&text);
                }
                Ok(StreamEvent::ToolCalls(proposed)) => {
                    rec.first_token();
                    calls.extend(proposed);
                }
                Ok(StreamEvent::Done {
                    finish_reason,
                    usage,
                }) => {
                    ended = Some(Ok((finish_reason, usage)));
                    break;
                }
                Err(e) => {
                    ended = Some(Err(chat.provider_error(provider, e)));
                    break;
                }
            }
        }
        if content.len() > before {
            if let Err(e) = store.write_progress(conversation, answer.id, content).await {
                // What cannot be stored is not sent: the client sees only what would survive.
                content.truncate(before);
                return Err(ApiError::Internal(format!("answer not stored: {e}")));
            }
            // A client that went away stops receiving, not the answer being stored.
            let _ = tx
                .send(TurnEvent::Delta(content[before..].to_string()))
                .await;
        }
    }
    match ended {
        Some(Ok((finish_reason, usage))) => Ok(Round {
            finish_reason,
            usage,
            calls,
        }),
        Some(Err(e)) => Err(e),
        None => Err(ApiError::Internal("turn ended without an end".into())),
    }
}
