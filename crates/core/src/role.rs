//! Built-in roles: named sets of capabilities (DESIGN.md, "The model").

use crate::capability::{Capability as C, CapabilitySet};
use crate::ids::RoleId;
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
        Holding::of(self).may_grant(Holding::of(target))
    }
}

/// What a principal holds on an assistant, as far as granting goes: its capabilities, and
/// whether it is an owner (which no capability stands for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holding {
    pub capabilities: CapabilitySet,
    pub owner: bool,
}

impl Holding {
    pub fn of(role: Role) -> Holding {
        Holding {
            capabilities: role.capabilities(),
            owner: role == Role::Owner,
        }
    }

    /// Whether a holder of `self` may hand `target` (a role, a key, a narrowed token) to
    /// someone: never a capability it lacks, and ownership only from an owner.
    pub fn may_grant(self, target: Holding) -> bool {
        if target.owner {
            return self.owner;
        }
        self.capabilities.covers(target.capabilities)
    }
}

/// The role a member holds on an assistant: a built-in one, or one of the assistant's
/// custom roles (a name and a set of capabilities).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberRole {
    Builtin(Role),
    Custom {
        id: RoleId,
        name: String,
        capabilities: CapabilitySet,
    },
}

impl MemberRole {
    /// The name the API shows: a built-in role's name, or the custom role's.
    pub fn name(&self) -> &str {
        match self {
            MemberRole::Builtin(r) => r.as_str(),
            MemberRole::Custom { name, .. } => name,
        }
    }

    pub fn capabilities(&self) -> CapabilitySet {
        match self {
            MemberRole::Builtin(r) => r.capabilities(),
            MemberRole::Custom { capabilities, .. } => *capabilities,
        }
    }

    pub fn builtin(&self) -> Option<Role> {
        match self {
            MemberRole::Builtin(r) => Some(*r),
            MemberRole::Custom { .. } => None,
        }
    }

    pub fn is_owner(&self) -> bool {
        self.builtin() == Some(Role::Owner)
    }

    pub fn holding(&self) -> Holding {
        Holding {
            capabilities: self.capabilities(),
            owner: self.is_owner(),
        }
    }

    /// What the store keeps in a membership's `role` column: the built-in name or the
    /// custom role's id (a UUID, so the two never collide).
    pub fn stored(&self) -> String {
        match self {
            MemberRole::Builtin(r) => r.as_str().to_string(),
            MemberRole::Custom { id, .. } => id.to_string(),
        }
    }
}

/// A member's role travels as its name (a built-in role's, or the custom role's).
impl Serialize for MemberRole {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
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
    fn a_custom_role_grants_only_within_its_capabilities() {
        let support = MemberRole::Custom {
            id: RoleId::new(),
            name: "support".into(),
            capabilities: CapabilitySet::of(&[C::Chat, C::ConversationsRead, C::MembersManage]),
        };
        assert_eq!(support.name(), "support");
        assert!(!support.is_owner());
        assert!(support.holding().may_grant(Holding::of(Role::Member)));
        assert!(!support.holding().may_grant(Holding::of(Role::Editor)));
        assert!(!support.holding().may_grant(Holding::of(Role::Owner)));
        assert!(Holding::of(Role::Admin).may_grant(support.holding()));
        assert_eq!(MemberRole::Builtin(Role::Viewer).stored(), "viewer");
    }

    #[test]
    fn parse_round_trips() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
