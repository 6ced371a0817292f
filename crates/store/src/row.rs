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
