//! One turn of a conversation: the user's message is stored, an answer is started, and the
//! model's reply is streamed into it. The rule that makes a crash lose nothing acknowledged:
//! every part of the reply is written to the answer *before* it is sent to the client, so
//! whatever a client saw is in the store. The turn runs in its own task, so an answer is
//! finished and stored even when the client goes away mid-stream.
//!
//! The model and its tool calls are driven by [`super::tool_loop`]; this module is what a
//! conversation adds: the answer stored as it grows, and the client's events.

use super::route::ModelRoute;
use super::tool_loop::{self, Answered, Answering, Output};
use super::tools::{ToolBox, ToolEvent};
use super::CallRecord;
use crate::error::ApiError;
use crate::flow::Meta;
use crate::state::AppState;
use bastion_core::MessageId;
use bastion_runtime::{ChatRequest, Usage};
use bastion_store::conversations::{Conversation, Message, MessageStatus};
use bastion_store::{AssistantScope, KeyGrant};
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

pub fn start(state: AppState, turn: Turn) -> mpsc::Receiver<TurnEvent> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(run(state, turn, tx));
    rx
}

/// The conversation's output: each part is written to the answer, then sent.
struct Stored<'a> {
    state: &'a AppState,
    conversation: &'a Conversation,
    answer: MessageId,
    tx: &'a mpsc::Sender<TurnEvent>,
}

impl Output for Stored<'_> {
    async fn text(&mut self, content: &str, from: usize) -> Result<(), ApiError> {
        self.state
            .store
            .conversations()
            .write_progress(self.conversation, self.answer, content)
            .await
            .map_err(|e| ApiError::Internal(format!("answer not stored: {e}")))?;
        // A client that went away stops receiving, not the answer being stored.
        let _ = self
            .tx
            .send(TurnEvent::Delta(content[from..].to_string()))
            .await;
        Ok(())
    }
}

async fn run(state: AppState, turn: Turn, tx: mpsc::Sender<TurnEvent>) {
    let Turn {
        conversation,
        answer,
        route,
        request,
        record,
        scope,
        meta,
        key,
        tools,
    } = turn;
    let mut out = Stored {
        state: &state,
        conversation: &conversation,
        answer: answer.id,
        tx: &tx,
    };
    let answered = tool_loop::answer(
        &state,
        Answering {
            route,
            request,
            record,
            scope,
            meta,
            key,
            tools,
            conversation: Some((conversation.id, answer.id, conversation.tokens_used)),
        },
        &mut out,
        &tx,
    )
    .await;
    let Answered {
        content,
        usage: total,
        ended,
    } = answered;
    let (status, event) = match ended {
        Ok(finish_reason) => (MessageStatus::Complete, Ok(finish_reason)),
        Err(error) => (MessageStatus::Failed, Err(error)),
    };
    let (input, output) = if status == MessageStatus::Complete {
        (total.input_tokens as i64, total.output_tokens as i64)
    } else {
        (0, 0)
    };
    let stored = state
        .store
        .conversations()
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
