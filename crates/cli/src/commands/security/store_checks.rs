//! Checks of what tenants set up, read from the store (every tenant: the operator's view).

use super::config_checks::is_public;
use super::findings::{Finding, Severity};
use bastion_core::Risk;
use bastion_server::Settings;
use bastion_store::security::{Exposure, PolicyColumn};
use bastion_store::Store;

/// "slug: item, item; other: item" for at most 20 exposures.
fn list(found: &[Exposure]) -> String {
    let mut shown: Vec<String> = found
        .iter()
        .take(20)
        .map(|e| format!("{}: {}", e.place, e.item))
        .collect();
    if found.len() > 20 {
        shown.push(format!("and {} more", found.len() - 20));
    }
    shown.join("; ")
}

pub async fn check(store: &Store, settings: &Settings) -> anyhow::Result<Vec<Finding>> {
    let sec = store.security();
    let mut out = Vec::new();
    let mut add = |found: Vec<Exposure>, id, severity, title: &str, fix: &str| {
        if !found.is_empty() {
            out.push(Finding::new(id, severity, title, list(&found), fix));
        }
    };
    add(
        sec.admins_without_mfa().await?,
        "admin-without-mfa",
        Severity::High,
        "owners and admins sign in without a second factor",
        "have them enrol TOTP (/api/v1/auth/mfa/totp), then require it for the workspace (PATCH /api/v1/workspaces/{id} {\"require_mfa\": true})",
    );
    add(
        sec.api_keys_without_expiry().await?,
        "api-key-without-expiry",
        Severity::Low,
        "API keys that never expire",
        "create keys with expires_at and revoke the ones without, once their programs have new keys",
    );
    add(
        sec.api_keys_without_cap().await?,
        "api-key-without-spend-cap",
        Severity::Medium,
        "API keys that may chat without a monthly spend cap",
        "give each key that holds chat a monthly_spend_cap_usd (a new key; keys are immutable)",
    );
    add(
        sec.provider_keys_without_cap().await?,
        "provider-key-without-cap",
        Severity::Medium,
        "provider keys without a monthly spend cap",
        "PATCH /api/v1/workspaces/{id}/provider-keys/{key} with monthly_spend_cap_usd",
    );
    add(
        sec.private_egress().await?,
        "mcp-private-addresses",
        Severity::Medium,
        "tools and MCP servers may reach private addresses of named hosts",
        "keep private_hosts (PUT …/egress) to the internal hosts that must be reached, or empty it",
    );
    add(
        sec.unapproved_tools(Risk::External).await?,
        "external-tool-without-approval",
        Severity::High,
        "tools that act outside bastion run without a person's approval",
        "set approval to always (or above read) for these tools: a prompt-injected model could call them",
    );
    add(
        sec.unapproved_tools(Risk::Write).await?,
        "write-tool-without-approval",
        Severity::Medium,
        "tools that change data run without a person's approval",
        "set approval to above read for these tools unless their changes are harmless",
    );
    add(
        sec.device_policies(PolicyColumn::CodeKind, "digits").await?,
        "digits-only-activation-codes",
        Severity::Medium,
        "devices show activation codes of digits only",
        "keep code_kind alphanumeric (PUT …/devices/policy) unless the devices can only speak digits: 10^6 codes instead of 32^6",
    );
    if is_public(settings) || settings.base_domain.is_some() {
        add(
            sec.device_policies(PolicyColumn::Pairing, "auto").await?,
            "auto-pairing-on-public-deployment",
            Severity::Medium,
            "a code binds a device without an admin's approval on a public deployment",
            "set pairing to approval (PUT …/devices/policy) so a bound device waits for an admin",
        );
    }
    let report = store.audit().verify().await?;
    if !report.broken.is_empty() {
        let detail = report
            .broken
            .iter()
            .map(|b| format!("chain {} at seq {}: {}", b.chain, b.seq, b.reason))
            .collect::<Vec<_>>()
            .join("; ");
        out.push(Finding::new(
            "audit-chain-broken",
            Severity::Critical,
            "the audit log was changed",
            detail,
            "investigate: someone with database access altered or removed audit events (`bastion audit verify` names each break)",
        ));
    }
    Ok(out)
}
