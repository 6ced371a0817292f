//! Capabilities: the unit of authorization. A route declares one; a role holds a set.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One thing a principal may do on an assistant (or, for workspace routes, a workspace).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub enum Capability {
    #[serde(rename = "chat")]
    Chat,
    #[serde(rename = "conversations.read")]
    ConversationsRead,
    #[serde(rename = "conversations.read_all")]
    ConversationsReadAll,
    #[serde(rename = "knowledge.manage")]
    KnowledgeManage,
    #[serde(rename = "tools.manage")]
    ToolsManage,
    #[serde(rename = "tools.approve")]
    ToolsApprove,
    #[serde(rename = "mcp.manage")]
    McpManage,
    #[serde(rename = "devices.manage")]
    DevicesManage,
    #[serde(rename = "settings.manage")]
    SettingsManage,
    #[serde(rename = "members.manage")]
    MembersManage,
    #[serde(rename = "keys.manage")]
    KeysManage,
    #[serde(rename = "audit.read")]
    AuditRead,
    #[serde(rename = "feedback.read")]
    FeedbackRead,
    #[serde(rename = "traces.read")]
    TracesRead,
}

impl Capability {
    pub const ALL: [Capability; 14] = [
        Capability::Chat,
        Capability::ConversationsRead,
        Capability::ConversationsReadAll,
        Capability::KnowledgeManage,
        Capability::ToolsManage,
        Capability::ToolsApprove,
        Capability::McpManage,
        Capability::DevicesManage,
        Capability::SettingsManage,
        Capability::MembersManage,
        Capability::KeysManage,
        Capability::AuditRead,
        Capability::FeedbackRead,
        Capability::TracesRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Chat => "chat",
            Capability::ConversationsRead => "conversations.read",
            Capability::ConversationsReadAll => "conversations.read_all",
            Capability::KnowledgeManage => "knowledge.manage",
            Capability::ToolsManage => "tools.manage",
            Capability::ToolsApprove => "tools.approve",
            Capability::McpManage => "mcp.manage",
            Capability::DevicesManage => "devices.manage",
            Capability::SettingsManage => "settings.manage",
            Capability::MembersManage => "members.manage",
            Capability::KeysManage => "keys.manage",
            Capability::AuditRead => "audit.read",
            Capability::FeedbackRead => "feedback.read",
            Capability::TracesRead => "traces.read",
        }
    }

    /// The capability named `name` (its serde name), if any.
    pub fn parse(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.as_str() == name)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of capabilities as a bit set: checked on every request, so it must be cheap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct CapabilitySet(u32);

impl CapabilitySet {
    pub const EMPTY: CapabilitySet = CapabilitySet(0);

    pub fn of(caps: &[Capability]) -> Self {
        CapabilitySet(caps.iter().fold(0, |acc, c| acc | c.bit()))
    }

    pub fn all() -> Self {
        Self::of(&Capability::ALL)
    }

    pub fn contains(self, cap: Capability) -> bool {
        self.0 & cap.bit() != 0
    }

    /// The capabilities in both sets: what a narrowed credential may still do.
    pub fn intersection(self, other: CapabilitySet) -> CapabilitySet {
        CapabilitySet(self.0 & other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names, space-separated, in the canonical order: how a set is stored.
    pub fn to_names(self) -> String {
        self.iter()
            .map(Capability::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The inverse of [`CapabilitySet::to_names`]; `None` on an unknown name.
    pub fn from_names(names: &str) -> Option<CapabilitySet> {
        names
            .split_whitespace()
            .map(Capability::parse)
            .collect::<Option<Vec<_>>>()
            .map(|caps| CapabilitySet::of(&caps))
    }

    /// True when every capability of `other` is also in `self`.
    pub fn covers(self, other: CapabilitySet) -> bool {
        other.0 & !self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }

    pub fn to_vec(self) -> Vec<Capability> {
        self.iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_is_subset() {
        let small = CapabilitySet::of(&[Capability::Chat]);
        let big = CapabilitySet::of(&[Capability::Chat, Capability::AuditRead]);
        assert!(big.covers(small));
        assert!(!small.covers(big));
        assert_eq!(big.to_vec(), vec![Capability::Chat, Capability::AuditRead]);
    }

    #[test]
    fn stored_names_round_trip() {
        let set = CapabilitySet::of(&[Capability::TracesRead, Capability::Chat]);
        assert_eq!(set.to_names(), "chat traces.read");
        assert_eq!(CapabilitySet::from_names(&set.to_names()), Some(set));
        assert_eq!(CapabilitySet::from_names(""), Some(CapabilitySet::EMPTY));
        assert_eq!(CapabilitySet::from_names("chat root"), None);
        assert_eq!(
            set.intersection(CapabilitySet::of(&[Capability::Chat])),
            CapabilitySet::of(&[Capability::Chat])
        );
    }

    #[test]
    fn names_round_trip_through_serde() {
        for cap in Capability::ALL {
            let json = serde_json_like(cap);
            assert_eq!(json, format!("\"{}\"", cap.as_str()));
        }
    }

    fn serde_json_like(cap: Capability) -> String {
        // serde_json is not a dependency of this crate; the Display name must match the serde name.
        format!("\"{cap}\"")
    }
}
