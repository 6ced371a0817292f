//! The frame of a signed-in page: who is signed in, the assistant switcher, and the
//! navigation of the current assistant, listing only what the caller's capabilities reach
//! (the pages behind the other links refuse them anyway: each is its own gated route).

use super::widgets;
use crate::error::ApiResult;
use crate::flow::{Caller, InAssistant};
use crate::state::AppState;
use axum::extract::FromRequestParts;
use bastion_core::{Access, AssistantId, Capability as C, CapabilitySet, WorkspaceId};
use maud::{html, Markup};

pub struct Frame {
    email: String,
    assistants: Vec<(AssistantId, String, String)>,
    here: Option<Here>,
}

/// The assistant the page is about and what the caller may do there.
pub struct Here {
    pub id: AssistantId,
    pub name: String,
    pub workspace: WorkspaceId,
    pub caps: CapabilitySet,
    /// The caller's capabilities on the assistant's workspace (provider keys, audit log).
    pub workspace_caps: WorkspaceCaps,
}

#[derive(Default, Clone, Copy)]
pub struct WorkspaceCaps {
    pub keys: bool,
    pub audit: bool,
}

/// A page of the navigation: its label, its path under the assistant and what it needs.
struct Link {
    label: &'static str,
    path: &'static str,
    needs: Option<C>,
}

const LINKS: &[Link] = &[
    Link {
        label: "Overview",
        path: "",
        needs: None,
    },
    Link {
        label: "Chat",
        path: "/chat",
        needs: Some(C::Chat),
    },
    Link {
        label: "Conversations",
        path: "/conversations",
        needs: Some(C::ConversationsRead),
    },
    Link {
        label: "Members",
        path: "/members",
        needs: Some(C::MembersManage),
    },
    Link {
        label: "API keys",
        path: "/api-keys",
        needs: Some(C::KeysManage),
    },
    Link {
        label: "Tools",
        path: "/tools",
        needs: Some(C::ToolsManage),
    },
    Link {
        label: "MCP servers",
        path: "/mcp-servers",
        needs: Some(C::McpManage),
    },
    Link {
        label: "Approvals",
        path: "/approvals",
        needs: Some(C::ToolsApprove),
    },
    Link {
        label: "Devices",
        path: "/devices",
        needs: Some(C::DevicesManage),
    },
    Link {
        label: "Settings",
        path: "/settings",
        needs: Some(C::SettingsManage),
    },
];

impl Frame {
    /// The frame of a page about an authorized assistant.
    pub async fn about(state: &AppState, caller: &Caller, at: &InAssistant) -> ApiResult<Frame> {
        let mut frame = Frame::of(state, caller).await?;
        let workspace = at.assistant.workspace_id;
        frame.here = Some(Here {
            id: at.assistant.id,
            name: at.assistant.name.clone(),
            workspace,
            caps: at.scope.holding().capabilities,
            workspace_caps: workspace_caps(state, caller, workspace).await?,
        });
        Ok(frame)
    }

    /// The frame of a workspace page, with the navigation of `from` (an assistant of that
    /// workspace the caller belongs to) when given.
    pub async fn in_workspace(
        state: &AppState,
        caller: &Caller,
        workspace: WorkspaceId,
        from: Option<AssistantId>,
    ) -> ApiResult<Frame> {
        let mut frame = Frame::of(state, caller).await?;
        if let Some(id) = from {
            let grant = state.directory.grant(caller.user.id, id).await?;
            if let Some(grant) = grant.filter(|g| g.workspace_id() == workspace) {
                let name = frame
                    .assistants
                    .iter()
                    .find(|(a, _, _)| *a == id)
                    .map(|(_, n, _)| n.clone())
                    .unwrap_or_default();
                frame.here = Some(Here {
                    id,
                    name,
                    workspace,
                    caps: grant
                        .authorize(Access::AssistantMember)
                        .map(|s| s.holding().capabilities)
                        .unwrap_or_default(),
                    workspace_caps: workspace_caps(state, caller, workspace).await?,
                });
            }
        }
        Ok(frame)
    }

