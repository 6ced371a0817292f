//! Tenant scopes. A scope is the only key to an assistant's or a workspace's rows, and the
//! only way to get one is to ask a [`Grant`] (a membership row this crate loaded) to authorize
//! an [`Access`] rule. Fields are private and there is no public constructor.

use bastion_core::{
    Access, AssistantId, CapabilitySet, Holding, MemberRole, Principal, Role, UserId, WorkspaceId,
};

/// A user's membership of an assistant, as loaded from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub(crate) user_id: UserId,
    pub(crate) assistant_id: AssistantId,
    pub(crate) workspace_id: WorkspaceId,
    pub(crate) role: MemberRole,
    pub(crate) require_mfa: bool,
}

/// The roles a workspace's `require_mfa` setting applies to.
fn mfa_required(require_mfa: bool, role: Role) -> bool {
    require_mfa && matches!(role, Role::Owner | Role::Admin)
}

impl Grant {
    /// Whether this member may act only from a session signed in with a second factor.
    pub fn mfa_required(&self) -> bool {
        self.role
            .builtin()
            .is_some_and(|r| mfa_required(self.require_mfa, r))
    }
    pub fn user_id(&self) -> UserId {
        self.user_id
    }
    pub fn assistant_id(&self) -> AssistantId {
        self.assistant_id
    }
    pub fn workspace_id(&self) -> WorkspaceId {
        self.workspace_id
    }
    pub fn role(&self) -> &MemberRole {
        &self.role
    }

    /// The scope for this assistant if the grant satisfies `access`; `None` otherwise,
    /// including for rules that are not about an assistant.
    pub fn authorize(&self, access: Access) -> Option<AssistantScope> {
        self.authorize_within(access, CapabilitySet::all(), true)
    }

    /// As [`Grant::authorize`], for a credential narrowed to `limit` (a scoped token): the
    /// capabilities are those of the role within `limit`; owner-only and in-person rules
    /// hold only for a full sign-in (`in_person`).
    pub fn authorize_within(
        &self,
        access: Access,
        limit: CapabilitySet,
        in_person: bool,
    ) -> Option<AssistantScope> {
        let holding = Holding {
            capabilities: self.role.capabilities().intersection(limit),
            owner: self.role.is_owner() && in_person,
        };
        AssistantScope::allowing(
            access,
            self.assistant_id,
            self.workspace_id,
            Principal::User(self.user_id),
            holding,
            Some(std::sync::Arc::from(self.role.name())),
            in_person,
        )
    }
}

/// Proof that the request flow authorized `principal` on `assistant_id`.
#[derive(Debug, Clone)]
pub struct AssistantScope {
    assistant_id: AssistantId,
    workspace_id: WorkspaceId,
    principal: Principal,
    holding: Holding,
    /// The member's role name (built-in or custom); none for an API key.
    role: Option<std::sync::Arc<str>>,
}

impl AssistantScope {
    /// The scope, when what `principal` holds satisfies the assistant rule `access`
    /// (`in_person`: the credential is a full sign-in of a person).
    pub(crate) fn allowing(
        access: Access,
        assistant_id: AssistantId,
        workspace_id: WorkspaceId,
        principal: Principal,
        holding: Holding,
        role: Option<std::sync::Arc<str>>,
        in_person: bool,
    ) -> Option<AssistantScope> {
        let allowed = match access {
            Access::AssistantMember => true,
            Access::AssistantPerson => in_person,
            Access::Assistant(cap) | Access::ApiKey(cap) => holding.capabilities.contains(cap),
            Access::AssistantOwner => holding.owner,
            _ => false,
        };
        allowed.then_some(AssistantScope {
            assistant_id,
            workspace_id,
            principal,
            holding,
            role,
        })
    }
    pub fn assistant_id(&self) -> AssistantId {
        self.assistant_id
    }
    pub fn workspace_id(&self) -> WorkspaceId {
        self.workspace_id
    }
    pub fn principal(&self) -> Principal {
        self.principal
    }
    /// The person acting, when a person acts (not an API key).
    pub fn user_id(&self) -> Option<UserId> {
        self.principal.user()
    }
    /// The role a member acts in here (what a tool's allowed roles are matched against);
    /// none for an API key.
    pub fn role_name(&self) -> Option<&str> {
        self.role.as_deref()
    }
    /// What the principal holds here: what it may grant, and what it may see.
    pub fn holding(&self) -> Holding {
        self.holding
    }
}

