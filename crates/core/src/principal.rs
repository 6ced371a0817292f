//! Who acts: a person (through a session's token, full or scoped) or a program (through an
//! assistant API key). Audit events, request logs and tenant scopes name the principal.

use crate::ids::{ApiKeyId, UserId};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Principal {
    User(UserId),
    ApiKey(ApiKeyId),
}

impl Principal {
    /// The person, when a person acts.
    pub fn user(self) -> Option<UserId> {
        match self {
            Principal::User(u) => Some(u),
            Principal::ApiKey(_) => None,
        }
    }
}

impl fmt::Display for Principal {
    /// `user:<id>` or `key:<id>`: the form audit events and log lines carry.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User(u) => write!(f, "user:{u}"),
            Principal::ApiKey(k) => write!(f, "key:{k}"),
        }
    }
}

impl Principal {
    /// The API key, when a program acts.
    pub fn api_key(self) -> Option<ApiKeyId> {
        match self {
            Principal::User(_) => None,
            Principal::ApiKey(k) => Some(k),
        }
    }
}