    /// The frame of a page about no assistant (the list of them).
    pub async fn of(state: &AppState, caller: &Caller) -> ApiResult<Frame> {
        let rows = state
            .store
            .assistants()
            .list_for_user(caller.user.id)
            .await?;
        Ok(Frame {
            email: caller.user.email.clone(),
            assistants: rows
                .into_iter()
                .map(|(a, role)| (a.id, a.name, role.name().to_owned()))
                .collect(),
            here: None,
        })
    }

    pub fn assistants(&self) -> &[(AssistantId, String, String)] {
        &self.assistants
    }

    /// Whether the caller holds `cap` on the current assistant.
    pub fn may(&self, cap: C) -> bool {
        self.here.as_ref().is_some_and(|h| h.caps.contains(cap))
    }

    /// The page: header, navigation (with `active` marked) and `content`.
    pub fn page(&self, title: &str, active: &str, content: Markup) -> Markup {
        widgets::bare_page(
            title,
            html! {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui/" { "bastion" }
                    @if !self.assistants.is_empty() {
                        label.switcher {
                            span.visually-hidden { "Assistant" }
                            select data-navigate aria-label="Switch assistant" {
                                @if self.here.is_none() { option value="/ui/" selected { "Choose an assistant" } }
                                @for (id, name, role) in &self.assistants {
                                    option value=(format!("/ui/assistants/{id}"))
                                        selected[self.here.as_ref().is_some_and(|h| h.id == *id)] {
                                        (name) " (" (role) ")"
                                    }
                                }
                            }
                        }
                    }
                    span.who { (self.email) }
                    button type="button" data-sign-out { "Sign out" }
                }
                @if let Some(h) = &self.here {
                    nav.side aria-label="Assistant" {
                        ul {
                            @for l in LINKS.iter().filter(|l| l.needs.is_none_or(|c| h.caps.contains(c))) {
                                li { a href=(format!("/ui/assistants/{}{}", h.id, l.path))
                                    aria-current=[(l.label == active).then_some("page")] { (l.label) } }
                            }
                            @if h.workspace_caps.keys {
                                li { a href=(format!("/ui/workspaces/{}/provider-keys?from={}", h.workspace, h.id))
                                    aria-current=[(active == "Provider keys").then_some("page")] { "Provider keys" } }
                            }
                            @if h.workspace_caps.audit {
                                li { a href=(format!("/ui/workspaces/{}/audit?from={}", h.workspace, h.id))
                                    aria-current=[(active == "Audit log").then_some("page")] { "Audit log" } }
                            }
                        }
                    }
                }
                main #main {
                    @if let Some(h) = &self.here { p.context { (h.name) } }
                    h1 { (title) }
                    (content)
                }
            },
        )
    }
}

/// What a page about an assistant starts from: the app, the authorized assistant and the
/// frame built for the caller there. An extractor, so a page handler asks for it alone.
pub struct AssistantPage {
    pub state: AppState,
    pub at: InAssistant,
    pub frame: Frame,
}

impl FromRequestParts<AppState> for AssistantPage {
    type Rejection = crate::error::ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let at = InAssistant::from_request_parts(parts, state).await?;
        let frame = Frame::about(state, &caller, &at).await?;
        Ok(AssistantPage {
            state: state.clone(),
            at,
            frame,
        })
    }
}

async fn workspace_caps(
    state: &AppState,
    caller: &Caller,
    workspace: WorkspaceId,
) -> ApiResult<WorkspaceCaps> {
    let grant = state
        .directory
        .workspace_grant(caller.user.id, workspace)
        .await?;
    let holds = |cap| {
        grant
            .as_ref()
            .is_some_and(|g| g.authorize(Access::Workspace(cap)).is_some())
    };
    Ok(WorkspaceCaps {
        keys: holds(C::KeysManage),
        audit: holds(C::AuditRead),
    })
}
