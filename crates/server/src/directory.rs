//! The tenancy directory: cached look-ups on the request path (assistant by id, slug or
//! domain; a user's grant on an assistant or workspace; a user by id). Entries live at most
//! `cache_ttl_secs`, and every change made through this node invalidates them at once.
//! Other nodes see a change within the TTL (cross-node invalidation arrives with Redis).

use bastion_core::{ApiKeyId, AssistantId, SessionId, UserId, WorkspaceId};
use bastion_store::assistants::Assistant;
use bastion_store::sessions::Session;
use bastion_store::users::User;
use bastion_store::{Grant, KeyGrant, Store, StoreError, WorkspaceGrant};
use moka::sync::Cache;
use std::sync::Arc;
use std::time::Duration;

pub struct Directory {
    store: Store,
    assistants: Cache<AssistantId, Option<Arc<Assistant>>>,
    slugs: Cache<String, Option<AssistantId>>,
    domains: Cache<String, Option<AssistantId>>,
    grants: Cache<(UserId, AssistantId), Option<Grant>>,
    workspace_grants: Cache<(UserId, WorkspaceId), Option<WorkspaceGrant>>,
    users: Cache<UserId, Option<Arc<User>>>,
    sessions: Cache<SessionId, Option<Arc<Session>>>,
    /// Live API keys by hash. Unknown hashes are not cached: guessed keys must not push
    /// real ones out.
    api_keys: Cache<String, Arc<KeyGrant>>,
    /// Keys whose last use was written recently: at most one write per key a minute.
    key_uses: Cache<ApiKeyId, ()>,
}

/// How often a key's `last_used_at` is written at most.
const KEY_USE_RESOLUTION: Duration = Duration::from_secs(60);

fn cache<K, V>(ttl: Duration) -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(100_000)
        .time_to_live(ttl)
        .build()
}

impl Directory {
    pub fn new(store: Store, ttl: Duration) -> Self {
        Directory {
            store,
            assistants: cache(ttl),
            slugs: cache(ttl),
            domains: cache(ttl),
            grants: cache(ttl),
            workspace_grants: cache(ttl),
            users: cache(ttl),
            sessions: cache(ttl),
            api_keys: cache(ttl),
            key_uses: cache(KEY_USE_RESOLUTION),
        }
    }

    /// The live API key with this hash.
    pub async fn api_key(&self, hash: &str) -> Result<Option<Arc<KeyGrant>>, StoreError> {
        if let Some(hit) = self.api_keys.get(hash) {
            return Ok(Some(hit));
        }
        let found = self
            .store
            .api_keys()
            .grant_by_hash(hash)
            .await?
            .map(Arc::new);
        if let Some(k) = &found {
            self.api_keys.insert(hash.to_string(), k.clone());
        }
        Ok(found)
    }

    /// Records a key's use in the background, at most once a minute per key, so the
    /// request never waits on the write.
    pub fn note_key_use(&self, id: ApiKeyId) {
        if self.key_uses.contains_key(&id) {
            return;
        }
        self.key_uses.insert(id, ());
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.api_keys().touch(id, bastion_store::now_ms()).await {
                tracing::warn!(error = %e, key = %id, "could not record an API key's last use");
            }
        });
    }

    /// After a key was revoked: it stops working on this node at once.
    pub fn forget_api_keys(&self) {
        self.api_keys.invalidate_all();
    }

    pub async fn assistant(&self, id: AssistantId) -> Result<Option<Arc<Assistant>>, StoreError> {
        if let Some(hit) = self.assistants.get(&id) {
            return Ok(hit);
        }
        let found = self.store.assistants().by_id(id).await?.map(Arc::new);
        self.assistants.insert(id, found.clone());
        Ok(found)
    }

    pub async fn assistant_by_slug(
        &self,
        slug: &str,
    ) -> Result<Option<Arc<Assistant>>, StoreError> {
        let id = match self.slugs.get(slug) {
            Some(hit) => hit,
            None => {
                let id = self.store.assistants().by_slug(slug).await?.map(|a| a.id);
                self.slugs.insert(slug.to_string(), id);
                id
            }
        };
        match id {
            Some(id) => self.assistant(id).await,
            None => Ok(None),
        }
    }

    pub async fn assistant_by_domain(
        &self,
        domain: &str,
    ) -> Result<Option<Arc<Assistant>>, StoreError> {
        let id = match self.domains.get(domain) {
            Some(hit) => hit,
            None => {
                let id = self
                    .store
                    .assistants()
                    .by_domain(domain)
                    .await?
                    .map(|a| a.id);
                self.domains.insert(domain.to_string(), id);
                id
            }
        };
        match id {
            Some(id) => self.assistant(id).await,
            None => Ok(None),
        }
    }

    pub async fn grant(
        &self,
        user: UserId,
        assistant: AssistantId,
    ) -> Result<Option<Grant>, StoreError> {
        if let Some(hit) = self.grants.get(&(user, assistant)) {
            return Ok(hit);
        }
        let found = self.store.memberships().grant(user, assistant).await?;
        self.grants.insert((user, assistant), found.clone());
        Ok(found)
    }

    pub async fn workspace_grant(
        &self,
        user: UserId,
        workspace: WorkspaceId,
    ) -> Result<Option<WorkspaceGrant>, StoreError> {
        if let Some(hit) = self.workspace_grants.get(&(user, workspace)) {
            return Ok(hit);
        }
        let found = self.store.workspaces().grant(user, workspace).await?;
        self.workspace_grants
            .insert((user, workspace), found.clone());
        Ok(found)
    }

    pub async fn user(&self, id: UserId) -> Result<Option<Arc<User>>, StoreError> {
        if let Some(hit) = self.users.get(&id) {
            return Ok(hit);
        }
        let found = self.store.users().get(id).await?.map(Arc::new);
        self.users.insert(id, found.clone());
        Ok(found)
    }

    /// A session, for the liveness check of the access tokens issued in it.
    pub async fn session(&self, id: SessionId) -> Result<Option<Arc<Session>>, StoreError> {
        if let Some(hit) = self.sessions.get(&id) {
            return Ok(hit);
        }
        let found = self.store.sessions().get(id).await?.map(Arc::new);
        self.sessions.insert(id, found.clone());
        Ok(found)
    }

    pub fn forget_session(&self, id: SessionId) {
        self.sessions.invalidate(&id);
    }

    /// After many sessions of a user ended at once (sign out everywhere, password change).
    pub fn forget_sessions(&self) {
        self.sessions.invalidate_all();
    }

    /// After an assistant was created, renamed (slug) or deleted.
    pub fn forget_assistant(&self, id: AssistantId, slugs: &[&str]) {
        self.assistants.invalidate(&id);
        for s in slugs {
            self.slugs.invalidate(*s);
        }
    }

    pub fn forget_domain(&self, domain: &str) {
        self.domains.invalidate(domain);
    }

    pub fn forget_grant(&self, user: UserId, assistant: AssistantId) {
        self.grants.invalidate(&(user, assistant));
    }

    pub fn forget_user(&self, user: UserId) {
        self.users.invalidate(&user);
    }

    /// After deletions that cascade over many rows (an assistant or a workspace): rare, so
    /// dropping every cached entry is simpler than tracking which ones depended on it.
    pub fn forget_everything(&self) {
        self.assistants.invalidate_all();
        self.slugs.invalidate_all();
        self.domains.invalidate_all();
        self.grants.invalidate_all();
        self.workspace_grants.invalidate_all();
        self.users.invalidate_all();
        self.sessions.invalidate_all();
        self.api_keys.invalidate_all();
    }
}
