//! Tenant isolation, generated from `GET /openapi.json`: every operation that names a tenant
//! (`{assistant_id}` or `{workspace_id}`) is probed with another tenant's ids, unknown ids
//! and malformed ids (all 404, so no tenant's existence leaks), and every operation gated on
//! an assistant capability is probed by each built-in role that lacks it (403). New routes
//! are covered as soon as they appear in the document.

mod common;

use common::openapi::{fill_path, mismatch, operations, random_id, send, Fill, Op};
use common::{Backend, Server, OWNER_EMAIL};
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
const MALFORMED: &str = "not-a-uuid";
const A_DOMAIN: &str = "a.tenant-a.test";

/// Everything an assistant's owner can read about it and its workspace, by path.
async fn snapshot(s: &Server, token: &str, workspace: &str, assistant: &str) -> Value {
    let mut out = Map::new();
    for path in [
        format!("/api/v1/workspaces/{workspace}"),
        format!("/api/v1/workspaces/{workspace}/assistants"),
        format!("/api/v1/assistants/{assistant}"),
        format!("/api/v1/assistants/{assistant}/members"),
        format!("/api/v1/assistants/{assistant}/domains"),
        format!("/api/v1/assistants/{assistant}/invitations"),
        format!("/api/v1/assistants/{assistant}/roles"),
        format!("/api/v1/assistants/{assistant}/api-keys"),
    ] {
        let (status, body) = s.get(&path, token).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        out.insert(path, body);
    }
    Value::Object(out)
}

/// Every actor in a workspace's audit log, all pages.
async fn audit_actors(s: &Server, token: &str, workspace: &str) -> Vec<String> {
    let mut actors = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let mut path = format!("/api/v1/workspaces/{workspace}/audit?limit=200");
        if let Some(b) = before {
            path.push_str(&format!("&before={b}"));
        }
        let (status, page) = s.get(&path, token).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {page}");
        for item in page["items"].as_array().expect("audit items") {
            actors.push(item["actor"].as_str().unwrap_or("").to_string());
        }
        match page["next_before"].as_i64() {
            Some(b) => before = Some(b),
            None => return actors,
        }
    }
}

fn member_role(members: &Value, user_id: &str) -> Option<String> {
    members
        .as_array()?
        .iter()
        .find(|m| m["user_id"] == json!(user_id))
        .and_then(|m| m["role"].as_str())
        .map(str::to_string)
}

/// Whose ids fill an operation's path.
struct Probe<'a> {
    label: &'static str,
    assistant: String,
    workspace: String,
    item: Box<dyn Fn(&str) -> String + 'a>,
    /// Only operations that name an item under the tenant (the tenant is the caller's own).
    items_only: bool,
}

