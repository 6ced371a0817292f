//! OAuth/OIDC sign-in end to end: the real binary against a real OpenID provider from npm
//! (oauth2-mock-server, made strict and controllable by tests/support/oidc/server.mjs; run
//! `npm ci` there first, as `.ci/run` does). One test per attack; each checks the answer,
//! that no session was handed out, and the audit event left on the platform chain.

mod common;
#[path = "support/oidc/mock.rs"]
mod mock;

use common::{Backend, Options, Server, OWNER_EMAIL};
use mock::{param, MockIdp, CLIENT_ID, CLIENT_SECRET};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Connection;

const REDIRECT: &str = "http://localhost/api/v1/auth/oauth/mock/callback";
const OTHER_REDIRECT: &str = "http://localhost/api/v1/auth/oauth/other/callback";
const GITHUB_REDIRECT: &str = "http://localhost/api/v1/auth/oauth/gh/callback";
const APP_ORIGIN: &str = "https://app.example.test";

struct Oidc {
    s: Server,
    idp: MockIdp,
    /// A client that does not follow redirects: the test plays the browser.
    web: reqwest::Client,
    _config: tempfile::TempDir,
}

/// What `start` handed the browser.
struct Begun {
    location: String,
    state: String,
    cookie: String,
}

/// An answer of bastion's callback.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    set_cookies: Vec<String>,
    body: Value,
}

impl Answer {
    fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies.iter().find_map(|c| {
            let (k, rest) = c.split_once('=')?;
            (k == name).then(|| rest.split(';').next().unwrap_or("").to_string())
        })
    }

    /// A failure: the status and problem code, no session cookie, no redirect.
    fn assert_refused(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["code"], code, "{}", self.body);
        assert!(self.location.is_none());
        for name in ["__Host-bastion_at", "__Host-bastion_rt"] {
            assert!(self.cookie(name).is_none(), "a refused callback set {name}");
        }
    }
}

