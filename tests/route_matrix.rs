//! The route × principal matrix, generated from `GET /openapi.json` (each operation's
//! `x-bastion-access`): every operation is sent by every kind of principal, and the answer
//! must be exactly what the access rule implies.
//!
//! Principals: an anonymous caller; the owner (also platform operator and workspace owner);
//! a user of each other built-in role; a user holding a custom role; an assistant API key
//! and a scoped token, each with a capability subset; and the owner of another workspace.
//!
//! Outcomes: a public operation answers every principal as it answers an anonymous one; any
//! other is 401 without credentials, 404 for a tenant the principal does not belong to, 403
//! without the capability, and otherwise passes the gate. Passing is proved, not assumed:
//! a read answers 200; an operation with a body is sent malformed JSON and answers 400 (the
//! body is read only after the gate); an operation without a body is sent on a fresh item
//! made for it and answers 2xx. An operation the test does not know how to send fails it,
//! so a new route is covered (or noticed) the day it is documented.

mod common;

use common::openapi::{fill_path, operations, path_params, Fill, Op, PROBLEM_JSON};
use common::roles::{holds, ROLES};
use common::{Backend, Server, OWNER_EMAIL};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

const CUSTOM_ROLE: &[&str] = &["keys.manage", "traces.read", "audit.read"];
const KEY_CAPS: &[&str] = &["settings.manage", "keys.manage", "traces.read"];
const SCOPED_CAPS: &[&str] = &["settings.manage", "traces.read"];

#[derive(Clone, Debug)]
enum Who {
    Anonymous,
    /// A user who is a member of the assistant under test.
    Member {
        caps: &'static [&'static str],
        owner: bool,
    },
    /// The owner of another workspace (a platform operator, who may create workspaces).
    Outsider,
    ApiKey,
    Scoped,
}

struct Principal {
    label: String,
    who: Who,
    token: Option<String>,
    /// The user behind the credential, for fresh sessions.
    email: Option<String>,
    user_id: Option<String>,
    /// Their role on the assistant, to restore after an ownership round trip.
    role: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    SameAsAnonymous,
    Pass,
    Refused(StatusCode),
}

/// What `access` implies for `who`.
fn expect(who: &Who, access: &str) -> Expect {
    use Expect::*;
    if access == "public" {
        return SameAsAnonymous;
    }
    // The program endpoints (`key:<capability>`): an API key holding it, nobody else.
    if let Some(cap) = access.strip_prefix("key:") {
        return match who {
            Who::Anonymous => Refused(StatusCode::UNAUTHORIZED),
            Who::ApiKey if holds(KEY_CAPS, cap) => Pass,
            _ => Refused(StatusCode::FORBIDDEN),
        };
    }
    let assistant_rule = access.strip_prefix("assistant:");
    let workspace_rule = access.starts_with("workspace:");
    let bound_caps = match who {
        Who::Anonymous => return Refused(StatusCode::UNAUTHORIZED),
        Who::ApiKey => Some(KEY_CAPS),
        Who::Scoped => Some(SCOPED_CAPS),
        _ => None,
    };
    if let Some(caps) = bound_caps {
        return match assistant_rule {
            Some("member") => Pass,
            Some("owner") | Some("person") | None => Refused(StatusCode::FORBIDDEN),
            Some(cap) if holds(caps, cap) => Pass,
            Some(_) => Refused(StatusCode::FORBIDDEN),
        };
    }
    let (caps, owner, operator): (&[&str], bool, bool) = match who {
        Who::Member { caps, owner } => (caps, *owner, *owner),
        Who::Outsider => {
            return match access {
                "authenticated" | "operator" => Pass,
                _ => Refused(StatusCode::NOT_FOUND),
            }
        }
        _ => unreachable!(),
    };
    match (access, assistant_rule) {
        ("authenticated", _) => Pass,
        ("operator", _) if operator => Pass,
        ("operator", _) => Refused(StatusCode::FORBIDDEN),
        // Only the owner is a member of the workspace; everyone else is a stranger to it.
        _ if workspace_rule => {
            if owner {
                Pass
            } else {
                Refused(StatusCode::NOT_FOUND)
            }
        }
        (_, Some("member")) | (_, Some("person")) => Pass,
        (_, Some("owner")) if owner => Pass,
        (_, Some("owner")) => Refused(StatusCode::FORBIDDEN),
        (_, Some(cap)) if holds(caps, cap) => Pass,
        (_, Some(_)) => Refused(StatusCode::FORBIDDEN),
        _ => panic!("unknown access rule {access}"),
    }
}

