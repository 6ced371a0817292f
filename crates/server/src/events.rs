//! Building audit events from a request: who (actor), from where (ip), did what to what.

use crate::flow::{Actor, InAssistant, Meta};
use bastion_core::Principal;
use bastion_store::audit::NewEvent;
use serde_json::Value;

pub const SUCCESS: &str = "success";
pub const FAILURE: &str = "failure";

/// How an event names who acted: `user:<id>` or `key:<id>`.
pub fn actor(principal: Principal) -> String {
    principal.to_string()
}

/// An event on `chain` (a workspace id, or the platform chain) by `actor`.
pub fn event(
    chain: impl ToString,
    actor: String,
    meta: &Meta,
    action: &str,
    target: impl ToString,
    outcome: &str,
    detail: Value,
) -> NewEvent {
    NewEvent {
        chain: chain.to_string(),
        actor,
        action: action.to_string(),
        target: target.to_string(),
        outcome: outcome.to_string(),
        ip: meta.ip_string(),
        detail,
    }
}

/// An event about the authorized assistant `at`, on its workspace's chain.
pub fn on_assistant(
    at: &InAssistant,
    actor: Actor,
    meta: &Meta,
    action: &str,
    outcome: &str,
    detail: Value,
) -> NewEvent {
    event(
        at.scope.workspace_id(),
        self::actor(actor.0),
        meta,
        action,
        at.scope.assistant_id(),
        outcome,
        detail,
    )
}
