use thiserror::Error;

/// What a repository can fail with. The server maps these to HTTP at its edge.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("the last owner cannot be removed or demoted")]
    LastOwner,
    #[error("the ownership offer has expired")]
    OfferExpired,
    #[error("the user who offered ownership is no longer an owner")]
    OffererNotOwner,
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Maps a unique-constraint violation to `Conflict(what)`, any other error unchanged.
    pub(crate) fn unique_as_conflict(err: sqlx::Error, what: &str) -> StoreError {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(what.to_string())
            }
            _ => StoreError::Database(err),
        }
    }
}
