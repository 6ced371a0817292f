//! Built-in roles: named sets of capabilities (DESIGN.md, "The model").

use crate::capability::{Capability as C, CapabilitySet};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Editor,
    Operator,
    Viewer,
    Member,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Owner,
        Role::Admin,
        Role::Editor,
        Role::Operator,
        Role::Viewer,
        Role::Member,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn capabilities(self) -> CapabilitySet {
        match self {
            // Owner and admin hold every capability; what separates them (deleting the
            // assistant or workspace, transferring ownership) is `Access::Owner`, not a capability.
            Role::Owner | Role::Admin => CapabilitySet::all(),
            Role::Editor => CapabilitySet::of(&[
                C::Chat,
                C::ConversationsRead,
                C::SettingsManage,
                C::KnowledgeManage,
                C::ToolsManage,
                C::McpManage,
                C::TracesRead,
            ]),
            Role::Operator => CapabilitySet::of(&[
                C::Chat,
                C::ConversationsRead,
                C::DevicesManage,
                C::ConversationsReadAll,
                C::FeedbackRead,
                C::TracesRead,
            ]),
            // Read-only: may look at conversations, feedback, traces and the audit log,
            // may change nothing.
            Role::Viewer => CapabilitySet::of(&[
                C::ConversationsRead,
                C::ConversationsReadAll,
                C::FeedbackRead,
                C::TracesRead,
                C::AuditRead,
            ]),
            Role::Member => CapabilitySet::of(&[C::Chat, C::ConversationsRead]),
        }
    }

    /// Whether a holder of `self` may hand `target` to someone: never a role that holds a
    /// capability the granter lacks, and ownership only from an owner.
    pub fn may_grant(self, target: Role) -> bool {
        if target == Role::Owner {
            return self == Role::Owner;
        }
        self.capabilities().covers(target.capabilities())
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_holds_everything_member_only_chat() {
        assert_eq!(Role::Owner.capabilities(), CapabilitySet::all());
        assert!(Role::Member.capabilities().contains(C::Chat));
        assert!(!Role::Member.capabilities().contains(C::MembersManage));
        assert!(!Role::Viewer.capabilities().contains(C::Chat));
    }

    #[test]
    fn nobody_grants_more_than_they_hold() {
        assert!(Role::Owner.may_grant(Role::Owner));
        assert!(!Role::Admin.may_grant(Role::Owner));
        assert!(Role::Admin.may_grant(Role::Editor));
        assert!(!Role::Editor.may_grant(Role::Admin));
        assert!(!Role::Operator.may_grant(Role::Viewer));
    }

    #[test]
    fn parse_round_trips() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
