//! Building audit events from a request: who (actor), from where (ip), did what to what.

use crate::flow::{Caller, Meta};
use bastion_store::audit::NewEvent;
use serde_json::Value;

pub const SUCCESS: &str = "success";
pub const FAILURE: &str = "failure";

pub fn actor(caller: &Caller) -> String {
    format!("user:{}", caller.user.id)
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