fn config(issuer: &str, state_ttl_secs: u64) -> String {
    format!(
        r#"oauth_allowed_return_origins = ["{APP_ORIGIN}"]
oauth_state_ttl_secs = {state_ttl_secs}

[[oauth_providers]]
name = "mock"
kind = "oidc"
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
redirect_uri = "{REDIRECT}"

[[oauth_providers]]
name = "other"
kind = "oidc"
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
redirect_uri = "{OTHER_REDIRECT}"

[[oauth_providers]]
name = "gh"
kind = "github"
authorize_url = "{issuer}/github/login/oauth/authorize"
token_url = "{issuer}/github/login/oauth/access_token"
api_base_url = "{issuer}/github/api"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
redirect_uri = "{GITHUB_REDIRECT}"
"#
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Oidc {
    async fn start(b: Backend) -> Oidc {
        Self::start_with_ttl(b, 600).await
    }

    async fn start_with_ttl(b: Backend, state_ttl_secs: u64) -> Oidc {
        Self::start_with_env(b, state_ttl_secs, Vec::new()).await
    }

    /// With state nonces kept in the real Redis instead of the embedded store.
    async fn start_with_redis(b: Backend) -> Oidc {
        let env = vec![(
            "BASTION_REDIS_URL".to_string(),
            "redis://127.0.0.1:6379".to_string(),
        )];
        Self::start_with_env(b, 600, env).await
    }

    async fn start_with_env(b: Backend, state_ttl_secs: u64, extra: Vec<(String, String)>) -> Oidc {
        Self::start_full(b, state_ttl_secs, extra, "open").await
    }

    /// `signup` as the instance sets it: OAuth creates users only when it is `open`.
    async fn start_full(
        b: Backend,
        state_ttl_secs: u64,
        extra: Vec<(String, String)>,
        signup: &str,
    ) -> Oidc {
        let idp = MockIdp::start(&[REDIRECT, OTHER_REDIRECT, GITHUB_REDIRECT]);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bastion.toml");
        std::fs::write(&path, config(&idp.issuer, state_ttl_secs)).expect("write config");
        let s = Server::start_with(
            b,
            Options {
                env: [("BASTION_CONFIG".to_string(), path.display().to_string())]
                    .into_iter()
                    .chain(extra)
                    .collect(),
                serve_args: vec!["--signup".into(), signup.into()],
            },
        )
        .await;
        Oidc {
            s,
            idp,
            web: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            _config: dir,
        }
    }

    /// `GET …/start` with a raw (already encoded) query.
    async fn start_raw(&self, provider: &str, query: &str) -> reqwest::Response {
        let url = self
            .s
            .url(&format!("/api/v1/auth/oauth/{provider}/start{query}"));
        self.web.get(url).send().await.expect("start")
    }

    async fn begin(&self, return_to: Option<&str>) -> Begun {
        self.begin_at("mock", return_to).await
    }

    async fn begin_at(&self, provider: &str, return_to: Option<&str>) -> Begun {
        let query = return_to
            .map(|r| format!("?return_to={}", enc(r)))
            .unwrap_or_default();
        let res = self.start_raw(provider, &query).await;
        let status = res.status();
        let headers = res.headers().clone();
        assert_eq!(
            status,
            StatusCode::FOUND,
            "start: {}",
            res.text().await.unwrap_or_default()
        );
        let location = headers["location"].to_str().unwrap().to_string();
        let set_cookie = headers["set-cookie"].to_str().unwrap().to_string();
        let cookie = set_cookie
            .strip_prefix("__Host-bastion_oauth=")
            .and_then(|r| r.split(';').next())
            .expect("the browser-binding cookie")
            .to_string();
        let state = param(&mock::url_query(&location), "state")
            .expect("state in the authorization URL")
            .to_string();
        Begun {
            location,
            state,
            cookie,
        }
    }

    /// The provider's answer to the browser: `(code, state)`.
    async fn at_provider(&self, begun: &Begun) -> (String, String) {
        let back = self.idp.authorize(&begun.location).await;
        (
            param(&back, "code").expect("code").to_string(),
            param(&back, "state").expect("state").to_string(),
        )
    }

    async fn callback_raw(&self, provider: &str, query: &str, cookie: Option<&str>) -> Answer {
        let url = self
            .s
            .url(&format!("/api/v1/auth/oauth/{provider}/callback?{query}"));
        let mut req = self.web.get(url);
        if let Some(c) = cookie {
            req = req.header("cookie", format!("__Host-bastion_oauth={c}"));
        }
        let res = req.send().await.expect("callback");
        let status = res.status();
        let location = res
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let set_cookies = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        let text = res.text().await.unwrap_or_default();
        Answer {
            status,
            location,
            set_cookies,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    async fn callback(&self, code: &str, state: &str, cookie: Option<&str>) -> Answer {
        let query = format!("code={}&state={}", enc(code), enc(state));
        self.callback_raw("mock", &query, cookie).await
    }

    /// The whole flow, as a browser would run it.
    async fn sign_in(&self, return_to: Option<&str>) -> Answer {
        let begun = self.begin(return_to).await;
        let (code, state) = self.at_provider(&begun).await;
        assert_eq!(state, begun.state);
        self.callback(&code, &state, Some(&begun.cookie)).await
    }

    async fn db(&self) -> sqlx::AnyConnection {
        sqlx::any::install_default_drivers();
        sqlx::AnyConnection::connect(&self.s.database_url())
            .await
            .expect("connect to the test store")
    }

    /// `(action, outcome, reason)` of the platform chain's `auth.oauth.*` events, oldest first.
    async fn oauth_events(&self) -> Vec<(String, String, String)> {
        let mut conn = self.db().await;
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT action, outcome, detail FROM audit_events \
             WHERE chain = 'platform' AND action LIKE 'auth.oauth.%' ORDER BY seq",
        )
        .fetch_all(&mut conn)
        .await
        .expect("read audit events");
        rows.into_iter()
            .map(|(a, o, d)| {
                let d: Value = serde_json::from_str(&d).unwrap_or(Value::Null);
                (a, o, d["reason"].as_str().unwrap_or("").to_string())
            })
            .collect()
    }

    /// The last `auth.oauth.*` event is a failure of `action` for `reason`.
    async fn assert_failure_audited(&self, action: &str, reason: &str) {
        let events = self.oauth_events().await;
        let last = events.last().expect("an auth.oauth event");
        assert_eq!(
            (last.0.as_str(), last.1.as_str(), last.2.as_str()),
            (action, "failure", reason),
            "{events:?}"
        );
    }

    async fn user_count(&self) -> i64 {
        let mut conn = self.db().await;
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
            .fetch_one(&mut conn)
            .await
            .expect("count users");
        n
    }

    /// `(provider, subject, user_id, email)` of every linked identity.
    async fn identities(&self) -> Vec<(String, String, String, String)> {
        let mut conn = self.db().await;
        sqlx::query_as(
            "SELECT provider, subject, user_id, email FROM user_identities ORDER BY created_at",
        )
        .fetch_all(&mut conn)
        .await
        .expect("read identities")
    }

    /// The user the access token of a successful sign-in belongs to.
    async fn me(&self, answer: &Answer) -> Value {
        let token = answer.cookie("__Host-bastion_at").expect("access cookie");
        let (status, body) = self.s.get("/api/v1/me", &token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Signs in with the next ID token spoiled by `spoil`; it must be refused for `reason`.
    async fn assert_id_token_refused(&self, spoil: Value, reason: &str) {
        let users = self.user_count().await;
        self.idp.spoil_next_id_token(spoil).await;
        let answer = self.sign_in(None).await;
        answer.assert_refused(StatusCode::UNAUTHORIZED, "oauth_failed");
        self.assert_failure_audited("auth.oauth.callback", reason)
            .await;
        assert_eq!(
            self.user_count().await,
            users,
            "a refused sign-in made a user"
        );
        assert!(self.identities().await.is_empty());
    }
}

// ---------------------------------------------------------------------------------------
// The flow that works

async fn oauth_sign_in_creates_the_user_links_the_identity_and_starts_a_session(b: Backend) {
    let t = Oidc::start(b).await;
    t.idp
        .set_identity(
            json!({"sub": "idp-user-1", "email": "new.person@idp.test", "email_verified": true}),
        )
        .await;
    let users = t.user_count().await;

    let begun = t.begin(Some("/ui/welcome?tab=1")).await;
    let q = mock::url_query(&begun.location);
    assert!(begun
        .location
        .starts_with(&format!("{}/authorize?", t.idp.issuer)));
    assert_eq!(param(&q, "redirect_uri"), Some(REDIRECT));
    assert_eq!(param(&q, "code_challenge_method"), Some("S256"));
    assert_eq!(param(&q, "code_challenge").map(str::len), Some(43));
    assert!(param(&q, "nonce").is_some());
    let (code, state) = t.at_provider(&begun).await;
    let answer = t.callback(&code, &state, Some(&begun.cookie)).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(answer.location.as_deref(), Some("/ui/welcome?tab=1"));
    for name in [
        "__Host-bastion_at",
        "__Host-bastion_rt",
        "__Host-bastion_csrf",
    ] {
        assert!(answer.cookie(name).is_some_and(|v| !v.is_empty()), "{name}");
    }
    // The browser-binding cookie is spent.
    assert_eq!(answer.cookie("__Host-bastion_oauth").as_deref(), Some(""));
    let me = t.me(&answer).await;
    assert_eq!(me["user"]["email"], "new.person@idp.test", "{me}");

    assert_eq!(t.user_count().await, users + 1);
    let ids = t.identities().await;
    assert_eq!(ids.len(), 1);
    assert_eq!(
        (ids[0].0.as_str(), ids[0].1.as_str()),
        ("mock", "idp-user-1")
    );
    assert_eq!(ids[0].2, me["user"]["id"].as_str().unwrap());
    assert_eq!(ids[0].3, "new.person@idp.test");
    let events = t.oauth_events().await;
    let actions: Vec<_> = events
        .iter()
        .map(|e| (e.0.as_str(), e.1.as_str()))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("auth.oauth.link", "success"),
            ("auth.oauth.callback", "success")
        ]
    );
    assert_eq!(t.s.platform_audit("auth.signup").await, vec!["success"]);

    // The next sign-in of the same identity finds the same user.
    let again = t.sign_in(None).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.body);
    assert_eq!(again.location.as_deref(), Some("/"));
    assert_eq!(t.me(&again).await["user"]["id"], me["user"]["id"]);
    assert_eq!(t.user_count().await, users + 1);
}

async fn without_open_signup_an_unknown_identity_gets_no_account(b: Backend) {
    for signup in ["invite", "closed"] {
        let t = Oidc::start_full(b, 600, Vec::new(), signup).await;
        let users = t.user_count().await;
        t.idp
            .set_identity(
                json!({"sub": "stranger", "email": "stranger@idp.test", "email_verified": true}),
            )
            .await;
        let answer = t.sign_in(None).await;
        answer.assert_refused(StatusCode::FORBIDDEN, "forbidden");
        t.assert_failure_audited("auth.oauth.callback", "signup_not_open")
            .await;
        assert_eq!(t.user_count().await, users, "{signup}");
        assert!(t.identities().await.is_empty());
        // An existing account with that verified email still signs in, and is linked.
        t.idp
            .set_identity(
                json!({"sub": "owner-at-idp", "email": OWNER_EMAIL, "email_verified": true}),
            )
            .await;
        let answer = t.sign_in(None).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        assert_eq!(t.me(&answer).await["user"]["email"], OWNER_EMAIL);
        assert_eq!(t.user_count().await, users);
    }
}

async fn the_start_cookie_is_host_bound_http_only_and_lax(b: Backend) {
    let t = Oidc::start(b).await;
    let res = t.start_raw("mock", "").await;
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("__Host-bastion_oauth="), "{cookie}");
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=600",
    ] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
}