/// How an operation without a body is sent without harming the rest of the matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Plan {
    /// A read.
    Read,
    /// Has a body: sent malformed.
    Malformed,
    /// Acts on one item, made fresh for each request.
    FreshItem,
    /// Ends the session it is sent with: sent with a fresh sign-in of the same user.
    FreshSession,
    /// Destroys what the rest of the matrix needs: sent last, in this order.
    Last(u8),
    /// Starts something for the caller only (TOTP enrolment).
    Harmless,
    /// Needs a state made for it first, and undone after (see `World::before`).
    Prepared,
    /// A WebSocket route, sent as a plain GET: past the gate it answers 400 (no upgrade).
    Upgrade,
}

/// Items that belong to one person (their conversations and memories): made fresh for each
/// request, by the principal itself when it may make them.
const PERSONAL: &[&str] = &["conversation_id", "memory_id", "message_id"];

const TRANSFER: &str = "/api/v1/assistants/{assistant_id}/ownership-transfer";
const ACCEPT: &str = "/api/v1/assistants/{assistant_id}/ownership-transfer/accept";

fn plan(op: &Op) -> Plan {
    if op.body.is_some() {
        return Plan::Malformed;
    }
    if op.method == Method::GET && op.path.ends_with("/ws") {
        return Plan::Upgrade;
    }
    if op.method == Method::GET {
        return Plan::Read;
    }
    let item = path_params(&op.path)
        .iter()
        .any(|p| p != "assistant_id" && p != "workspace_id");
    match (op.method.as_str(), op.path.as_str()) {
        _ if item => Plan::FreshItem,
        ("POST", "/api/v1/auth/logout") => Plan::FreshSession,
        ("POST", "/api/v1/auth/mfa/totp") => Plan::Harmless,
        // Revoking an endpoint nobody issued changes nothing.
        ("DELETE", "/api/v1/assistants/{assistant_id}/mcp-endpoint") => Plan::Harmless,
        ("DELETE", TRANSFER) | ("POST", ACCEPT) => Plan::Prepared,
        ("DELETE", "/api/v1/assistants/{assistant_id}") => Plan::Last(0),
        ("DELETE", "/api/v1/workspaces/{workspace_id}") => Plan::Last(1),
        ("DELETE", "/api/v1/auth/sessions") => Plan::Last(2),
        _ => panic!(
            "{} {}: the route matrix does not know how to send this operation; add it to `plan`",
            op.method, op.path
        ),
    }
}

struct World {
    s: Server,
    owner: String,
    /// The admin's id and a sign-in of theirs, for ownership round trips.
    admin: (String, String),
    /// An item of each kind for reads, by path parameter.
    items: BTreeMap<&'static str, String>,
    fresh: AtomicUsize,
    /// A real MCP server the fixture MCP server rows point at, so a sync succeeds.
    mcp: common::mcp::Node,
}

impl World {
    fn assistant_path(&self, rest: &str) -> String {
        format!("/api/v1/assistants/{}{rest}", self.s.tenant.assistant_id)
    }

    async fn created(&self, path: &str, body: Value) -> Value {
        let (status, created) = self.s.post(path, &self.owner, body).await;
        assert!(status.is_success(), "POST {path}: {status} {created}");
        created
    }

    async fn offer(&self, from: &str, to: &str) {
        let path = self.assistant_path("/ownership-transfer");
        let (status, body) = self.s.post(&path, from, json!({"user_id": to})).await;
        assert_eq!(status, StatusCode::CREATED, "offer: {body}");
    }

    async fn accept(&self, token: &str) {
        let path = self.assistant_path("/ownership-transfer/accept");
        let (status, body) = self.s.post(&path, token, json!({})).await;
        assert_eq!(status, StatusCode::OK, "accept: {body}");
    }

