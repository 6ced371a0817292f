//! The policy words of the tool boundary: how risky a tool is, and when a person must
//! approve a call of it. Pure data; the server applies them.

use serde::{Deserialize, Serialize};

/// What a tool can do to the world, in increasing order.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Reads the assistant's own data.
    Read,
    /// Changes the assistant's own data.
    Write,
    /// Reaches or acts on something outside bastion.
    External,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Read => "read",
            Risk::Write => "write",
            Risk::External => "external",
        }
    }
    pub fn parse(s: &str) -> Option<Risk> {
        match s {
            "read" => Some(Risk::Read),
            "write" => Some(Risk::Write),
            "external" => Some(Risk::External),
            _ => None,
        }
    }
}

/// When a call waits for a person with `tools.approve`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "rule", content = "risk")]
pub enum Approval {
    Never,
    Always,
    /// Calls of tools riskier than this wait (`above read`: write and external ones).
    Above(Risk),
}

impl Approval {
    /// Whether a call of a tool of `risk` waits for approval. A tool of external risk always
    /// waits unless the rule is `never`, set deliberately by an admin.
    pub fn requires(self, risk: Risk) -> bool {
        match self {
            Approval::Never => false,
            Approval::Always => true,
            Approval::Above(limit) => risk > limit,
        }
    }

    /// The stored form: `never`, `always`, `above:read`, `above:write`.
    pub fn to_db(self) -> String {
        match self {
            Approval::Never => "never".into(),
            Approval::Always => "always".into(),
            Approval::Above(r) => format!("above:{}", r.as_str()),
        }
    }
    pub fn from_db(s: &str) -> Option<Approval> {
        match s {
            "never" => Some(Approval::Never),
            "always" => Some(Approval::Always),
            _ => s
                .strip_prefix("above:")
                .and_then(Risk::parse)
                .map(Approval::Above),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_rules_order_risks() {
        assert!(!Approval::Never.requires(Risk::External));
        assert!(Approval::Always.requires(Risk::Read));
        assert!(!Approval::Above(Risk::Read).requires(Risk::Read));
        assert!(Approval::Above(Risk::Read).requires(Risk::Write));
        assert!(Approval::Above(Risk::Write).requires(Risk::External));
        assert!(!Approval::Above(Risk::External).requires(Risk::External));
    }

    #[test]
    fn approval_round_trips_its_stored_form() {
        for a in [
            Approval::Never,
            Approval::Always,
            Approval::Above(Risk::Read),
            Approval::Above(Risk::Write),
            Approval::Above(Risk::External),
        ] {
            assert_eq!(Approval::from_db(&a.to_db()), Some(a));
        }
        assert_eq!(Approval::from_db("above:nothing"), None);
        assert_eq!(Approval::from_db("sometimes"), None);
    }
}
