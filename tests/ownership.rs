//! Ownership transfer is its own confirmed action: an owner offers it to a member, only that
//! member can accept it, and acceptance swaps the two (recipient owner, offering owner
//! admin). No role change or invitation grants ownership, not even an owner's; an offer that
//! expired or whose maker lost ownership is void; the last owner cannot leave.

mod common;

use common::{Backend, Server, OWNER_EMAIL, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

struct Transfer {
    s: Server,
    owner: String,
}

impl Transfer {
    async fn start(b: Backend) -> Transfer {
        let s = Server::start(b).await;
        let owner = s.login(OWNER_EMAIL).await;
        Transfer { s, owner }
    }

    fn path(&self, rest: &str) -> String {
        self.s.assistant_path(rest)
    }

    /// A new user with `role` on the assistant, signed in: (id, token).
    async fn member(&self, email: &str, role: &str) -> (String, String) {
        self.s.join(&self.owner, email, role).await
    }

    async fn offer(&self, token: &str, to: &str) -> (StatusCode, Value) {
        self.s
            .post(
                &self.path("/ownership-transfer"),
                token,
                json!({"user_id": to}),
            )
            .await
    }

    async fn accept(&self, token: &str) -> (StatusCode, Value) {
        self.s
            .call(
                Method::POST,
                &self.path("/ownership-transfer/accept"),
                Some(token),
                None,
            )
            .await
    }

    async fn pending(&self, token: &str) -> (StatusCode, Value) {
        self.s.get(&self.path("/ownership-transfer"), token).await
    }

    /// Each member's role, by user id, as `token` (who must hold members.manage).
    async fn roles(&self, token: &str) -> Vec<(String, String)> {
        let (status, body) = self.s.get(&self.path("/members"), token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mut out: Vec<(String, String)> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["user_id"].as_str().unwrap().to_string(),
                    m["role"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn role_of<'a>(roles: &'a [(String, String)], user: &str) -> Option<&'a str> {
        roles
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, r)| r.as_str())
    }

    /// The workspace chain's events as `(action, outcome, detail)`, oldest first (read by
    /// the workspace owner, who stays one whatever happens to the assistant).
    async fn audit(&self) -> Vec<(String, String, Value)> {
        let rows = self.s.audit_rows(&self.owner).await;
        rows.into_iter()
            .map(|r| (r.action, r.outcome, r.detail))
            .collect()
    }

    async fn count(&self, action: &str, outcome: &str) -> usize {
        self.audit()
            .await
            .iter()
            .filter(|(a, o, _)| a == action && o == outcome)
            .count()
    }

    /// Runs one statement on the server's database, behind the API's back.
    async fn sql(&self, statement: &str, binds: &[&str]) {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.s.database_url())
            .await
            .expect("connect to the test store");
        let mut q = sqlx::query(statement);
        for b in binds {
            q = q.bind(b.to_string());
        }
        let done = q.execute(&mut conn).await.expect("statement");
        assert_eq!(done.rows_affected(), 1, "{statement}");
    }
}

async fn an_accepted_offer_swaps_owner_and_admin(b: Backend) {
    let t = Transfer::start(b).await;
    let owner_id = t.s.tenant.owner_id.clone();
    let (bob_id, bob) = t.member("bob@tenant-a.test", "editor").await;

    let (status, offer) = t.offer(&t.owner, &bob_id).await;
    assert_eq!(status, StatusCode::CREATED, "{offer}");
    assert_eq!(offer["to_user"], json!(bob_id));
    assert_eq!(offer["from_user"], json!(owner_id));
    assert!(offer["expires_at"].as_str().is_some_and(|e| !e.is_empty()));
    let (status, pending) = t.pending(&t.owner).await;
    assert_eq!(status, StatusCode::OK, "{pending}");
    assert_eq!(pending, offer);
    // An offer changes nothing by itself.
    let roles = t.roles(&t.owner).await;
    assert_eq!(Transfer::role_of(&roles, &owner_id), Some("owner"));
    assert_eq!(Transfer::role_of(&roles, &bob_id), Some("editor"));

    let (status, member) = t.accept(&bob).await;
    assert_eq!(status, StatusCode::OK, "{member}");
    assert_eq!(member["user_id"], json!(bob_id));
    assert_eq!(member["role"], json!("owner"));
    // Swapped, from the next request of the same tokens.
    let roles = t.roles(&bob).await;
    assert_eq!(Transfer::role_of(&roles, &bob_id), Some("owner"));
    assert_eq!(Transfer::role_of(&roles, &owner_id), Some("admin"));
    assert_eq!(t.pending(&bob).await.0, StatusCode::NOT_FOUND, "spent");
    assert_eq!(t.pending(&t.owner).await.0, StatusCode::FORBIDDEN);
    assert_eq!(t.offer(&t.owner, &bob_id).await.0, StatusCode::FORBIDDEN);
    assert_eq!(t.accept(&bob).await.0, StatusCode::NOT_FOUND, "single use");

    let events = t.audit().await;
    let offered = events
        .iter()
        .find(|(a, o, _)| a == "ownership.offer" && o == "success")
        .unwrap_or_else(|| panic!("no ownership.offer in {events:?}"));
    assert_eq!(offered.2["to"], json!(bob_id));
    let transferred = events
        .iter()
        .find(|(a, o, _)| a == "ownership.transfer" && o == "success")
        .unwrap_or_else(|| panic!("no ownership.transfer in {events:?}"));
    assert_eq!(
        (&transferred.2["from"], &transferred.2["to"]),
        (&json!(owner_id), &json!(bob_id))
    );
}