    /// Makes the state `op` needs to pass for `p`: a pending offer for reading or
    /// withdrawing it; an offer to `p` to accept (for the owner: ownership sent away to the
    /// admin and offered back).
    async fn before(&self, op: &Op, p: &Principal) {
        let (admin_id, admin) = (&self.admin.0, &self.admin.1);
        match (op.method.as_str(), op.path.as_str()) {
            ("GET" | "DELETE", TRANSFER) => self.offer(&self.owner, admin_id).await,
            ("POST", ACCEPT) => match (&p.who, &p.user_id) {
                (Who::Member { owner: true, .. }, Some(owner_id)) => {
                    self.offer(&self.owner, admin_id).await;
                    self.accept(admin).await;
                    self.offer(admin, owner_id).await;
                }
                (Who::Member { .. }, Some(id)) => self.offer(&self.owner, id).await,
                _ => {}
            },
            _ => {}
        }
    }

    /// Undoes what a passed `op` changed: ownership back to the owner, `p`'s role back.
    async fn after(&self, op: &Op, p: &Principal, sent: &Sent) {
        let is_accept = op.method == Method::POST && op.path == ACCEPT;
        let new_owner = match (&p.who, &p.token, &p.user_id, &p.role) {
            (Who::Member { owner: false, .. }, Some(t), Some(id), Some(role)) => (t, id, role),
            _ => return,
        };
        if !is_accept || !sent.status.is_success() {
            return;
        }
        let (token, id, role) = new_owner;
        self.offer(token, &self.s.tenant.owner_id).await;
        self.accept(&self.owner).await;
        let path = self.assistant_path(&format!("/members/{id}"));
        let (status, body) = self
            .s
            .patch(&path, &self.owner, json!({"role": role}))
            .await;
        assert_eq!(status, StatusCode::OK, "restore {role}: {body}");
    }

    /// Runs one INSERT with text parameters on the server's database.
    async fn insert(&self, sql: &str, params: &[&str]) {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut db = sqlx::AnyConnection::connect(&self.s.database_url())
            .await
            .expect("database");
        let mut q = sqlx::query(sql);
        for p in params {
            q = q.bind(p.to_string());
        }
        q.execute(&mut db).await.expect("fixture row");
    }

    fn n(&self) -> usize {
        self.fresh.fetch_add(1, Ordering::Relaxed)
    }

