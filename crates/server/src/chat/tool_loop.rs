//! The model-and-tools loop one answer takes, whoever asked (a conversation turn, or a
//! program on `/v1/chat/completions`): call the model, stream its text to the output; when
//! it proposes tool calls, put each through the tool boundary ([`super::tools`]), give the
//! results back and call it again — each call admitted against the caps and traced on its
//! own — until it answers in words or the turn's cap takes the tools away.

use super::route::ModelRoute;
use super::tools::{self, CallSite, ToolBox};
use super::turn::TurnEvent;
use super::{Ask, CallContext, CallRecord, Outcome};
use crate::error::ApiError;
use crate::flow::Meta;
use crate::state::AppState;
use bastion_core::{ConversationId, MessageId};
use bastion_runtime::{ChatMessage, ChatRequest, StreamEvent, ToolCall, Usage};
use bastion_store::{AssistantScope, KeyGrant};
use futures::StreamExt;
use std::sync::Arc;
use tokio::sync::mpsc;

/// The finish reason of an answer cut off because the model kept proposing tool calls.
pub const TOOL_CALL_LIMIT: &str = "tool_call_limit";

/// Most ready parts of a reply handed to the output together.
const COALESCE: usize = 64;

/// Where the answer's text goes as it arrives.
pub trait Output: Send {
    /// `content[from..]` is new. An error stops the answer (what could not be kept is not
    /// shown), and `content` is cut back to `from`.
    fn text(
        &mut self,
        content: &str,
        from: usize,
    ) -> impl std::future::Future<Output = Result<(), ApiError>> + Send;
}

/// Everything one answer needs.
pub struct Answering {
    pub route: Arc<ModelRoute>,
    pub request: ChatRequest,
    /// The first model call, admitted by the caller (a refusal there costs nothing).
    pub record: CallRecord,
    pub scope: AssistantScope,
    pub meta: Meta,
    pub key: Option<Arc<KeyGrant>>,
    pub tools: ToolBox,
    /// The conversation and the answer message, for traces, and the tokens it used before.
    pub conversation: Option<(ConversationId, MessageId, i64)>,
}

/// How an answer ended: its text over every model call, and the usage of them all.
pub struct Answered {
    pub content: String,
    pub usage: Usage,
    pub ended: Result<String, ApiError>,
}

/// What one model call came to.
struct Round {
    finish_reason: String,
    usage: Usage,
    calls: Vec<ToolCall>,
}

pub async fn answer<O: Output>(
    state: &AppState,
    a: Answering,
    out: &mut O,
    events: &mpsc::Sender<TurnEvent>,
) -> Answered {
    let Answering {
        route,
        mut request,
        record,
        scope,
        meta,
        key,
        mut tools,
        conversation,
    } = a;
    let chat = &state.chat;
    let provider = route.provider.as_str();
    let mut content = String::new();
    let mut total = Usage::default();
    let mut record = Some(record);
    // Refused proposals use no tool calls, so a model that keeps proposing them would loop:
    // past this many model calls, the answer ends where it is.
    let max_rounds = state.settings.tool_calls_per_turn + 2;
    let mut rounds = 0;
    let ended: Result<String, ApiError> = loop {
        let Some(mut rec) = record.take() else {
            break Err(ApiError::Internal("answer without a call record".into()));
        };
        let stream = match chat.client.stream(&route.endpoint, &request).await {
            Ok(s) => s,
            Err(e) => break Err(chat.failed_before_answer(rec, provider, e).await),
        };
        let start = content.len();
        let round = stream_round(state, provider, stream, &mut rec, &mut content, out).await;
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
            state,
            scope: &scope,
            meta: &meta,
            conversation: conversation.map(|c| c.0),
            events,
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
        let used = conversation.map(|c| {
            c.2 + i64::try_from(total.input_tokens + total.output_tokens).unwrap_or(i64::MAX)
        });
        let admitted = chat
            .admit(
                state,
                &meta,
                Ask {
                    scope: &scope,
                    route: &route,
                    key: key.as_deref(),
                    prompt_tokens: super::prompt::estimate(&request),
                    conversation_tokens_used: used,
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
                conversation: conversation.map(|c| c.0),
                message: conversation.map(|c| c.1),
                keep_content: conversation.is_some(),
            },
        ));
    };
    Answered {
        content,
        usage: total,
        ended,
    }
}

/// Streams one model call into `content` and the output; proposed tool calls are collected.
async fn stream_round<O: Output>(
    state: &AppState,
    provider: &str,
    stream: bastion_runtime::EventStream,
    rec: &mut CallRecord,
    content: &mut String,
    out: &mut O,
) -> Result<Round, ApiError> {
    let chat = &state.chat;
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
            if let Err(e) = out.text(content, before).await {
                content.truncate(before);
                return Err(e);
            }
        }
    }
    match ended {
        Some(Ok((finish_reason, usage))) => Ok(Round {
            finish_reason,
            usage,
            calls,
        }),
        Some(Err(e)) => Err(e),
        None => Err(ApiError::Internal("answer ended without an end".into())),
    }
}
