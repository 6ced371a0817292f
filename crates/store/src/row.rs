//! Decoding helpers: ids are stored as UUID text, and a malformed one is corruption, not input.

use crate::{Result, StoreError};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::str::FromStr;

pub(crate) fn id<T: FromStr>(row: &AnyRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col)?;
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("column {col} holds a malformed id")))
}

pub(crate) fn role(row: &AnyRow, col: &str) -> Result<bastion_core::Role> {
    let s: String = row.try_get(col)?;
    bastion_core::Role::parse(&s)
        .ok_or_else(|| StoreError::Corrupt(format!("column {col} holds unknown role {s:?}")))
}

pub(crate) fn capabilities(row: &AnyRow, col: &str) -> Result<bastion_core::CapabilitySet> {
    let s: String = row.try_get(col)?;
    bastion_core::CapabilitySet::from_names(&s)
        .ok_or_else(|| StoreError::Corrupt(format!("column {col} holds an unknown capability")))
}

/// The SQL that loads a membership's role: join it as `LEFT JOIN assistant_roles cr ON
/// cr.id = {alias}.role AND cr.assistant_id = {alias}.assistant_id` and select these.
pub(crate) const MEMBER_ROLE_COLUMNS: &str =
    "cr.name AS custom_role_name, cr.capabilities AS custom_role_capabilities";

pub(crate) fn custom_role_join(alias: &str) -> String {
    format!(
        "LEFT JOIN assistant_roles cr ON cr.id = {alias}.role AND cr.assistant_id = {alias}.assistant_id"
    )
}

/// A member's role from `role_col` and the custom-role columns of [`MEMBER_ROLE_COLUMNS`].
pub(crate) fn member_role(row: &AnyRow, role_col: &str) -> Result<bastion_core::MemberRole> {
    let s: String = row.try_get(role_col)?;
    if let Some(r) = bastion_core::Role::parse(&s) {
        return Ok(bastion_core::MemberRole::Builtin(r));
    }
    let name: Option<String> = row.try_get("custom_role_name")?;
    let name =
        name.ok_or_else(|| StoreError::Corrupt(format!("column {role_col} names no role: {s:?}")))?;
    Ok(bastion_core::MemberRole::Custom {
        id: id(row, role_col)?,
        name,
        capabilities: capabilities(row, "custom_role_capabilities")?,
    })
}
