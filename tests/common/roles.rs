//! The built-in assistant roles below owner and their capabilities (DESIGN.md;
//! crates/core/src/role.rs), written out again so that a change there must be made here
//! on purpose.

/// Built-in role capabilities (DESIGN.md); `*` is every capability.
pub const ROLES: &[(&str, &[&str])] = &[
    ("admin", &["*"]),
    (
        "editor",
        &[
            "chat",
            "conversations.read",
            "settings.manage",
            "knowledge.manage",
            "tools.manage",
            "mcp.manage",
            "traces.read",
        ],
    ),
    (
        "operator",
        &[
            "chat",
            "conversations.read",
            "devices.manage",
            "conversations.read_all",
            "feedback.read",
            "traces.read",
        ],
    ),
    (
        "viewer",
        &[
            "conversations.read",
            "conversations.read_all",
            "feedback.read",
            "traces.read",
            "audit.read",
        ],
    ),
    ("member", &["chat", "conversations.read"]),
];

/// Whether `caps` (as in [`ROLES`]) holds `cap`.
pub fn holds(caps: &[&str], cap: &str) -> bool {
    caps.contains(&"*") || caps.contains(&cap)
}

/// The capabilities of a built-in role below owner.
pub fn capabilities(role: &str) -> &'static [&'static str] {
    ROLES
        .iter()
        .find(|(r, _)| *r == role)
        .map(|(_, caps)| *caps)
        .unwrap_or_else(|| panic!("unknown role {role}"))
}
