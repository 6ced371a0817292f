//! Typed identifiers, so a workspace id can never be passed where an assistant id is meant.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new time-ordered id (UUIDv7): index-friendly and sortable by creation.
            pub fn new() -> Self {
                $name(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }
    };
}

id_type!(
    /// A workspace: a customer account.
    WorkspaceId
);
id_type!(
    /// An assistant: the tenant boundary.
    AssistantId
);
id_type!(
    /// A user: a global login.
    UserId
);
id_type!(
    /// A pending invitation of an email to an assistant.
    InvitationId
);
id_type!(
    /// A session: one sign-in, and the family of refresh tokens descended from it.
    SessionId
);
id_type!(
    /// A custom role of one assistant.
    RoleId
);
id_type!(
    /// An assistant API key (`bst_…`), for programs.
    ApiKeyId
);
id_type!(
    /// A workspace's credential for a model provider, sealed in the vault.
    ProviderKeyId
);
id_type!(
    /// A conversation of one principal with one assistant.
    ConversationId
);
id_type!(
    /// One message of a conversation.
    MessageId
);
id_type!(
    /// A fact a user asked an assistant to remember.
    MemoryId
);
id_type!(
    /// One model call: the stored form of its trace span.
    LlmCallId
);
id_type!(
    /// A tool in an assistant's registry.
    ToolId
);
id_type!(
    /// An MCP server an assistant's tools come from.
    McpServerId
);
id_type!(
    /// One tool call a model proposed, and what became of it.
    ToolCallId
);
id_type!(
    /// A request for a person to approve one tool call.
    ToolApprovalId
);
id_type!(
    /// A device (a smart speaker): known from its first contact, bound to one assistant and
    /// one owner by an activation session.
    DeviceId
);
