//! One turn of a conversation: the user's message is stored, an answer is started, and the
//! model's reply is streamed into it. The rule that makes a crash lose nothing acknowledged:
//! every part of the reply is written to the answer *before* it is sent to the client, so
//! whatever a client saw is in the store. The turn runs in its own task, so an answer is
//! finished and stored even when the client goes away mid-stream.

use super::route::ModelRoute;
use super::{CallRecord, Outcome};
use crate::error::ApiError;
use crate::state::AppState;
use bastion_runtime::{ChatRequest, StreamEvent, Usage};
use bastion_store::conversations::{Conversation, Message, MessageStatus};
use futures::StreamExt;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What a turn tells its client, in order: deltas, then one `Done` or `Failed`.
pub enum TurnEvent {
    Delta(String),
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
}

/// Most ready parts of a reply written (and sent) together.
const COALESCE: usize = 64;

pub fn start(state: AppState, turn: Turn) -> mpsc::Receiver<TurnEvent> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(run(state, turn, tx));
    rx
}

async fn run(state: AppState, mut turn: Turn, tx: mpsc::Sender<TurnEvent>) {
    let chat = &state.chat;
    let store = state.store.conversations();
    let provider = turn.route.provider.as_str();
    let stream = match chat
        .client
        .stream(&turn.route.endpoint, &turn.request)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            let _ = store
                .finish(
                    &turn.conversation,
                    turn.answer.id,
                    "",
                    MessageStatus::Failed,
                    0,
                    0,
                )
                .await;
            let error = chat.failed_before_answer(turn.record, provider, e).await;
            let _ = tx.send(TurnEvent::Failed(error)).await;
            return;
        }
    };
    let mut parts = stream.ready_chunks(COALESCE);
    let mut content = String::new();
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
                    turn.record.first_token();
                    content.push_str(&text);
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
            if let Err(e) = store
                .write_progress(&turn.conversation, turn.answer.id, &content)
                .await
            {
                // What cannot be stored is not sent: the client sees only what would survive.
                content.truncate(before);
                ended = Some(Err(ApiError::Internal(format!("answer not stored: {e}"))));
                break;
            }
            // A client that went away stops receiving, not the answer being stored.
            let _ = tx
                .send(TurnEvent::Delta(content[before..].to_string()))
                .await;
        }
    }
    let ended =
        ended.unwrap_or_else(|| Err(ApiError::Internal("turn ended without an end".into())));
    match ended {
        Ok((finish_reason, usage)) => {
            let stored = store
                .finish(
                    &turn.conversation,
                    turn.answer.id,
                    &content,
                    MessageStatus::Complete,
                    usage.input_tokens as i64,
                    usage.output_tokens as i64,
                )
                .await;
            chat.end(
                turn.record,
                Outcome::Finished {
                    usage,
                    finish_reason: &finish_reason,
                    completion: &content,
                },
            )
            .await;
            let event = match stored {
                Ok(()) => {
                    let mut answer = turn.answer;
                    answer.content = content;
                    answer.status = MessageStatus::Complete;
                    answer.input_tokens = usage.input_tokens as i64;
                    answer.output_tokens = usage.output_tokens as i64;
                    TurnEvent::Done {
                        answer,
                        usage,
                        finish_reason,
                    }
                }
                Err(e) => TurnEvent::Failed(ApiError::Internal(format!("answer not stored: {e}"))),
            };
            let _ = tx.send(event).await;
        }
        Err(error) => {
            let _ = store
                .finish(
                    &turn.conversation,
                    turn.answer.id,
                    &content,
                    MessageStatus::Failed,
                    0,
                    0,
                )
                .await;
            let kind = match &error {
                ApiError::Provider(e) => e.kind(),
                _ => "internal",
            };
            chat.end(
                turn.record,
                Outcome::Failed {
                    error: kind,
                    completion: &content,
                },
            )
            .await;
            let _ = tx.send(TurnEvent::Failed(error)).await;
        }
    }
}