async fn no_role_change_or_invitation_grants_ownership(b: Backend) {
    let t = Transfer::start(b).await;
    let (admin_id, admin) = t.member("admin@tenant-a.test", "admin").await;
    let (mo_id, _) = t.member("mo@tenant-a.test", "member").await;
    let before = t.roles(&t.owner).await;

    // An admin may not offer ownership at all.
    let (status, body) = t.offer(&admin, &mo_id).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(t.pending(&admin).await.0, StatusCode::FORBIDDEN);
    let (status, body) =
        t.s.call(
            Method::DELETE,
            &t.path("/ownership-transfer"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Nobody, an owner included, makes an owner by a role change or an invitation.
    for (who, token) in [("admin", &admin), ("owner", &t.owner)] {
        for target in [&mo_id, &admin_id] {
            let (status, body) =
                t.s.patch(
                    &t.path(&format!("/members/{target}")),
                    token,
                    json!({"role": "owner"}),
                )
                .await;
            // An admin's attempt is an escalation (refused and audited); an owner's is
            // pointed to the transfer.
            if who == "admin" {
                assert_eq!(status, StatusCode::FORBIDDEN, "{who} → {target}: {body}");
                continue;
            }
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{who} → {target}: {body}"
            );
            assert!(
                body["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("/ownership-transfer")),
                "{body}"
            );
        }
        t.s.add_user(&format!("new-{who}@tenant-a.test"), false);
        for email in [
            format!("new-{who}@tenant-a.test"),
            format!("nobody-{who}@tenant-a.test"),
        ] {
            let (status, body) =
                t.s.post(
                    &t.path("/members"),
                    token,
                    json!({"email": email, "role": "owner"}),
                )
                .await;
            let expected = if who == "admin" {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            assert_eq!(status, expected, "{who} invites {email}: {body}");
        }
    }
    assert_eq!(t.count("escalation.refused", "failure").await, 4);
    assert_eq!(t.roles(&t.owner).await, before);
    let (_, invitations) = t.s.get(&t.path("/invitations"), &t.owner).await;
    assert_eq!(invitations, json!([]));
    assert_eq!(t.count("ownership.offer", "success").await, 0);
}

async fn only_the_recipient_can_accept(b: Backend) {
    let t = Transfer::start(b).await;
    let owner_id = t.s.tenant.owner_id.clone();
    let (bob_id, bob) = t.member("bob@tenant-a.test", "editor").await;
    let (carol_id, carol) = t.member("carol@tenant-a.test", "admin").await;
    let (status, body) = t.offer(&t.owner, &bob_id).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let before = t.roles(&t.owner).await;

    // Another member, the owner itself: no offer for them, and nothing says there is one.
    for token in [&carol, &t.owner] {
        let (status, body) = t.accept(token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    assert_eq!(t.roles(&t.owner).await, before);
    assert_eq!(Transfer::role_of(&before, &carol_id), Some("admin"));
    assert_eq!(t.count("ownership.transfer", "failure").await, 2);

    // A new offer replaces the old: the first recipient can no longer accept.
    let (status, body) = t.offer(&t.owner, &carol_id).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(t.accept(&bob).await.0, StatusCode::NOT_FOUND);
    let (status, body) = t.accept(&carol).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let roles = t.roles(&carol).await;
    assert_eq!(Transfer::role_of(&roles, &carol_id), Some("owner"));
    assert_eq!(Transfer::role_of(&roles, &owner_id), Some("admin"));
    assert_eq!(Transfer::role_of(&roles, &bob_id), Some("editor"));
}

async fn an_expired_offer_is_refused(b: Backend) {
    let t = Transfer::start(b).await;
    let (bob_id, bob) = t.member("bob@tenant-a.test", "editor").await;
    let (status, body) = t.offer(&t.owner, &bob_id).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A day passes.
    t.sql(
        "UPDATE ownership_offers SET expires_at = 1 WHERE assistant_id = $1",
        &[&t.s.tenant.assistant_id],
    )
    .await;
    assert_eq!(t.pending(&t.owner).await.0, StatusCode::NOT_FOUND);
    let before = t.roles(&t.owner).await;
    let (status, body) = t.accept(&bob).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(t.roles(&t.owner).await, before);
    let events = t.audit().await;
    assert!(
        events.iter().any(|(a, o, d)| a == "ownership.transfer"
            && o == "failure"
            && d["reason"] == json!("expired")),
        "{events:?}"
    );
}

async fn an_offer_whose_maker_lost_ownership_is_refused(b: Backend) {
    let t = Transfer::start(b).await;
    let (bob_id, bob) = t.member("bob@tenant-a.test", "editor").await;
    let carol_id = t.s.add_user("carol@tenant-a.test", false);
    t.s.add_member(
        &t.owner,
        &t.s.tenant.assistant_id,
        "carol@tenant-a.test",
        "member",
    )
    .await;
    // A second owner, as an assistant may have from before ownership was transferred only.
    t.sql(
        "UPDATE memberships SET role = 'owner' WHERE assistant_id = $1 AND user_id = $2",
        &[&t.s.tenant.assistant_id, &carol_id],
    )
    .await;
    let carol = t.s.login("carol@tenant-a.test").await;
    let (status, body) = t.offer(&carol, &bob_id).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The other owner demotes carol before bob accepts.
    let (status, body) =
        t.s.patch(
            &t.path(&format!("/members/{carol_id}")),
            &t.owner,
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = t.accept(&bob).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let roles = t.roles(&t.owner).await;
    assert_eq!(Transfer::role_of(&roles, &bob_id), Some("editor"));
    assert_eq!(Transfer::role_of(&roles, &carol_id), Some("viewer"));
    assert_eq!(
        Transfer::role_of(&roles, &t.s.tenant.owner_id),
        Some("owner")
    );
}

async fn a_cancelled_offer_cannot_be_accepted(b: Backend) {
    let t = Transfer::start(b).await;
    let (bob_id, bob) = t.member("bob@tenant-a.test", "editor").await;
    let (status, body) = t.offer(&t.owner, &bob_id).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let cancel = t.path("/ownership-transfer");
    assert_eq!(t.s.delete(&cancel, &t.owner).await, StatusCode::NO_CONTENT);
    assert_eq!(t.pending(&t.owner).await.0, StatusCode::NOT_FOUND);
    assert_eq!(t.s.delete(&cancel, &t.owner).await, StatusCode::NOT_FOUND);
    assert_eq!(t.accept(&bob).await.0, StatusCode::NOT_FOUND);
    let roles = t.roles(&t.owner).await;
    assert_eq!(Transfer::role_of(&roles, &bob_id), Some("editor"));
    assert_eq!(t.count("ownership.cancel", "success").await, 1);
}

async fn ownership_is_offered_only_to_a_member_who_is_not_an_owner(b: Backend) {
    let t = Transfer::start(b).await;
    let stranger = t.s.add_user("stranger@elsewhere.test", false);
    let stranger_token = t.s.login("stranger@elsewhere.test").await;
    for to in [stranger.clone(), uuid::Uuid::new_v4().to_string()] {
        let (status, body) = t.offer(&t.owner, &to).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{to}: {body}");
    }
    // Not a member: the assistant is not there for them, offer or not.
    assert_eq!(t.accept(&stranger_token).await.0, StatusCode::NOT_FOUND);
    let (status, _) = t.offer(&t.owner, &t.s.tenant.owner_id).await;
    assert_eq!(status, StatusCode::CONFLICT, "already an owner");
    let (status, _) = t.offer(&t.owner, "not-a-uuid").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) =
        t.s.post(
            &t.path("/ownership-transfer"),
            &t.owner,
            json!({"user_id": stranger, "role": "owner"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "unknown fields");
    assert_eq!(t.pending(&t.owner).await.0, StatusCode::NOT_FOUND);
}

async fn the_last_owner_cannot_leave(b: Backend) {
    let t = Transfer::start(b).await;
    let owner_id = t.s.tenant.owner_id.clone();
    let me = t.path(&format!("/members/{owner_id}"));
    assert_eq!(t.s.delete(&me, &t.owner).await, StatusCode::CONFLICT);
    let (status, _) = t.s.patch(&me, &t.owner, json!({"role": "admin"})).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Ownership passes to bob, who is in no workspace: now he is the last owner.
    let (bob_id, bob) = t.member("bob@tenant-a.test", "member").await;
    assert_eq!(t.offer(&t.owner, &bob_id).await.0, StatusCode::CREATED);
    assert_eq!(t.accept(&bob).await.0, StatusCode::OK);
    let bob_path = t.path(&format!("/members/{bob_id}"));
    assert_eq!(t.s.delete(&bob_path, &bob).await, StatusCode::CONFLICT);
    let (status, _) = t.s.patch(&bob_path, &bob, json!({"role": "admin"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) =
        t.s.call(
            Method::DELETE,
            "/api/v1/me",
            Some(&bob),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // The former owner, an admin now, may leave; bob stays owner.
    assert_eq!(t.s.delete(&me, &t.owner).await, StatusCode::NO_CONTENT);
    let roles = t.roles(&bob).await;
    assert_eq!(roles, vec![(bob_id, "owner".to_string())]);
}

on_both_backends!(
    an_accepted_offer_swaps_owner_and_admin,
    no_role_change_or_invitation_grants_ownership,
    only_the_recipient_can_accept,
    an_expired_offer_is_refused,
    an_offer_whose_maker_lost_ownership_is_refused,
    a_cancelled_offer_cannot_be_accepted,
    ownership_is_offered_only_to_a_member_who_is_not_an_owner,
    the_last_owner_cannot_leave,
);
