//! bastion's model, free of I/O: the identifiers of the tenancy model, the capabilities that
//! authorize every route, the built-in roles that bundle them, and the access rule a route
//! declares. Everything else in bastion speaks in these terms.

pub mod access;
pub mod capability;
pub mod ids;
pub mod principal;
pub mod role;
pub mod tool;

pub use access::Access;
pub use capability::{Capability, CapabilitySet};
pub use ids::{
    ApiKeyId, AssistantId, ConversationId, DeviceId, InvitationId, LlmCallId, McpServerId,
    MemoryId, MessageId, ProviderKeyId, RoleId, SessionId, ToolApprovalId, ToolCallId, ToolId,
    UserId, WorkspaceId,
};
pub use principal::Principal;
pub use role::{Holding, MemberRole, Role};
pub use tool::{Approval, Risk};