async fn a_verified_email_links_the_existing_account(b: Backend) {
    let t = Oidc::start(b).await;
    let member = t.s.add_user("member@tenant-a.test", false);
    t.idp
        .set_identity(
            json!({"sub": "idp-member", "email": "Member@Tenant-A.test", "email_verified": true}),
        )
        .await;
    let users = t.user_count().await;
    let answer = t.sign_in(None).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(t.me(&answer).await["user"]["id"], member.as_str());
    assert_eq!(t.user_count().await, users);
    assert_eq!(t.identities().await[0].2, member);
}

async fn an_unverified_email_is_not_linked_to_an_existing_account(b: Backend) {
    let t = Oidc::start(b).await;
    // Someone claims the owner's address at a provider that did not verify it.
    t.idp
        .set_identity(json!({"sub": "claimer", "email": OWNER_EMAIL, "email_verified": false}))
        .await;
    let answer = t.sign_in(None).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let me = t.me(&answer).await;
    assert_ne!(me["user"]["id"], t.s.tenant.owner_id.as_str());
    let email = me["user"]["email"].as_str().unwrap();
    assert!(email.ends_with("@mock.oauth.invalid"), "{email}");
    // The claimed address is stored nowhere.
    let ids = t.identities().await;
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].3, "");
    assert_ne!(ids[0].2, t.s.tenant.owner_id);
    // And the claimer has no access to the owner's tenant.
    let token = answer.cookie("__Host-bastion_at").unwrap();
    let (status, _) =
        t.s.get(
            &format!("/api/v1/assistants/{}", t.s.tenant.assistant_id),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn an_allowed_origin_is_a_valid_return_target(b: Backend) {
    let t = Oidc::start(b).await;
    let answer = t.sign_in(Some("https://app.example.test/after")).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(
        answer.location.as_deref(),
        Some("https://app.example.test/after")
    );
}

// ---------------------------------------------------------------------------------------
// State

async fn a_tampered_state_is_refused(b: Backend) {
    let t = Oidc::start(b).await;
    let begun = t.begin(Some("/ui")).await;
    let (code, state) = t.at_provider(&begun).await;
    // Change one character of the signed payload (the return path lives there).
    let (payload, mac) = state.split_once('.').unwrap();
    let mut chars: Vec<char> = payload.chars().collect();
    let mid = chars.len() / 2;
    chars[mid] = if chars[mid] == 'A' { 'B' } else { 'A' };
    let forged = format!("{}.{mac}", chars.into_iter().collect::<String>());
    let answer = t.callback(&code, &forged, Some(&begun.cookie)).await;
    answer.assert_refused(StatusCode::UNAUTHORIZED, "oauth_failed");
    t.assert_failure_audited("auth.oauth.callback", "state_bad_signature")
        .await;
    // The code never reached the provider's token endpoint.
    assert_eq!(t.idp.last_token().await, Value::Null);
    // A state that is not even well formed.
    let answer = t.callback(&code, "not-a-state", Some(&begun.cookie)).await;
    answer.assert_refused(StatusCode::UNAUTHORIZED, "oauth_failed");
    t.assert_failure_audited("auth.oauth.callback", "state_malformed")
        .await;
}

async fn an_expired_state_is_refused(b: Backend) {
    let t = Oidc::start_with_ttl(b, 1).await;
    let begun = t.begin(None).await;
    let (code, state) = t.at_provider(&begun).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let answer = t.callback(&code, &state, Some(&begun.cookie)).await;
    answer.assert_refused(StatusCode::UNAUTHORIZED, "oauth_failed");
    t.assert_failure_audited("auth.oauth.callback", "state_expired")
        .await;
    assert_eq!(t.idp.last_token().await, Value::Null);
}

async fn a_replayed_state_is_refused(b: Backend) {
    let t = Oidc::start(b).await;
    let begun = t.begin(None).await;
    let (code, state) = t.at_provider(&begun).await;
    let first = t.callback(&code, &state, Some(&begun.cookie)).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    let users = t.user_count().await;
    let second = t.callback(&code, &state, Some(&begun.cookie)).await;
    second.assert_refused(StatusCode::UNAUTHORIZED, "oauth_failed");
    t.assert_failure_audited("auth.oauth.callback", "state_replayed")
        .await;
    assert_eq!(t.user_count().await, users);
}

async fn a_replayed_state_is_refused_with_nonces_in_redis(b: Backend) {
    let t = Oidc::start_with_redis(b).await;
    let begun = t.begin(None).await;
    let (code, state) = t.at_provider(&begun).await;
    let first = t.callback(&code, &state, Some(&begun.cookie)).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    let second = t.callback(&code, &state, Some(&begun.cookie)).await;
    second.assert_refused(StatusCode::UNAUTHORIZED, "oauth_failed");
    t.assert_failure_audited("auth.oauth.callback", "state_replayed")
        .await;
    // The nonce went to Redis, not to the embedded store.
    let mut conn = t.db().await;
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM used_nonces")
        .fetch_one(&mut conn)
        .await
        .expect("count nonces");
    assert_eq!(n, 0);
}

async fn a_replayed_state_with_a_fresh_code_is_refused(b: Backend) {
    let t = Oidc::start(b).await;
    let begun = t.begin(None).await;
    let (code, state) = t.at_provider(&begun).await;
    let first = t.callback(&code, &state, Some(&begun.cookie)).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    // The same authorization URL again yields a new, unused code: the state still works once.
    let (code2, state2) = t.at_provider(&begun).await;
    assert_eq!(state2, state);
    let second = t.callback(&code2, &state2, Some(&begun.cookie)).await;
    second.assert_refused(StatusCode::UNAUTHORIZED, "oauth_failed");
    t.assert_failure_audited("auth.oauth.callback", "state_replayed")
        .await;
}

async fn a_callback_in_another_browser_is_refused(b: Backend) {
    // Login CSRF: an attacker's own code and state, delivered to a victim's browser.
    let t = Oidc::start(b).await;
    let attacker = t.begin(None).await;
    let (code, state) = t.at_provider(&attacker).await;
    let victim = t.begin(None).await;
    for cookie in [None, Some(victim.cookie.as_str()), Some("")] {
        let answer = t.callback(&code, &state, cookie).await;
        answer.assert_refused(StatusCode::UNAUTHORIZED, "oauth_failed");
        t.assert_failure_audited("auth.oauth.callback", "browser_mismatch")
            .await;
    }
    assert_eq!(t.idp.last_token().await, Value::Null);
}

async fn a_state_for_another_provider_is_refused(b: Backend) {
    let t = Oidc::start(b).await;
    let begun = t.begin(None).await;
    let (code, state) = t.at_provider(&begun).await;
    let query = format!("code={}&state={}", enc(&code), enc(&state));
    let answer = t.callback_raw("other", &query, Some(&begun.cookie)).await;
    answer.assert_refused(StatusCode::UNAUTHORIZED, "oauth_failed");
    t.assert_failure_audited("auth.oauth.callback", "state_wrong_provider")
        .await;
    // An unknown provider is not found.
    let answer = t.callback_raw("nobody", &query, Some(&begun.cookie)).await;
    answer.assert_refused(StatusCode::NOT_FOUND, "not_found");
    t.assert_failure_audited("auth.oauth.callback", "unknown_provider")
        .await;
}

async fn a_refusal_by_the_provider_is_recorded(b: Backend) {
    let t = Oidc::start(b).await;
    let begun = t.begin(None).await;
    let query = format!("error=access_denied&state={}", enc(&begun.state));
    let answer = t.callback_raw("mock", &query, Some(&begun.cookie)).await;
    answer.assert_refused(StatusCode::UNAUTHORIZED, "oauth_failed");
    t.assert_failure_audited("auth.oauth.callback", "provider_denied")
        .await;
}

// ---------------------------------------------------------------------------------------
// PKCE and the redirect URI

async fn a_wrong_pkce_verifier_is_refused(b: Backend) {
    // A code issued for one flow, redeemed through another flow's state: bastion sends the
    // other flow's verifier, which does not match the code's challenge.
    let t = Oidc::start(b).await;
    let first = t.begin(None).await;
    let (code, _) = t.at_provider(&first).await;
    let second = t.begin(None).await;
    let answer = t.callback(&code, &second.state, Some(&second.cookie)).await;
    answer.assert_refused(StatusCode::UNAUTHORIZED, "oauth_failed");
    t.assert_failure_audited("auth.oauth.callback", "token_exchange")
        .await;
    assert_eq!(t.idp.last_token().await["code_verifier_present"], true);
}

async fn a_pkce_downgrade_is_refused(b: Backend) {
    // The challenge is stripped from the authorization request on its way to the provider,
    // which then issues a code without PKCE; bastion still sends its verifier, so the code
    // cannot be redeemed.
    let t = Oidc::start(b).await;
    let begun = t.begin(None).await;
    let stripped: Vec<String> = mock::url_query(&begun.location)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .map(|(k, v)| format!("{}={}", enc(&k), enc(&v)))
        .collect();
    let downgraded = Begun {
        location: format!("{}/authorize?{}", t.idp.issuer, stripped.join("&")),
        state: begun.state.clone(),
        cookie: begun.cookie.clone(),
    };
    let (code, state) = t.at_provider(&downgraded).await;
    let answer = t.callback(&code, &state, Some(&begun.cookie)).await;
    answer.assert_refused(StatusCode::UNAUTHORIZED, "oauth_failed");
    t.assert_failure_audited("auth.oauth.callback", "token_exchange")
        .await;
}

async fn the_redirect_uri_sent_is_exactly_the_configured_one(b: Backend) {
    let t = Oidc::start(b).await;
    let begun = t.begin(Some("/x")).await;
    assert_eq!(
        param(&mock::url_query(&begun.location), "redirect_uri"),
        Some(REDIRECT)
    );
    assert_eq!(t.idp.last_authorize().await, Value::Null);
    let (code, state) = t.at_provider(&begun).await;
    assert_eq!(t.idp.last_authorize().await["redirect_uri"], REDIRECT);
    // Whatever host and path the callback arrives on, the code is redeemed with the
    // configured redirect URI and nothing taken from the request.
    let answer = t.callback(&code, &state, Some(&begun.cookie)).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(t.idp.last_token().await["redirect_uri"], REDIRECT);
}

async fn redirect_uri_variants_are_refused(b: Backend) {
    // At the provider (exact match of the one registered URI)…
    let t = Oidc::start(b).await;
    let begun = t.begin(None).await;
    let variants = [
        "http://localhost/api/v1/auth/oauth/mock/callback/",
        "http://localhost/api/v1/auth/oauth/MOCK/callback",
        "http://LOCALHOST/api/v1/auth/oauth/mock/callback?x=1",
        "http://localhost/api/v1/auth/oauth/mock/callback?next=https://evil.test",
        "http://localhost@evil.test/api/v1/auth/oauth/mock/callback",
        "http://evil.localhost/api/v1/auth/oauth/mock/callback",
        "https://localhost/api/v1/auth/oauth/mock/callback",
        "http://evil.test/api/v1/auth/oauth/mock/callback",
    ];
    for variant in variants {
        let query: Vec<String> = mock::url_query(&begun.location)
            .into_iter()
            .map(|(k, v)| {
                let v = if k == "redirect_uri" {
                    variant.to_string()
                } else {
                    v
                };
                format!("{}={}", enc(&k), enc(&v))
            })
            .collect();
        let url = format!("{}/authorize?{}", t.idp.issuer, query.join("&"));
        let res = t.idp.http.get(url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{variant}");
    }
    // …and in bastion's own configuration: a redirect URI that is not this provider's
    // callback route over https (or loopback http) stops the server from starting.
    for bad in [
        "http://bastion.example.com/api/v1/auth/oauth/mock/callback",
        "https://bastion.example.com/api/v1/auth/oauth/mock/callback/",
        "https://bastion.example.com/api/v1/auth/oauth/MOCK/callback",
        "https://user@bastion.example.com/api/v1/auth/oauth/mock/callback",
        "https://bastion.example.com/api/v1/auth/oauth/mock/callback#x",
        "https://bastion.example.com/elsewhere",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        let text = config(&t.idp.issuer, 600).replacen(REDIRECT, bad, 1);
        std::fs::write(&path, text).unwrap();
        let out = t.s.cli(
            &[
                "serve",
                "--config",
                path.to_str().unwrap(),
                "--bind",
                "127.0.0.1:0",
            ],
            None,
        );
        assert!(!out.status.success(), "serve started with {bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("oauth_providers") && err.contains("redirect_uri"),
            "{bad}: {err}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Open redirects

async fn open_redirects_in_return_to_are_refused(b: Backend) {
    let t = Oidc::start(b).await;
    let raw_queries = [
        "//evil.com",
        "//evil.com/ui",
        "/\\evil.com",
        "\\\\evil.com",
        "https://evil.com",
        "https://evil.com/ui",
        "http://app.example.test/",
        "https://app.example.test.evil.com/",
        "https://app.example.test@evil.com/",
        "http:evil",
        "https:evil.com",
        "javascript:alert(1)",
        "evil.com",
    ]
    .iter()
    .map(|r| format!("?return_to={}", enc(r)))
    .chain(
        [
            // Encoded variants, as they would sit in a link.
            "?return_to=%2F%2Fevil.com",
            "?return_to=%2F%5Cevil.com",
            "?return_to=%252F%252Fevil.com",
            "?return_to=/%2F%2Fevil.com",
            "?return_to=/%252F%252Fevil.com",
            "?return_to=/%5Cevil.com",
            "?return_to=%68ttps://evil.com",
            "?return_to=https:%2F%2Fevil.com",
            "?return_to=/%09/evil.com",
            "?return_to=/ui%0D%0ALocation:%20https://evil.com",
            "?return_to=%E3%80%82/evil.com",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    for query in raw_queries {
        let res = t.start_raw("mock", &query).await;
        let status = res.status();
        assert!(res.headers().get("location").is_none(), "{query}");
        assert!(res.headers().get("set-cookie").is_none(), "{query}");
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["code"], "return_to_refused", "{query}: {body}");
        t.assert_failure_audited("auth.oauth.start", "return_to_refused")
            .await;
    }
    assert_eq!(t.idp.last_authorize().await, Value::Null);
}

// ---------------------------------------------------------------------------------------
// ID tokens

async fn an_id_token_for_another_audience_is_refused(b: Backend) {
    let t = Oidc::start(b).await;
    t.assert_id_token_refused(json!({"aud": "another-client"}), "id_token_audience")
        .await;
    t.assert_id_token_refused(
        json!({"aud": [CLIENT_ID, "another-client"], "azp": "another-client"}),
        "id_token_audience",
    )
    .await;
}

async fn an_id_token_with_another_nonce_is_refused(b: Backend) {
    let t = Oidc::start(b).await;
    t.assert_id_token_refused(
        json!({"nonce": "replayed-from-elsewhere"}),
        "id_token_nonce",
    )
    .await;
    t.assert_id_token_refused(json!({"drop": ["nonce"]}), "id_token_nonce")
        .await;
}

async fn an_id_token_with_an_invalid_signature_is_refused(b: Backend) {
    let t = Oidc::start(b).await;
    t.assert_id_token_refused(json!({"sign": "other-key"}), "id_token_signature")
        .await;
    t.assert_id_token_refused(json!({"sign": "corrupt"}), "id_token_signature")
        .await;
}

async fn an_id_token_whose_kid_names_no_key_of_the_issuer_is_refused(b: Backend) {
    let t = Oidc::start(b).await;
    t.assert_id_token_refused(json!({"sign": "unknown-kid"}), "id_token_signature")
        .await;
}

async fn an_id_token_signed_hs256_with_the_public_key_is_refused(b: Backend) {
    let t = Oidc::start(b).await;
    t.assert_id_token_refused(json!({"sign": "hs256-public-key"}), "id_token_algorithm")
        .await;
}

async fn an_id_token_with_alg_none_is_refused(b: Backend) {
    let t = Oidc::start(b).await;
    t.assert_id_token_refused(json!({"sign": "none"}), "id_token_algorithm")
        .await;
}

async fn an_expired_id_token_is_refused(b: Backend) {
    let t = Oidc::start(b).await;
    t.assert_id_token_refused(json!({"exp_in": -60}), "id_token_expired")
        .await;
}

async fn an_id_token_from_another_issuer_is_refused(b: Backend) {
    let t = Oidc::start(b).await;
    t.assert_id_token_refused(json!({"iss": "https://evil.example"}), "id_token_issuer")
        .await;
}

async fn github_sign_in_uses_the_primary_verified_email(b: Backend) {
    let t = Oidc::start(b).await;
    t.idp
        .set_identity(json!({"sub": "583231", "email": "octo@idp.test", "email_verified": true}))
        .await;
    let begun = t.begin_at("gh", Some("/after")).await;
    assert!(begun.location.contains("/github/login/oauth/authorize?"));
    let params = mock::url_query(&begun.location);
    assert_eq!(param(&params, "code_challenge_method"), Some("S256"));
    let back = t.idp.authorize(&begun.location).await;
    let query = format!(
        "code={}&state={}",
        enc(param(&back, "code").expect("code")),
        enc(param(&back, "state").expect("state"))
    );
    let answer = t.callback_raw("gh", &query, Some(&begun.cookie)).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(answer.location.as_deref(), Some("/after"));
    assert_eq!(t.me(&answer).await["user"]["email"], "octo@idp.test");
    let ids = t.identities().await;
    assert_eq!(ids.len(), 1);
    assert_eq!((ids[0].0.as_str(), ids[0].1.as_str()), ("gh", "583231"));
    // The same state through GitHub's callback again: refused like any replay.
    let again = t.callback_raw("gh", &query, Some(&begun.cookie)).await;
    again.assert_refused(StatusCode::UNAUTHORIZED, "oauth_failed");
    t.assert_failure_audited("auth.oauth.callback", "state_replayed")
        .await;
}

async fn a_rotated_provider_key_is_fetched_and_accepted(b: Backend) {
    let t = Oidc::start(b).await;
    let first = t.sign_in(None).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    t.idp.rotate_key().await;
    let second = t.sign_in(None).await;
    assert_eq!(second.status, StatusCode::SEE_OTHER, "{}", second.body);
}

on_both_backends!(
    oauth_sign_in_creates_the_user_links_the_identity_and_starts_a_session,
    without_open_signup_an_unknown_identity_gets_no_account,
    the_start_cookie_is_host_bound_http_only_and_lax,
    a_verified_email_links_the_existing_account,
    an_unverified_email_is_not_linked_to_an_existing_account,
    an_allowed_origin_is_a_valid_return_target,
    a_tampered_state_is_refused,
    an_expired_state_is_refused,
    a_replayed_state_is_refused,
    a_replayed_state_is_refused_with_nonces_in_redis,
    a_replayed_state_with_a_fresh_code_is_refused,
    a_callback_in_another_browser_is_refused,
    a_state_for_another_provider_is_refused,
    a_refusal_by_the_provider_is_recorded,
    a_wrong_pkce_verifier_is_refused,
    a_pkce_downgrade_is_refused,
    the_redirect_uri_sent_is_exactly_the_configured_one,
    redirect_uri_variants_are_refused,
    open_redirects_in_return_to_are_refused,
    an_id_token_for_another_audience_is_refused,
    an_id_token_with_another_nonce_is_refused,
    an_id_token_with_an_invalid_signature_is_refused,
    an_id_token_whose_kid_names_no_key_of_the_issuer_is_refused,
    an_id_token_signed_hs256_with_the_public_key_is_refused,
    an_id_token_with_alg_none_is_refused,
    an_expired_id_token_is_refused,
    an_id_token_from_another_issuer_is_refused,
    a_rotated_provider_key_is_fetched_and_accepted,
    github_sign_in_uses_the_primary_verified_email,
);
