//! The access rule every route declares. The request flow checks it before any handler runs.

use crate::capability::Capability;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Anyone, signed in or not (health, sign-in, the OpenAPI document).
    Public,
    /// Any signed-in user; no tenant data is reachable through it beyond the user's own.
    Authenticated,
    /// A platform operator (a flag on a user, set only from the CLI).
    Operator,
    /// Any member of the assistant named by the request, whatever their role.
    AssistantMember,
    /// Any member, in person: with a full sign-in, not an API key or a scoped token (steps
    /// that widen what the member holds, like accepting ownership).
    AssistantPerson,
    /// A member of the assistant whose role holds this capability.
    Assistant(Capability),
    /// An owner of the assistant (deleting it, transferring ownership).
    AssistantOwner,
    /// An assistant API key holding this capability, on the key's own assistant: the
    /// endpoints for programs (`/v1/chat/completions`), whose path names no assistant.
    ApiKey(Capability),
    /// Any member of the workspace named in the path.
    WorkspaceMember,
    /// A member of the workspace whose workspace role holds this capability.
    Workspace(Capability),
    /// An owner of the workspace.
    WorkspaceOwner,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::Public => f.write_str("public"),
            Access::Authenticated => f.write_str("authenticated"),
            Access::Operator => f.write_str("operator"),
            Access::AssistantMember => f.write_str("assistant:member"),
            Access::AssistantPerson => f.write_str("assistant:person"),
            Access::Assistant(c) => write!(f, "assistant:{c}"),
            Access::AssistantOwner => f.write_str("assistant:owner"),
            Access::ApiKey(c) => write!(f, "key:{c}"),
            Access::WorkspaceMember => f.write_str("workspace:member"),
            Access::Workspace(c) => write!(f, "workspace:{c}"),
            Access::WorkspaceOwner => f.write_str("workspace:owner"),
        }
    }
}