    /// A new item for `param`, made by the owner (a session of `p`'s user for `session_id`;
    /// a conversation or memory of `p`'s own when it may chat).
    async fn fresh_item(&self, param: &str, p: Option<&Principal>) -> String {
        let n = self.n();
        let email = p.and_then(|p| p.email.as_deref());
        let maker = match p {
            Some(p) if expect(&p.who, "assistant:chat") == Expect::Pass => {
                p.token.clone().unwrap_or_else(|| self.owner.clone())
            }
            _ => self.owner.clone(),
        };
        match param {
            "conversation_id" => {
                let path = self.assistant_path("/conversations");
                let (status, c) = self.s.post(&path, &maker, json!({})).await;
                assert_eq!(status, StatusCode::CREATED, "{c}");
                c["id"].as_str().unwrap().to_string()
            }
            "memory_id" => {
                let path = self.assistant_path("/memories");
                let (status, m) = self
                    .s
                    .post(&path, &maker, json!({"content": format!("fact {n}")}))
                    .await;
                assert_eq!(status, StatusCode::CREATED, "{m}");
                m["id"].as_str().unwrap().to_string()
            }
            // Only sent with a malformed body, which is refused before the message is looked up.
            "message_id" => uuid::Uuid::now_v7().to_string(),
            "user_id" => {
                let email = format!("fresh-{n}@tenant-a.test");
                let id = self.s.add_user(&email, false);
                self.s
                    .add_member(&self.owner, &self.s.tenant.assistant_id, &email, "member")
                    .await;
                id
            }
            "role_id" => {
                let path = self.assistant_path("/roles");
                let role = self
                    .created(
                        &path,
                        json!({"name": format!("fresh-{n}"), "capabilities": ["chat"]}),
                    )
                    .await;
                role["id"].as_str().unwrap().to_string()
            }
            "domain" => {
                let domain = format!("fresh-{n}.tenant-a.test");
                let path = self.assistant_path("/domains");
                self.created(&path, json!({"domain": domain})).await;
                domain
            }
            "invitation_id" => {
                let path = self.assistant_path("/members");
                let body = json!({"email": format!("invitee-{n}@x.test"), "role": "member"});
                let inv = self.created(&path, body).await;
                inv["invitation"]["id"].as_str().unwrap().to_string()
            }
            "provider_key_id" => {
                let path = format!(
                    "/api/v1/workspaces/{}/provider-keys",
                    self.s.tenant.workspace_id
                );
                let body = json!({"provider": "openai", "label": format!("fresh-{n}"),
                                  "secret": format!("sk-matrix-fresh-{n}")});
                let key = self.created(&path, body).await;
                key["id"].as_str().unwrap().to_string()
            }
            "key_id" => {
                let path = self.assistant_path("/api-keys");
                let body = json!({"name": format!("fresh-{n}"), "capabilities": ["traces.read"]});
                let key = self.created(&path, body).await;
                key["api_key"]["id"].as_str().unwrap().to_string()
            }
            "session_id" => match email {
                Some(e) => self.s.sign_in(e).await["session_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                None => uuid::Uuid::new_v4().to_string(),
            },
            "tool_id" => {
                let path = self.assistant_path("/tools");
                let body = json!({"name": format!("fresh-{n}"), "kind": "builtin",
                                  "builtin": "read_file", "risk": "read"});
                let tool = self.created(&path, body).await;
                tool["id"].as_str().unwrap().to_string()
            }
            // A headless device registered by MAC, after its first contact.
            "device_id" => {
                let b = uuid::Uuid::new_v4().into_bytes();
                let mac = format!("02:00:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3]);
                let path = self.assistant_path("/devices");
                let d = self.created(&path, json!({"mac": mac})).await;
                // Its first contact: it now waits for an admin (what `approve` needs).
                let res = self
                    .s
                    .http
                    .post(self.s.url("/ota/"))
                    .header("Device-Id", &mac)
                    .header("Client-Id", uuid::Uuid::new_v4().to_string())
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), StatusCode::OK);
                d["id"].as_str().unwrap().to_string()
            }
            // An MCP server needs a live server to be added through the API, and an approval
            // a conversation waiting on one; the matrix checks who may reach them, so their
            // rows are written directly (tests/mcp.rs and tests/tools.rs make them for real).
            "server_id" => {
                let id = uuid::Uuid::now_v7().to_string();
                self.insert(
                    "INSERT INTO mcp_servers (id, assistant_id, name, url, created_at) \
                     VALUES ($1, $2, $3, $4, 0)",
                    &[
                        &id,
                        &self.s.tenant.assistant_id,
                        &format!("fresh-{n}"),
                        &self.mcp.url(),
                    ],
                )
                .await;
                id
            }
            "approval_id" => {
                let tool = Box::pin(self.fresh_item("tool_id", None)).await;
                let id = uuid::Uuid::now_v7().to_string();
                self.insert(
                    "INSERT INTO tool_approvals (id, assistant_id, tool_id, tool_name, arguments, \
                     requested_by, status, expires_at, created_at) \
                     VALUES ($1, $2, $3, 'fresh', '{}', 'user:x', 'pending', 9999999999999, 0)",
                    &[&id, &self.s.tenant.assistant_id, &tool],
                )
                .await;
                id
            }
            other => panic!("the route matrix cannot make a fresh {other}; add it to `fresh_item`"),
        }
    }

    fn fill(&self, op: &Op, items: &BTreeMap<&str, String>) -> String {
        fill_path(&op.path, &|name| match name {
            "assistant_id" => self.s.tenant.assistant_id.clone(),
            "workspace_id" => self.s.tenant.workspace_id.clone(),
            other => items
                .get(other)
                .cloned()
                .unwrap_or_else(|| panic!("no {other} for {}", op.path)),
        })
    }
}

struct Sent {
    status: StatusCode,
    content_type: String,
    body: String,
}

