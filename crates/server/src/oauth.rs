//! OAuth sign-in on the server side: the service built from the settings, and who an
//! external identity is here.
//!
//! Account resolution, in order:
//! 1. `(provider, subject)` already linked: that user.
//! 2. The provider vouches for the email (`email_verified`): the user with that email gets
//!    the identity linked, or a new user is created with it.
//! 3. Otherwise a new user whose email is a non-deliverable placeholder
//!    (`{hash}@{provider}.oauth.invalid`). An unverified email is never stored as a user's
//!    email: an admin inviting that address would hand its membership to whoever claimed it.
//!
//! New users (2 and 3) are created only when `signup = "open"`: with `invite` or `closed`,
//! an identity that finds no account is refused (403), as a password sign-up would be, so
//! adding a provider does not open the instance to everyone who has an account there.
//!
//! Users created here have no password (an empty hash, which no password verifies).

use crate::error::{ApiError, ApiResult};
use crate::settings::Settings;
use bastion_auth::keys::DerivedKeys;
use bastion_auth::oauth::{ExternalIdentity, OAuth, StateKey};
use bastion_store::users::User;
use bastion_store::{Store, StoreError};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The OAuth service for `settings` (already validated), keyed by the derived OAuth key.
pub fn build(settings: &Settings, keys: &DerivedKeys) -> OAuth {
    let key = || StateKey::new(*keys.oauth_state);
    let ttl = Duration::from_secs(settings.oauth_state_ttl_secs);
    match OAuth::new(
        key(),
        &settings.oauth_providers,
        &settings.oauth_allowed_return_origins,
    ) {
        Ok(o) => o.with_state_ttl(ttl),
        Err(e) => {
            // Settings::validate runs the same checks, so this is unvalidated input.
            tracing::error!(error = %e, "OAuth settings are invalid; OAuth sign-in is disabled");
            OAuth::new(key(), &[], &[])
                .unwrap_or_else(|_| unreachable!("no providers and no origins always build"))
        }
    }
}

/// How the identity found its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linked {
    /// The identity was linked before.
    Known,
    /// Linked now to the existing user with the provider-verified email.
    ByVerifiedEmail,
    /// A new user was created for it.
    NewUser,
}

impl Linked {
    pub fn as_str(&self) -> &'static str {
        match self {
            Linked::Known => "known",
            Linked::ByVerifiedEmail => "verified_email",
            Linked::NewUser => "new_user",
        }
    }
}

/// The placeholder email of a user whose provider vouched for no email: unique per
/// identity, and in the `.invalid` TLD, which never receives mail (RFC 2606).
pub fn placeholder_email(provider: &str, subject: &str) -> String {
    let mut h = Sha256::new();
    h.update(provider.as_bytes());
    h.update([0]);
    h.update(subject.as_bytes());
    format!(
        "{}@{provider}.oauth.invalid",
        &hex::encode(h.finalize())[..24]
    )
}

/// Whether an identity that finds no account may create one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewUsers {
    Allowed,
    Refused,
}

/// The user `id` signs in as, linking or creating as described above.
pub async fn resolve_user(
    store: &Store,
    id: &ExternalIdentity,
    new_users: NewUsers,
) -> ApiResult<(User, Linked)> {
    // Two first sign-ins of the same identity can race; the loser finds the winner's link.
    for _ in 0..2 {
        match try_resolve(store, id, new_users).await {
            Err(StoreError::Conflict(_)) => continue,
            other => return finish(other),
        }
    }
    finish(try_resolve(store, id, new_users).await)
}

fn finish(found: Result<Option<(User, Linked)>, StoreError>) -> ApiResult<(User, Linked)> {
    found?.ok_or_else(|| {
        ApiError::Forbidden(
            "no account here belongs to this identity, and sign-up is not open: \
             sign up (with an invitation) first, then sign in with this provider"
                .into(),
        )
    })
}

/// `None` when a new user would be needed and `new_users` refuses it.
async fn try_resolve(
    store: &Store,
    id: &ExternalIdentity,
    new_users: NewUsers,
) -> Result<Option<(User, Linked)>, StoreError> {
    let identities = store.identities();
    if let Some(link) = identities.find(&id.provider, &id.subject).await? {
        let user = store
            .users()
            .get(link.user_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        return Ok(Some((user, Linked::Known)));
    }
    let verified = id.verified_email().filter(|e| is_plausible_email(e));
    if let Some(email) = verified {
        if let Some(user) = store.users().by_email(email).await? {
            identities
                .link(&id.provider, &id.subject, user.id, email)
                .await?;
            return Ok(Some((user, Linked::ByVerifiedEmail)));
        }
    }
    if new_users == NewUsers::Refused {
        return Ok(None);
    }
    let (user, _) = match verified {
        Some(email) => {
            identities
                .create_user(email, &id.provider, &id.subject, email)
                .await?
        }
        None => {
            let placeholder = placeholder_email(&id.provider, &id.subject);
            identities
                .create_user(&placeholder, &id.provider, &id.subject, "")
                .await?
        }
    };
    Ok(Some((user, Linked::NewUser)))
}

/// A provider-verified email is still checked for shape before it becomes a login.
fn is_plausible_email(e: &str) -> bool {
    crate::validate::email(e).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(sub: &str, email: Option<&str>, verified: bool) -> ExternalIdentity {
        ExternalIdentity {
            provider: "corp".into(),
            subject: sub.into(),
            email: email.map(str::to_string),
            email_verified: verified,
        }
    }

    #[tokio::test]
    async fn identities_resolve_to_users_as_documented() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Store::sqlite_url(dir.path())).await.unwrap();
        let existing = store
            .users()
            .create("alice@corp.test", "hash", false)
            .await
            .unwrap();

        // A verified email links the existing account.
        let (u, how) = resolve_user(
            &store,
            &ext("a", Some("Alice@Corp.test"), true),
            NewUsers::Refused,
        )
        .await
        .unwrap();
        assert_eq!((u.id, how), (existing.id, Linked::ByVerifiedEmail));
        // Next time the link alone finds it, whatever the email now says.
        let (u, how) = resolve_user(&store, &ext("a", None, false), NewUsers::Refused)
            .await
            .unwrap();
        assert_eq!((u.id, how), (existing.id, Linked::Known));

        // An unverified email claiming the same address gets a new account with a
        // placeholder email, never the claimed one.
        let (u, how) = resolve_user(
            &store,
            &ext("b", Some("alice@corp.test"), false),
            NewUsers::Allowed,
        )
        .await
        .unwrap();
        assert_eq!(how, Linked::NewUser);
        assert_ne!(u.id, existing.id);
        assert_eq!(u.email, placeholder_email("corp", "b"));
        assert!(u.email.ends_with("@corp.oauth.invalid"));

        // Unless sign-up is open, an identity with no account gets none.
        for e in [
            ext("c", Some("carol@corp.test"), true),
            ext("d", None, false),
        ] {
            assert!(matches!(
                resolve_user(&store, &e, NewUsers::Refused).await,
                Err(ApiError::Forbidden(_))
            ));
        }
        assert!(store
            .users()
            .by_email("carol@corp.test")
            .await
            .unwrap()
            .is_none());

        // A verified new email creates an account with it.
        let (u, how) = resolve_user(
            &store,
            &ext("c", Some("carol@corp.test"), true),
            NewUsers::Allowed,
        )
        .await
        .unwrap();
        assert_eq!(
            (u.email.as_str(), how),
            ("carol@corp.test", Linked::NewUser)
        );
    }
}