async fn cross_tenant_ids_answer_404_on_every_route(b: Backend) {
    let s = Server::start(b).await;
    let a = s.tenant.clone();
    let owner_a = s.login(OWNER_EMAIL).await;

    // Tenant A's data: a second member, a domain and a pending invitation.
    let viewer_email = "viewer@tenant-a.test";
    let viewer_id = s.add_user(viewer_email, false);
    s.add_member(&owner_a, &a.assistant_id, viewer_email, "viewer")
        .await;
    let (status, body) = s
        .post(
            &format!("/api/v1/assistants/{}/domains", a.assistant_id),
            &owner_a,
            json!({"domain": A_DOMAIN}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = s
        .post(
            &format!("/api/v1/assistants/{}/members", a.assistant_id),
            &owner_a,
            json!({"email": "nobody@x.test", "role": "member"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let invitation_id = body["invitation"]["id"]
        .as_str()
        .expect("invitation id")
        .to_string();
    let before = snapshot(&s, &owner_a, &a.workspace_id, &a.assistant_id).await;

    // Tenant B: an operator who owns a workspace and an assistant of their own.
    let b_email = "owner-b@tenant-b.test";
    let b_id = s.add_user(b_email, true);
    let owner_b = s.login(b_email).await;
    let (status, ws) = s
        .post("/api/v1/workspaces", &owner_b, json!({"name": "B"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ws}");
    let b_workspace = ws["id"].as_str().expect("workspace id").to_string();
    let (status, asst) = s
        .post(
            &format!("/api/v1/workspaces/{b_workspace}/assistants"),
            &owner_b,
            json!({"slug": "tenant-b", "name": "B"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{asst}");
    let b_assistant = asst["id"].as_str().expect("assistant id").to_string();

    // B's bodies are real attacks: B invites itself, renames, claims a domain.
    let fill: Fill = [
        ("email", json!(b_email)),
        ("role", json!("member")),
        ("name", json!("Hijacked by B")),
        ("slug", json!("hijacked-by-b-{n}")),
        ("description", json!("hijacked")),
        ("domain", json!("evil-{n}.tenant-b.test")),
    ]
    .into_iter()
    .collect();
    let ops: Vec<Op> = operations(&s, &fill)
        .await
        .into_iter()
        .filter(Op::names_a_tenant)
        .collect();
    assert!(
        ops.iter().any(|o| o.path.contains("{assistant_id}"))
            && ops.iter().any(|o| o.path.contains("{workspace_id}")),
        "the document lists no tenant-scoped operations: {ops:?}"
    );

    // A's items for the item parameters; a parameter added later without a fixture here
    // still gets probed, with an id nobody holds.
    let a_item = |name: &str| match name {
        "user_id" => viewer_id.clone(),
        "domain" => A_DOMAIN.to_string(),
        "invitation_id" => invitation_id.clone(),
        _ => random_id(),
    };
    let probes = [
        Probe {
            label: "A's ids",
            assistant: a.assistant_id.clone(),
            workspace: a.workspace_id.clone(),
            item: Box::new(a_item),
            items_only: false,
        },
        Probe {
            label: "B's own tenant, A's items",
            assistant: b_assistant.clone(),
            workspace: b_workspace.clone(),
            item: Box::new(a_item),
            items_only: true,
        },
        Probe {
            label: "unknown ids",
            assistant: random_id(),
            workspace: random_id(),
            item: Box::new(|_| random_id()),
            items_only: false,
        },
        Probe {
            label: "B's own tenant, unknown items",
            assistant: b_assistant.clone(),
            workspace: b_workspace.clone(),
            item: Box::new(|_| random_id()),
            items_only: true,
        },
        Probe {
            label: "malformed ids",
            assistant: MALFORMED.into(),
            workspace: MALFORMED.into(),
            item: Box::new(|_| MALFORMED.to_string()),
            items_only: false,
        },
        Probe {
            label: "B's own tenant, malformed items",
            assistant: b_assistant.clone(),
            workspace: b_workspace.clone(),
            item: Box::new(|_| MALFORMED.to_string()),
            items_only: true,
        },
    ];

    let mut failures = Vec::new();
    let mut requests = 0;
    for probe in &probes {
        for op in ops
            .iter()
            .filter(|o| !probe.items_only || o.names_an_item())
        {
            let path = fill_path(&op.path, &|name| match name {
                "assistant_id" => probe.assistant.clone(),
                "workspace_id" => probe.workspace.clone(),
                other => (probe.item)(other),
            });
            let answer = send(&s, op, &path, Some(&owner_b)).await;
            requests += 1;
            let what = format!(
                "{} as B with {}: {} {path}",
                op.label(),
                probe.label,
                op.method
            );
            failures.extend(mismatch(&what, &answer, StatusCode::NOT_FOUND));
        }
    }
    eprintln!(
        "cross-tenant matrix on {b:?}: {requests} requests over {} operations",
        ops.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // A is exactly as it was, and nothing in A's audit log is B's doing.
    let after = snapshot(&s, &owner_a, &a.workspace_id, &a.assistant_id).await;
    assert_eq!(before, after, "tenant A changed under B's requests");
    let asst_path = format!("/api/v1/assistants/{}", a.assistant_id);
    let asst = &after[asst_path.as_str()];
    assert_eq!(asst["id"], json!(a.assistant_id), "{asst}");
    assert_eq!(asst["name"], before[asst_path.as_str()]["name"], "{asst}");
    assert!(
        asst["name"].as_str().is_some_and(|n| !n.is_empty()),
        "{asst}"
    );
    let members = &after[format!("/api/v1/assistants/{}/members", a.assistant_id).as_str()];
    assert_eq!(members.as_array().map(Vec::len), Some(2), "{members}");
    assert_eq!(
        member_role(members, &a.owner_id).as_deref(),
        Some("owner"),
        "{members}"
    );
    assert_eq!(
        member_role(members, &viewer_id).as_deref(),
        Some("viewer"),
        "{members}"
    );
    let domains = &after[format!("/api/v1/assistants/{}/domains", a.assistant_id).as_str()];
    assert_eq!(domains[0]["domain"], json!(A_DOMAIN), "{domains}");
    let invitations = &after[format!("/api/v1/assistants/{}/invitations", a.assistant_id).as_str()];
    assert!(
        invitations
            .as_array()
            .is_some_and(|i| i.iter().any(|i| i["id"] == json!(invitation_id))),
        "{invitations}"
    );
    let b_actor = format!("user:{b_id}");
    let actors = audit_actors(&s, &owner_a, &a.workspace_id).await;
    assert!(
        !actors.contains(&b_actor),
        "B appears in A's audit log: {actors:?}"
    );
}

/// The built-in roles below owner.
const NON_OWNER_ROLES: [&str; 5] = ["admin", "editor", "operator", "viewer", "member"];

fn role_holds(role: &str, capability: &str) -> bool {
    role == "owner" || common::roles::holds(common::roles::capabilities(role), capability)
}

/// Whether a member with `role` passes an `assistant:*` access rule.
fn role_passes(role: &str, access: &str) -> bool {
    match access.strip_prefix("assistant:") {
        Some("owner") => role == "owner",
        Some("member") | Some("person") => true,
        Some(capability) => role_holds(role, capability),
        None => panic!("not an assistant rule: {access}"),
    }
}

async fn a_member_without_the_capability_gets_403(b: Backend) {
    let s = Server::start(b).await;
    let a = s.tenant.clone();
    let owner = s.login(OWNER_EMAIL).await;

    let mut members = Vec::new();
    for role in NON_OWNER_ROLES {
        let email = format!("{role}@tenant-a.test");
        let id = s.add_user(&email, false);
        s.add_member(&owner, &a.assistant_id, &email, role).await;
        members.push((role, id, s.login(&email).await));
    }
    let stranger_email = "stranger@elsewhere.test";
    s.add_user(stranger_email, false);
    let stranger = s.login(stranger_email).await;

    let (status, body) = s
        .post(
            &format!("/api/v1/assistants/{}/domains", a.assistant_id),
            &owner,
            json!({"domain": A_DOMAIN}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = s
        .post(
            &format!("/api/v1/assistants/{}/members", a.assistant_id),
            &owner,
            json!({"email": "nobody@x.test", "role": "member"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let invitation_id = body["invitation"]["id"]
        .as_str()
        .expect("invitation id")
        .to_string();
    let (status, body) = s
        .post(
            &format!("/api/v1/assistants/{}/api-keys", a.assistant_id),
            &owner,
            json!({"name": "probe", "capabilities": ["traces.read"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key_id = body["api_key"]["id"].as_str().expect("key id").to_string();
    let (status, body) = s
        .post(
            &format!("/api/v1/assistants/{}/tools", a.assistant_id),
            &owner,
            json!({"name": "probe", "kind": "builtin", "builtin": "read_file", "risk": "read"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let tool_id = body["id"].as_str().expect("tool id").to_string();
    let (status, body) = s
        .post(
            &format!("/api/v1/assistants/{}/devices", a.assistant_id),
            &owner,
            json!({"mac": "02:00:5e:00:00:01"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let device_id = body["id"].as_str().expect("device id").to_string();
    let target_member = members
        .iter()
        .find(|(role, _, _)| *role == "member")
        .map(|(_, id, _)| id.clone())
        .expect("the member-role user");
    let before = snapshot(&s, &owner, &a.workspace_id, &a.assistant_id).await;

    // Bodies the handlers would accept from anyone holding the capability: a change the
    // snapshot would show, and the least role, which every such holder may grant.
    let fill: Fill = [
        ("email", json!("invitee@tenant-a.test")),
        ("role", json!("member")),
        ("name", json!("Renamed")),
        ("slug", json!("renamed-by-role-{n}")),
        ("description", json!("changed")),
        ("domain", json!("evil-{n}.test")),
    ]
    .into_iter()
    .collect();
    let ops: Vec<Op> = operations(&s, &fill)
        .await
        .into_iter()
        .filter(|o| {
            o.access.starts_with("assistant:")
                && o.path.contains("{assistant_id}")
                && !o.path.contains("{workspace_id}")
        })
        .collect();
    assert!(
        ops.iter().any(|o| o.access != "assistant:member"),
        "the document lists no capability-gated assistant operations: {ops:?}"
    );
    let path_of = |op: &Op| {
        fill_path(&op.path, &|name| match name {
            "assistant_id" => a.assistant_id.clone(),
            "user_id" => target_member.clone(),
            "domain" => A_DOMAIN.to_string(),
            "invitation_id" => invitation_id.clone(),
            "key_id" => key_id.clone(),
            "tool_id" => tool_id.clone(),
            "device_id" => device_id.clone(),
            _ => random_id(),
        })
    };

    let mut failures = Vec::new();
    let (mut forbidden, mut allowed_reads, mut skipped) = (0, 0, 0);
    for op in &ops {
        let path = path_of(op);
        for (role, _, token) in &members {
            let what = format!("{} as {role}: {} {path}", op.label(), op.method);
            if !role_passes(role, &op.access) {
                let answer = send(&s, op, &path, Some(token)).await;
                forbidden += 1;
                failures.extend(mismatch(&what, &answer, StatusCode::FORBIDDEN));
            } else if op.method == Method::GET && op.path.contains("{conversation_id}") {
                // A conversation is its author's: who may read which one is proved per
                // principal in route_matrix.rs and conversations.rs.
                skipped += 1;
            } else if op.method == Method::GET
                && (op.path.contains("{server_id}") || op.path.contains("{approval_id}"))
            {
                // These need a live MCP server or a waiting conversation: allowed reads are
                // proved in route_matrix.rs (rows written directly), mcp.rs and tools.rs.
                skipped += 1;
            } else if op.method == Method::GET {
                let answer = send(&s, op, &path, Some(token)).await;
                allowed_reads += 1;
                if answer.status != StatusCode::OK {
                    failures.push(format!(
                        "{what}: expected 200, got {}: {}",
                        answer.status, answer.body
                    ));
                }
            } else {
                skipped += 1; // allowed and mutating: would change the tenant
            }
        }
    }
    // No membership at all: the assistant does not exist for them. No token: 401.
    let mut outsiders = 0;
    for op in &ops {
        let path = path_of(op);
        let answer = send(&s, op, &path, Some(&stranger)).await;
        let what = format!("{} as a non-member: {} {path}", op.label(), op.method);
        failures.extend(mismatch(&what, &answer, StatusCode::NOT_FOUND));
        let answer = send(&s, op, &path, None).await;
        let what = format!("{} without a token: {} {path}", op.label(), op.method);
        failures.extend(mismatch(&what, &answer, StatusCode::UNAUTHORIZED));
        outsiders += 2;
    }
    eprintln!(
        "role matrix on {b:?}: {} operations x {} roles; {forbidden} refused (403), \
         {allowed_reads} allowed reads (200), {skipped} allowed writes not sent; \
         {outsiders} non-member/anonymous requests",
        ops.len(),
        members.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let after = snapshot(&s, &owner, &a.workspace_id, &a.assistant_id).await;
    assert_eq!(before, after, "a refused request changed the tenant");
}

on_both_backends!(
    cross_tenant_ids_answer_404_on_every_route,
    a_member_without_the_capability_gets_403,
);
