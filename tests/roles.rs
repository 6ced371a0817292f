//! Custom roles per assistant: a name and a subset of the capabilities. A member holding one
//! may do exactly what it lists; nobody creates, grants, widens or deletes a role holding
//! more than they do; a change applies from the member's next request; and every grant,
//! change and refused escalation is audited.

mod common;

use common::{Backend, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Roles {
    s: Server,
    owner: String,
}

impl Roles {
    async fn start(b: Backend) -> Roles {
        let s = Server::start(b).await;
        let owner = s.login(common::OWNER_EMAIL).await;
        Roles { s, owner }
    }

    fn path(&self, rest: &str) -> String {
        self.s.assistant_path(rest)
    }

    async fn create_role(&self, token: &str, name: &str, caps: &[&str]) -> (StatusCode, Value) {
        self.s
            .post(
                &self.path("/roles"),
                token,
                json!({"name": name, "capabilities": caps}),
            )
            .await
    }

    /// A new user with `role` on the assistant, signed in.
    async fn member(&self, email: &str, role: &str) -> (String, String) {
        self.s.join(&self.owner, email, role).await
    }

    /// `(action, outcome)` of the workspace chain's events, oldest first.
    async fn audit(&self) -> Vec<(String, String)> {
        let rows = self.s.audit_rows(&self.owner).await;
        rows.into_iter().map(|r| (r.action, r.outcome)).collect()
    }

    async fn count(&self, action: &str, outcome: &str) -> usize {
        self.audit()
            .await
            .iter()
            .filter(|(a, o)| a == action && o == outcome)
            .count()
    }
}

async fn a_custom_role_allows_exactly_its_capabilities(b: Backend) {
    let t = Roles::start(b).await;
    let (status, role) = t
        .create_role(
            &t.owner,
            "support",
            &["chat", "conversations.read", "members.manage"],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{role}");
    assert_eq!(
        role["capabilities"],
        json!(["chat", "conversations.read", "members.manage"])
    );
    let (_, sam) = t.member("sam@tenant-a.test", "support").await;

    assert_eq!(t.s.get(&t.path("/members"), &sam).await.0, StatusCode::OK);
    let (status, body) =
        t.s.patch(&t.path(""), &sam, json!({"name": "renamed"}))
            .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, me) = t.s.get("/api/v1/me", &sam).await;
    assert_eq!(status, StatusCode::OK);
    let mine = &me["assistants"][0];
    assert_eq!(mine["role"], "support");
    assert_eq!(
        mine["capabilities"],
        json!(["chat", "conversations.read", "members.manage"])
    );
    assert_eq!(t.count("role.create", "success").await, 1);
}

async fn bad_role_definitions_are_refused(b: Backend) {
    let t = Roles::start(b).await;
    for (name, caps, status) in [
        ("admin", json!(["chat"]), StatusCode::UNPROCESSABLE_ENTITY),
        ("Upper", json!(["chat"]), StatusCode::UNPROCESSABLE_ENTITY),
        ("-dash", json!(["chat"]), StatusCode::UNPROCESSABLE_ENTITY),
        ("empty", json!([]), StatusCode::UNPROCESSABLE_ENTITY),
        (
            "unknown-cap",
            json!(["root"]),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (got, body) =
            t.s.post(
                &t.path("/roles"),
                &t.owner,
                json!({"name": name, "capabilities": caps}),
            )
            .await;
        assert_eq!(got, status, "{name}: {body}");
    }
    // Fields a caller may not set are refused, not ignored.
    let (got, _) =
        t.s.post(
            &t.path("/roles"),
            &t.owner,
            json!({"name": "x", "capabilities": ["chat"], "assistant_id": t.s.tenant.assistant_id}),
        )
        .await;
    assert_eq!(got, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        t.create_role(&t.owner, "twice", &["chat"]).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        t.create_role(&t.owner, "twice", &["chat"]).await.0,
        StatusCode::CONFLICT
    );
    // An unknown role name is not a grant.
    let (got, _) =
        t.s.post(
            &t.path("/members"),
            &t.owner,
            json!({"email": "x@tenant-a.test", "role": "nonexistent"}),
        )
        .await;
    assert_eq!(got, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn nobody_grants_more_than_they_hold(b: Backend) {
    let t = Roles::start(b).await;
    t.create_role(
        &t.owner,
        "support",
        &["chat", "conversations.read", "members.manage"],
    )
    .await;
    let (sam_id, sam) = t.member("sam@tenant-a.test", "support").await;
    let (_, editor) = t.member("ed@tenant-a.test", "editor").await;
    let (member_id, member) = t.member("mo@tenant-a.test", "member").await;
    let refused_before = t.count("escalation.refused", "failure").await;

    // A role wider than the creator.
    let (status, _) = t
        .create_role(&sam, "wider", &["chat", "settings.manage"])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // An editor (no members.manage) cannot create roles at all.
    let (status, _) = t
        .create_role(&editor, "managers", &["members.manage"])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Granting a built-in role wider than one's own, to someone else or oneself.
    let (status, _) =
        t.s.patch(
            &t.path(&format!("/members/{member_id}")),
            &sam,
            json!({"role": "editor"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) =
        t.s.patch(
            &t.path(&format!("/members/{sam_id}")),
            &sam,
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A member changing its own role.
    let (status, _) =
        t.s.patch(
            &t.path(&format!("/members/{member_id}")),
            &member,
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Within what sam holds, granting works.
    let (status, body) =
        t.s.post(
            &t.path("/members"),
            &sam,
            json!({"email": "new@tenant-a.test", "role": "member"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // Nothing changed, and each refused escalation by a member.manage holder is on the chain.
    let (_, members) = t.s.get(&t.path("/members"), &t.owner).await;
    let role_of = |email: &str| {
        members
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["email"] == email)
            .map(|m| m["role"].as_str().unwrap().to_string())
    };
    assert_eq!(role_of("sam@tenant-a.test").as_deref(), Some("support"));
    assert_eq!(role_of("mo@tenant-a.test").as_deref(), Some("member"));
    assert_eq!(
        t.count("escalation.refused", "failure").await,
        refused_before + 3
    );
    // Those without members.manage were stopped at the gate: audited there, as attempts.
    assert_eq!(t.count("access.denied", "failure").await, 2);
    // Widening a role one does not fully hold is refused too.
    let (_, roles) = t.s.get(&t.path("/roles"), &t.owner).await;
    let support = roles[0]["id"].as_str().unwrap().to_string();
    let (status, _) = t
        .s
        .patch(
            &t.path(&format!("/roles/{support}")),
            &sam,
            json!({"capabilities": ["chat", "conversations.read", "members.manage", "keys.manage"]}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn a_role_change_applies_from_the_next_request(b: Backend) {
    let t = Roles::start(b).await;
    let (_, role) = t.create_role(&t.owner, "support", &["chat"]).await;
    let role_id = role["id"].as_str().unwrap().to_string();
    let (sam_id, sam) = t.member("sam@tenant-a.test", "support").await;
    let assistant = t.path("");
    let settings = || {
        t.s.patch(&assistant, &sam, json!({"description": "by sam"}))
    };
    assert_eq!(settings().await.0, StatusCode::FORBIDDEN);

    let (status, body) =
        t.s.patch(
            &t.path(&format!("/roles/{role_id}")),
            &t.owner,
            json!({"capabilities": ["chat", "settings.manage"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        settings().await.0,
        StatusCode::OK,
        "the same token, widened"
    );

    // In use: not deletable.
    let del = t.path(&format!("/roles/{role_id}"));
    assert_eq!(t.s.delete(&del, &t.owner).await, StatusCode::CONFLICT);
    let (status, _) =
        t.s.patch(
            &t.path(&format!("/members/{sam_id}")),
            &t.owner,
            json!({"role": "member"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        settings().await.0,
        StatusCode::FORBIDDEN,
        "the same token, narrowed"
    );
    assert_eq!(t.s.delete(&del, &t.owner).await, StatusCode::NO_CONTENT);
    assert_eq!(t.s.delete(&del, &t.owner).await, StatusCode::NOT_FOUND);
    let events = t.audit().await;
    for action in [
        "role.create",
        "member.add",
        "role.update",
        "member.role_change",
        "role.delete",
    ] {
        assert!(
            events.iter().any(|(a, o)| a == action && o == "success"),
            "{action} missing from {events:?}"
        );
    }
}

async fn a_role_of_another_assistant_is_not_found(b: Backend) {
    let t = Roles::start(b).await;
    let (_, role) = t.create_role(&t.owner, "support", &["chat"]).await;
    let role_id = role["id"].as_str().unwrap();
    // A second assistant in the same workspace, where the owner is also owner.
    let (status, other) =
        t.s.post(
            &format!("/api/v1/workspaces/{}/assistants", t.s.tenant.workspace_id),
            &t.owner,
            json!({"slug": "other-one", "name": "Other"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let other = other["id"].as_str().unwrap();
    let path = format!("/api/v1/assistants/{other}/roles/{role_id}");
    let (status, _) = t.s.patch(&path, &t.owner, json!({"name": "stolen"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(t.s.delete(&path, &t.owner).await, StatusCode::NOT_FOUND);
    // Its name does not resolve there either.
    t.s.add_user("x@tenant-a.test", false);
    let (status, _) =
        t.s.post(
            &format!("/api/v1/assistants/{other}/members"),
            &t.owner,
            json!({"email": "x@tenant-a.test", "role": "support"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

on_both_backends!(
    a_custom_role_allows_exactly_its_capabilities,
    bad_role_definitions_are_refused,
    nobody_grants_more_than_they_hold,
    a_role_change_applies_from_the_next_request,
    a_role_of_another_assistant_is_not_found,
);