/// A user's membership of a workspace, as loaded from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceGrant {
    pub(crate) user_id: UserId,
    pub(crate) workspace_id: WorkspaceId,
    pub(crate) role: Role,
    pub(crate) require_mfa: bool,
}

impl WorkspaceGrant {
    /// Whether this member may act only from a session signed in with a second factor.
    pub fn mfa_required(&self) -> bool {
        mfa_required(self.require_mfa, self.role)
    }
    pub fn workspace_id(&self) -> WorkspaceId {
        self.workspace_id
    }
    pub fn role(&self) -> Role {
        self.role
    }

    pub fn authorize(&self, access: Access) -> Option<WorkspaceScope> {
        let allowed = match access {
            Access::WorkspaceMember => true,
            Access::Workspace(cap) => self.role.capabilities().contains(cap),
            Access::WorkspaceOwner => self.role == Role::Owner,
            _ => false,
        };
        allowed.then_some(WorkspaceScope {
            workspace_id: self.workspace_id,
            user_id: self.user_id,
            role: self.role,
        })
    }
}

/// Proof that the request flow authorized `user_id` on `workspace_id`.
#[derive(Debug, Clone)]
pub struct WorkspaceScope {
    workspace_id: WorkspaceId,
    user_id: UserId,
    role: Role,
}

impl WorkspaceScope {
    pub fn workspace_id(&self) -> WorkspaceId {
        self.workspace_id
    }
    pub fn user_id(&self) -> UserId {
        self.user_id
    }
    pub fn role(&self) -> Role {
        self.role
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bastion_core::Capability;

    fn grant(role: Role) -> Grant {
        Grant {
            user_id: UserId::new(),
            assistant_id: AssistantId::new(),
            workspace_id: WorkspaceId::new(),
            role: MemberRole::Builtin(role),
            require_mfa: false,
        }
    }

    #[test]
    fn required_mfa_applies_to_owners_and_admins_only() {
        for role in Role::ALL {
            let g = Grant {
                require_mfa: true,
                ..grant(role)
            };
            assert_eq!(g.mfa_required(), matches!(role, Role::Owner | Role::Admin));
            assert!(!grant(role).mfa_required());
        }
    }

    #[test]
    fn a_grant_authorizes_only_what_its_role_holds() {
        let member = grant(Role::Member);
        assert!(member.authorize(Access::AssistantMember).is_some());
        assert!(member
            .authorize(Access::Assistant(Capability::Chat))
            .is_some());
        assert!(member
            .authorize(Access::Assistant(Capability::MembersManage))
            .is_none());
        assert!(member.authorize(Access::AssistantOwner).is_none());
        assert!(grant(Role::Admin)
            .authorize(Access::AssistantOwner)
            .is_none());
        assert!(grant(Role::Owner)
            .authorize(Access::AssistantOwner)
            .is_some());
    }

    #[test]
    fn a_narrowed_grant_holds_only_the_intersection_and_no_ownership() {
        let owner = grant(Role::Owner);
        let limit = CapabilitySet::of(&[Capability::Chat, Capability::TracesRead]);
        let scope = owner
            .authorize_within(Access::Assistant(Capability::Chat), limit, false)
            .expect("chat is within the limit");
        assert_eq!(scope.holding().capabilities, limit);
        assert!(!scope.holding().owner);
        assert!(owner
            .authorize_within(Access::Assistant(Capability::MembersManage), limit, false)
            .is_none());
        assert!(owner
            .authorize_within(Access::AssistantOwner, limit, false)
            .is_none());
        assert!(owner
            .authorize_within(Access::AssistantPerson, limit, false)
            .is_none());
        assert!(owner.authorize(Access::AssistantPerson).is_some());
        // A limit wider than the role adds nothing.
        let member = grant(Role::Member);
        assert!(member
            .authorize_within(Access::Assistant(Capability::TracesRead), limit, false)
            .is_none());
    }

    #[test]
    fn an_assistant_grant_never_authorizes_workspace_rules() {
        let owner = grant(Role::Owner);
        assert!(owner.authorize(Access::WorkspaceMember).is_none());
        assert!(owner.authorize(Access::Operator).is_none());
        assert!(owner.authorize(Access::Public).is_none());
    }
}