async fn send(s: &Server, op: &Op, path: &str, token: Option<&str>) -> Sent {
    let mut req = s.http.request(op.method.clone(), s.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if op.body.is_some() {
        req = req
            .header("content-type", "application/json")
            .body("{\"malformed\": ");
    }
    let res = req.send().await.expect("request");
    Sent {
        status: res.status(),
        content_type: res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        body: res.text().await.unwrap_or_default(),
    }
}

impl Principal {
    fn new(label: &str, who: Who, token: Option<String>) -> Principal {
        Principal {
            label: label.into(),
            who,
            token,
            email: None,
            user_id: None,
            role: None,
        }
    }

    /// A member of the assistant under test with `role`.
    fn member(
        label: &str,
        who: Who,
        token: String,
        email: &str,
        id: &str,
        role: &str,
    ) -> Principal {
        Principal {
            email: Some(email.into()),
            user_id: Some(id.into()),
            role: Some(role.into()),
            ..Principal::new(label, who, Some(token))
        }
    }
}

async fn setup(b: Backend) -> (World, Vec<Principal>) {
    let s = Server::start(b).await;
    let owner = s.login(OWNER_EMAIL).await;
    let (admin_id, admin) = s.join(&owner, "admin@tenant-a.test", "admin").await;
    let mut world = World {
        s,
        owner: owner.clone(),
        admin: (admin_id.clone(), admin.clone()),
        items: BTreeMap::new(),
        fresh: AtomicUsize::new(0),
        mcp: common::mcp::everything(),
    };
    let a = world.s.tenant.assistant_id.clone();
    // The fixture MCP server listens on loopback, which its assistant must allow.
    let (status, body) = world
        .s
        .call(
            reqwest::Method::PUT,
            &world.assistant_path("/egress"),
            Some(&world.owner),
            Some(json!({"allowed_hosts": ["127.0.0.1"], "private_hosts": ["127.0.0.1"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let provider_key = world.fresh_item("provider_key_id", None).await;
    world.items.insert("provider_key_id", provider_key);
    // Public sign-in routes: no provider is configured, which every principal sees alike.
    world.items.insert("provider", "github".into());
    let owner_id = world.s.tenant.owner_id.clone();
    let everything = Who::Member {
        caps: &["*"],
        owner: true,
    };
    let mut principals = vec![
        Principal::new("anonymous", Who::Anonymous, None),
        Principal::member(
            "owner",
            everything,
            owner.clone(),
            OWNER_EMAIL,
            &owner_id,
            "owner",
        ),
    ];
    world
        .created(
            &world.assistant_path("/roles"),
            json!({"name": "keyholder", "capabilities": CUSTOM_ROLE}),
        )
        .await;
    let custom: (&str, &[&str]) = ("keyholder", CUSTOM_ROLE);
    for (role, caps) in ROLES.iter().copied().chain(std::iter::once(custom)) {
        let email = format!("{role}@tenant-a.test");
        let (id, token) = if role == "admin" {
            (admin_id.clone(), world.s.login(&email).await)
        } else {
            world.s.join(&owner, &email, role).await
        };
        let label = if role == "keyholder" {
            "custom role"
        } else {
            role
        };
        let who = Who::Member { caps, owner: false };
        principals.push(Principal::member(label, who, token, &email, &id, role));
    }

    let key = world
        .created(
            &world.assistant_path("/api-keys"),
            json!({"name": "matrix", "capabilities": KEY_CAPS}),
        )
        .await;
    world
        .items
        .insert("key_id", key["api_key"]["id"].as_str().unwrap().to_string());
    let key = key["key"].as_str().unwrap().to_string();
    principals.push(Principal::new("API key", Who::ApiKey, Some(key)));

    // The admin's own sign-in, narrowed: its session is not one the matrix ends.
    let (status, scoped) = world
        .s
        .post(
            "/api/v1/auth/tokens",
            &admin,
            json!({"assistant_id": a, "capabilities": SCOPED_CAPS}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{scoped}");
    let scoped = scoped["access_token"].as_str().unwrap().to_string();
    principals.push(Principal::new("scoped token", Who::Scoped, Some(scoped)));

    let outsider_email = "owner@tenant-b.test";
    world.s.add_user(outsider_email, true);
    let outsider = world.s.login(outsider_email).await;
    let (status, ws) = world
        .s
        .post("/api/v1/workspaces", &outsider, json!({"name": "B"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ws}");
    let (status, asst) = world
        .s
        .post(
            &format!(
                "/api/v1/workspaces/{}/assistants",
                ws["id"].as_str().unwrap()
            ),
            &outsider,
            json!({"slug": "tenant-b", "name": "B"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{asst}");
    principals.push(Principal {
        email: Some(outsider_email.into()),
        ..Principal::new("other workspace's owner", Who::Outsider, Some(outsider))
    });
    (world, principals)
}

/// What is wrong with `sent` given `expected`, if anything.
fn judge(
    expected: Expect,
    plan: Plan,
    sent: &Sent,
    anonymous: Option<StatusCode>,
) -> Option<String> {
    let ok = match expected {
        Expect::SameAsAnonymous => Some(sent.status) == anonymous,
        Expect::Refused(status) => sent.status == status && sent.content_type == PROBLEM_JSON,
        Expect::Pass => match plan {
            Plan::Read => sent.status == StatusCode::OK,
            Plan::Malformed | Plan::Upgrade => sent.status == StatusCode::BAD_REQUEST,
            _ => sent.status.is_success(),
        },
    };
    (!ok).then(|| {
        format!(
            "expected {expected:?} (anonymous got {anonymous:?}), got {} {:?}: {}",
            sent.status, sent.content_type, sent.body
        )
    })
}

/// The answers so far: what anonymous callers got, how many of each outcome, what failed.
#[derive(Default)]
struct Tally {
    anonymous: BTreeMap<String, StatusCode>,
    counts: BTreeMap<String, usize>,
    failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, p: &Principal, op: &Op, plan: Plan, path: &str, sent: &Sent) {
        let expected = expect(&p.who, &op.access);
        if matches!(p.who, Who::Anonymous) {
            self.anonymous.insert(op.label(), sent.status);
        }
        *self.counts.entry(format!("{expected:?}")).or_default() += 1;
        let anonymous = self.anonymous.get(&op.label()).copied();
        if let Some(why) = judge(expected, plan, sent, anonymous) {
            self.failures
                .push(format!("{} as {}: {path}: {why}", op.label(), p.label));
        }
    }
}

async fn every_route_answers_every_principal_as_its_rule_says(b: Backend) {
    let (world, principals) = setup(b).await;
    let ops = operations(&world.s, &Fill::new()).await;
    assert!(
        ops.len() > 40,
        "the document lists only {} operations",
        ops.len()
    );
    let plans: Vec<Plan> = ops.iter().map(plan).collect();

    let mut tally = Tally::default();
    let mut last: Vec<(u8, usize, usize)> = Vec::new();

    for (pi, p) in principals.iter().enumerate() {
        for (oi, op) in ops.iter().enumerate() {
            if let Plan::Last(rank) = plans[oi] {
                last.push((rank, pi, oi));
                continue;
            }
            let mut items = world.items.clone();
            for param in path_params(&op.path) {
                if param == "assistant_id" || param == "workspace_id" {
                    continue;
                }
                if plans[oi] == Plan::FreshItem
                    || PERSONAL.contains(&param.as_str())
                    || !items.contains_key(param.as_str())
                {
                    let fresh = world.fresh_item(&param, Some(p)).await;
                    items.insert(leak(param), fresh);
                }
            }
            let path = world.fill(op, &items);
            let fresh_session;
            let token = match (plans[oi], &p.email, &p.who) {
                (Plan::FreshSession, Some(email), Who::Member { .. } | Who::Outsider) => {
                    fresh_session = world.s.login(email).await;
                    Some(fresh_session.as_str())
                }
                _ => p.token.as_deref(),
            };
            world.before(op, p).await;
            let sent = send(&world.s, op, &path, token).await;
            world.after(op, p, &sent).await;
            tally.record(p, op, plans[oi], &path, &sent);
        }
    }
    // Destructive operations last, principal by principal: credentials that depend on
    // others (an API key on the assistant, a scoped token on the admin's sign-in) first,
    // the owner (who alone may delete the tenant) last; each in the order of its rank.
    last.sort_by_key(|(rank, pi, _)| (last_phase_turn(&principals[*pi]), *pi, *rank));
    for (_, pi, oi) in last {
        let (p, op) = (&principals[pi], &ops[oi]);
        let path = world.fill(op, &world.items);
        let sent = send(&world.s, op, &path, p.token.as_deref()).await;
        tally.record(p, op, plans[oi], &path, &sent);
    }
    eprintln!(
        "route matrix on {b:?}: {} operations x {} principals; outcomes {:?}",
        ops.len(),
        principals.len(),
        tally.counts
    );
    assert!(
        tally.failures.is_empty(),
        "{}",
        tally.failures.join(
            "
"
        )
    );
}

fn last_phase_turn(p: &Principal) -> u8 {
    match p.who {
        Who::Anonymous | Who::ApiKey | Who::Scoped => 0,
        Who::Member { owner: true, .. } => 2,
        Who::Member { .. } | Who::Outsider => 1,
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

on_both_backends!(every_route_answers_every_principal_as_its_rule_says);
