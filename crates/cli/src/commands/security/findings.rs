//! A finding of the security audit: how bad, what, where, and how to fix it.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    /// Fails the audit (exit code 1).
    Critical,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable, for scripts and suppressions: `public-bind-without-tls`, …
    pub id: &'static str,
    pub severity: Severity,
    pub title: String,
    /// Where: the setting, file, assistant or workspace, and the items concerned.
    pub detail: String,
    pub fix: String,
}

impl Finding {
    pub fn new(
        id: &'static str,
        severity: Severity,
        title: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            id,
            severity,
            title: title.into(),
            detail: detail.into(),
            fix: fix.into(),
        }
    }
}
