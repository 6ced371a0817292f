//! Paging through and re-wrapping the secrets the vault sealed (provider keys, MCP server
//! credentials, device factory keys), for the operator's vault commands, never on a request
//! path. Each kind names its own query and column; the walking is the same.

use crate::{row, Result};
use bastion_core::WorkspaceId;
use sqlx::{AnyPool, Row};
use std::str::FromStr;

/// One page of `(id, workspace, sealed value)` in id order after `after`. `select` yields
/// columns `id`, `workspace_id` and `sealed`, with `$1` the last id seen and `$2` the limit.
pub(crate) async fn page<I: FromStr + ToString>(
    pool: &AnyPool,
    select: &str,
    after: Option<I>,
    limit: i64,
) -> Result<Vec<(I, WorkspaceId, String)>> {
    let rows = sqlx::query(select)
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(limit)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                row::id(r, "id")?,
                row::id(r, "workspace_id")?,
                r.try_get("sealed")?,
            ))
        })
        .collect()
}

/// Replaces `table.column` of row `id` by its re-wrapped form, only if it is still `old`:
/// one record at a time, atomically, so an interrupted rotation loses nothing. False when
/// the record changed (or went) meanwhile.
pub(crate) async fn replace(
    pool: &AnyPool,
    (table, column): (&str, &str),
    id: &str,
    old: &str,
    new: &str,
) -> Result<bool> {
    let done = sqlx::query(&format!(
        "UPDATE {table} SET {column} = $1 WHERE id = $2 AND {column} = $3"
    ))
    .bind(new)
    .bind(id)
    .bind(old)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
