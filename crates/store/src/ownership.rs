//! Ownership transfer: an owner offers ownership of the assistant to one of its members, and
//! only that member can accept it. Accepting makes the recipient `owner` and the offering
//! user `admin` in one transaction, serialized with every other membership change of the
//! assistant, so ownership is never granted by a role change and never lost in between.

use crate::memberships::{is_owner, lock_assistant, Member};
use crate::scope::AssistantScope;
use crate::{now_ms, row, Result, StoreError};
use bastion_core::{AssistantId, Role, UserId};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

/// A pending offer of an assistant's ownership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnershipOffer {
    pub assistant_id: AssistantId,
    pub from_user: UserId,
    pub to_user: UserId,
    pub created_at: i64,
    pub expires_at: i64,
}

pub struct Ownership<'a> {
    pub(crate) pool: &'a AnyPool,
}

const COLUMNS: &str = "assistant_id, from_user, to_user, created_at, expires_at";

fn offer(r: &AnyRow) -> Result<OwnershipOffer> {
    Ok(OwnershipOffer {
        assistant_id: row::id(r, "assistant_id")?,
        from_user: row::id(r, "from_user")?,
        to_user: row::id(r, "to_user")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

/// `OffererNotOwner` unless `user` is (still) an owner of the assistant.
async fn ensure_still_owner(
    tx: &mut Transaction<'_, Any>,
    id: AssistantId,
    user: UserId,
) -> Result<()> {
    match is_owner(tx, id, user).await {
        Ok(true) => Ok(()),
        Ok(false) | Err(StoreError::NotFound) => Err(StoreError::OffererNotOwner),
        Err(e) => Err(e),
    }
}

impl Ownership<'_> {
    /// Offers ownership to `to_user`, from the scope's user, for `ttl_ms`; replaces any
    /// earlier offer of this assistant. `NotFound` when `to_user` is not a member;
    /// `Conflict` when they already are an owner, or when the offering user no longer is.
    pub async fn offer(
        &self,
        scope: &AssistantScope,
        to_user: UserId,
        ttl_ms: i64,
    ) -> Result<OwnershipOffer> {
        let id = scope.assistant_id();
        let from_user = scope.user_id().ok_or(StoreError::NotFound)?;
        let now = now_ms();
        let o = OwnershipOffer {
            assistant_id: id,
            from_user,
            to_user,
            created_at: now,
            expires_at: now.saturating_add(ttl_ms),
        };
        let mut tx = crate::begin(self.pool).await?;
        lock_assistant(&mut tx, id).await?;
        if is_owner(&mut tx, id, to_user).await? {
            return Err(StoreError::Conflict(
                "that member is already an owner".into(),
            ));
        }
        // The scope was authorized from a grant that may be up to a cache TTL old.
        ensure_still_owner(&mut tx, id, o.from_user).await?;
        sqlx::query(
            "INSERT INTO ownership_offers (assistant_id, from_user, to_user, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (assistant_id) DO UPDATE SET \
             from_user = excluded.from_user, to_user = excluded.to_user, \
             created_at = excluded.created_at, expires_at = excluded.expires_at",
        )
        .bind(id.to_string())
        .bind(o.from_user.to_string())
        .bind(o.to_user.to_string())
        .bind(o.created_at)
        .bind(o.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(o)
    }

    /// The assistant's live (unexpired) offer, if any.
    pub async fn pending(&self, scope: &AssistantScope) -> Result<Option<OwnershipOffer>> {
        let r = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM ownership_offers WHERE assistant_id = $1 AND expires_at > $2"
        ))
        .bind(scope.assistant_id().to_string())
        .bind(now_ms())
        .fetch_optional(self.pool)
        .await?;
        r.as_ref().map(offer).transpose()
    }

    /// Withdraws the assistant's offer (live or expired). `NotFound` when there is none.
    pub async fn cancel(&self, scope: &AssistantScope) -> Result<OwnershipOffer> {
        let r = sqlx::query(&format!(
            "DELETE FROM ownership_offers WHERE assistant_id = $1 RETURNING {COLUMNS}"
        ))
        .bind(scope.assistant_id().to_string())
        .fetch_optional(self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        offer(&r)
    }

    /// Accepts the offer addressed to the scope's user: in one transaction the recipient
    /// becomes `owner`, the offering user `admin`, and the offer is spent. `NotFound` when
    /// there is no offer for this user (whether or not there is one for someone else);
    /// `OfferExpired` past its expiry; `OffererNotOwner` when the offering user has lost
    /// ownership since. Returns the spent offer and the recipient's new membership.
    pub async fn accept(&self, scope: &AssistantScope) -> Result<(OwnershipOffer, Member)> {
        let id = scope.assistant_id();
        let now = now_ms();
        let mut tx = crate::begin(self.pool).await?;
        lock_assistant(&mut tx, id).await?;
        let r = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM ownership_offers WHERE assistant_id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let o = offer(&r)?;
        if Some(o.to_user) != scope.user_id() {
            return Err(StoreError::NotFound);
        }
        if o.expires_at <= now {
            return Err(StoreError::OfferExpired);
        }
        ensure_still_owner(&mut tx, id, o.from_user).await?;
        for (user, role) in [(o.to_user, Role::Owner), (o.from_user, Role::Admin)] {
            let done = sqlx::query(
                "UPDATE memberships SET role = $1, updated_at = $2 WHERE assistant_id = $3 AND user_id = $4",
            )
            .bind(role.as_str())
            .bind(now)
            .bind(id.to_string())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                // The recipient left the assistant (the offerer was checked above).
                return Err(StoreError::NotFound);
            }
        }
        sqlx::query("DELETE FROM ownership_offers WHERE assistant_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let member = crate::memberships::Memberships { pool: self.pool }
            .get(scope, o.to_user)
            .await?;
        Ok((o, member))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Grant, Store};
    use bastion_core::{Access, MemberRole};

    /// An assistant with an owner, an editor and a member.
    struct Fixture {
        assistant: AssistantId,
        owner: UserId,
        editor: UserId,
        member: UserId,
    }

    async fn fixture(store: &Store) -> Fixture {
        let owner = store
            .users()
            .create("owner@x.test", "hash", false)
            .await
            .expect("owner");
        let ws = store
            .workspaces()
            .create("ws", owner.id)
            .await
            .expect("workspace");
        let ws_scope = store
            .workspaces()
            .grant(owner.id, ws.id)
            .await
            .expect("workspace grant")
            .expect("the creator is a member")
            .authorize(Access::WorkspaceMember)
            .expect("workspace scope");
        let a = store
            .assistants()
            .create(&ws_scope, "asst", "Assistant", "")
            .await
            .expect("assistant");
        let mut ids = Vec::new();
        for (email, role) in [("ed@x.test", Role::Editor), ("mo@x.test", Role::Member)] {
            let u = store
                .users()
                .create(email, "hash", false)
                .await
                .expect("user");
            let scope = scope(store, a.id, owner.id).await;
            store
                .memberships()
                .add(&scope, u.id, &MemberRole::Builtin(role))
                .await
                .expect("member");
            ids.push(u.id);
        }
        Fixture {
            assistant: a.id,
            owner: owner.id,
            editor: ids[0],
            member: ids[1],
        }
    }

    /// The scope `user` gets as a member (whatever the role) of `assistant`.
    async fn scope(store: &Store, assistant: AssistantId, user: UserId) -> AssistantScope {
        let grant: Grant = store
            .memberships()
            .grant(user, assistant)
            .await
            .expect("grant")
            .expect("a member");
        grant
            .authorize(Access::AssistantMember)
            .expect("member scope")
    }

    async fn role_of(store: &Store, f: &Fixture, user: UserId) -> String {
        let s = scope(store, f.assistant, f.owner).await;
        let m = store.memberships().get(&s, user).await.expect("member");
        m.role.name().to_string()
    }

    async fn an_accepted_offer_swaps_owner_and_admin(store: &Store) {
        let f = fixture(store).await;
        let owner = scope(store, f.assistant, f.owner).await;
        let o = store
            .ownership()
            .offer(&owner, f.editor, 60_000)
            .await
            .expect("offer");
        assert_eq!((o.from_user, o.to_user), (f.owner, f.editor));
        assert_eq!(store.ownership().pending(&owner).await.unwrap(), Some(o));
        let editor = scope(store, f.assistant, f.editor).await;
        let (spent, m) = store.ownership().accept(&editor).await.expect("accept");
        assert_eq!(spent.from_user, f.owner);
        assert_eq!((m.user_id, m.role.name()), (f.editor, "owner"));
        assert_eq!(role_of(store, &f, f.owner).await, "admin");
        assert_eq!(role_of(store, &f, f.editor).await, "owner");
        assert_eq!(store.ownership().pending(&owner).await.unwrap(), None);
        // Spent: a second acceptance finds nothing.
        assert!(matches!(
            store.ownership().accept(&editor).await,
            Err(StoreError::NotFound)
        ));
    }

    async fn only_the_recipient_can_accept(store: &Store) {
        let f = fixture(store).await;
        let owner = scope(store, f.assistant, f.owner).await;
        store
            .ownership()
            .offer(&owner, f.editor, 60_000)
            .await
            .expect("offer");
        for other in [f.member, f.owner] {
            let s = scope(store, f.assistant, other).await;
            assert!(matches!(
                store.ownership().accept(&s).await,
                Err(StoreError::NotFound)
            ));
        }
        assert_eq!(role_of(store, &f, f.owner).await, "owner");
        assert_eq!(role_of(store, &f, f.member).await, "member");
        assert!(store.ownership().pending(&owner).await.unwrap().is_some());
    }

    async fn an_expired_offer_is_refused(store: &Store) {
        let f = fixture(store).await;
        let owner = scope(store, f.assistant, f.owner).await;
        store
            .ownership()
            .offer(&owner, f.editor, -1)
            .await
            .expect("offer");
        assert_eq!(store.ownership().pending(&owner).await.unwrap(), None);
        let editor = scope(store, f.assistant, f.editor).await;
        assert!(matches!(
            store.ownership().accept(&editor).await,
            Err(StoreError::OfferExpired)
        ));
        assert_eq!(role_of(store, &f, f.owner).await, "owner");
        assert_eq!(role_of(store, &f, f.editor).await, "editor");
        // An expired offer can still be withdrawn, once.
        store.ownership().cancel(&owner).await.expect("cancel");
        assert!(matches!(
            store.ownership().cancel(&owner).await,
            Err(StoreError::NotFound)
        ));
    }

    async fn an_offer_from_someone_no_longer_owner_is_refused(store: &Store) {
        let f = fixture(store).await;
        let owner = scope(store, f.assistant, f.owner).await;
        // A second owner (as data from before ownership transfer may hold) offers, then
        // is demoted by the first.
        store
            .memberships()
            .set_role(&owner, f.member, &MemberRole::Builtin(Role::Owner))
            .await
            .expect("second owner");
        let second = scope(store, f.assistant, f.member).await;
        store
            .ownership()
            .offer(&second, f.editor, 60_000)
            .await
            .expect("offer");
        store
            .memberships()
            .set_role(&owner, f.member, &MemberRole::Builtin(Role::Viewer))
            .await
            .expect("demote");
        let editor = scope(store, f.assistant, f.editor).await;
        assert!(matches!(
            store.ownership().accept(&editor).await,
            Err(StoreError::OffererNotOwner)
        ));
        assert_eq!(role_of(store, &f, f.editor).await, "editor");
        // Nor can a stale scope of the demoted user make a new offer.
        assert!(matches!(
            store.ownership().offer(&second, f.editor, 60_000).await,
            Err(StoreError::OffererNotOwner)
        ));
    }

    async fn offers_go_to_members_who_are_not_owners(store: &Store) {
        let f = fixture(store).await;
        let owner = scope(store, f.assistant, f.owner).await;
        assert!(matches!(
            store.ownership().offer(&owner, UserId::new(), 60_000).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            store.ownership().offer(&owner, f.owner, 60_000).await,
            Err(StoreError::Conflict(_))
        ));
        // A new offer replaces the old one.
        store
            .ownership()
            .offer(&owner, f.editor, 60_000)
            .await
            .expect("offer");
        store
            .ownership()
            .offer(&owner, f.member, 60_000)
            .await
            .expect("offer");
        let pending = store.ownership().pending(&owner).await.unwrap().unwrap();
        assert_eq!(pending.to_user, f.member);
        let editor = scope(store, f.assistant, f.editor).await;
        assert!(matches!(
            store.ownership().accept(&editor).await,
            Err(StoreError::NotFound)
        ));
        // Removing the recipient withdraws the offer: re-adding them does not revive it.
        store
            .memberships()
            .remove(&owner, f.member)
            .await
            .expect("remove");
        assert_eq!(store.ownership().pending(&owner).await.unwrap(), None);
    }

    async fn concurrent_acceptances_transfer_once(store: &Store) {
        let f = fixture(store).await;
        let owner = scope(store, f.assistant, f.owner).await;
        store
            .ownership()
            .offer(&owner, f.editor, 60_000)
            .await
            .expect("offer");
        let editor = scope(store, f.assistant, f.editor).await;
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                let editor = editor.clone();
                tokio::spawn(async move { store.ownership().accept(&editor).await.is_ok() })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            if t.await.expect("task") {
                wins += 1;
            }
        }
        assert_eq!(wins, 1);
        assert_eq!(role_of(store, &f, f.editor).await, "owner");
        assert_eq!(role_of(store, &f, f.owner).await, "admin");
    }

    /// The recipient deletes their account while accepting: whichever wins, the assistant
    /// keeps an owner.
    async fn deleting_the_recipient_while_accepting_leaves_an_owner(store: &Store) {
        for _ in 0..5 {
            let f = fixture(store).await;
            let owner = scope(store, f.assistant, f.owner).await;
            store
                .ownership()
                .offer(&owner, f.editor, 60_000)
                .await
                .expect("offer");
            let editor = scope(store, f.assistant, f.editor).await;
            let accept = {
                let (store, editor) = (store.clone(), editor.clone());
                tokio::spawn(async move { store.ownership().accept(&editor).await.is_ok() })
            };
            let delete = {
                let store = store.clone();
                tokio::spawn(async move { store.users().delete(f.editor).await })
            };
            let (accepted, deleted) = (accept.await.expect("task"), delete.await.expect("task"));
            let owners: Vec<(String,)> = sqlx::query_as(
                "SELECT user_id FROM memberships WHERE assistant_id = $1 AND role = 'owner'",
            )
            .bind(f.assistant.to_string())
            .fetch_all(&store.pool)
            .await
            .expect("owners");
            assert_eq!(owners.len(), 1, "accepted {accepted}, deleted {deleted:?}");
            for table in ["assistants", "workspaces", "users"] {
                sqlx::query(&format!("DELETE FROM {table}"))
                    .execute(&store.pool)
                    .await
                    .expect("a clean slate for the next round");
            }
        }
    }

    crate::testing::on_both_engines!(
        deleting_the_recipient_while_accepting_leaves_an_owner,
        an_accepted_offer_swaps_owner_and_admin,
        only_the_recipient_can_accept,
        an_expired_offer_is_refused,
        an_offer_from_someone_no_longer_owner_is_refused,
        offers_go_to_members_who_are_not_owners,
        concurrent_acceptances_transfer_once,
    );
}
