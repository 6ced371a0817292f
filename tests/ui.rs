//! The Control UI: every page behind the request flow (a page answers exactly as the access
//! rule of the data it shows implies, for every built-in role, and its navigation lists
//! exactly what the role reaches), and end to end in Debian's Chromium driven by
//! playwright-core (tests/support/ui/e2e.mjs): sign-in, a streamed chat, an API key, a
//! device bound by its code, every page, and a member kept out of the admin pages. What the
//! browser did is then checked through the API.

mod common;
#[path = "support/oidc/mock.rs"]
mod mock;

use common::chat::Chat;
use common::device::Device;
use common::roles::{holds, ROLES};
use common::{Backend, OWNER_EMAIL, PASSWORD};
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_FRAME_OPTIONS};
use reqwest::StatusCode;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// Where the OpenID provider sends the browser back (the browser run forwards it).
const OAUTH_REDIRECT: &str = "http://localhost/api/v1/auth/oauth/mock/callback";

/// The pages of an assistant: path under `/ui/assistants/{id}`, navigation label, and the
/// capability the page needs (none: any member).
const PAGES: &[(&str, &str, Option<&str>)] = &[
    ("", "Overview", None),
    ("/chat", "Chat", Some("chat")),
    (
        "/conversations",
        "Conversations",
        Some("conversations.read"),
    ),
    ("/members", "Members", Some("members.manage")),
    ("/api-keys", "API keys", Some("keys.manage")),
    ("/tools", "Tools", Some("tools.manage")),
    ("/mcp-servers", "MCP servers", Some("mcp.manage")),
    ("/approvals", "Approvals", Some("tools.approve")),
    ("/devices", "Devices", Some("devices.manage")),
    ("/settings", "Settings", Some("settings.manage")),
];

async fn page(s: &common::Server, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(s.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("page request")
}

/// The labels of the assistant navigation on a page.
fn nav_labels(html: &str) -> Vec<String> {
    let Some(start) = html.find("<nav class=\"side\"") else {
        return Vec::new();
    };
    let nav = &html[start..start + html[start..].find("</nav>").unwrap_or(0)];
    nav.split("<a ")
        .skip(1)
        .filter_map(|a| {
            let text = &a[a.find('>')? + 1..];
            Some(text[..text.find('<')?].to_string())
        })
        .collect()
}

fn assert_page_headers(res: &reqwest::Response, what: &str) {
    let h = res.headers();
    assert_eq!(
        h[CONTENT_TYPE], "text/html; charset=utf-8",
        "{what}: a page, not JSON"
    );
    let csp = h[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("script-src 'self'")
            && csp.contains("frame-ancestors 'none'")
            && !csp.contains("unsafe"),
        "{what}: {csp}"
    );
    assert_eq!(h[X_FRAME_OPTIONS], "DENY", "{what}");
}

/// Every role against every page: 200 where its capabilities reach, 403 elsewhere, and the
/// navigation lists exactly the pages it reaches; no credentials is the sign-in page with a
/// 401; an assistant the caller is not a member of is a 404, whatever page.
async fn every_page_answers_as_its_access_rule(backend: Backend) {
    let c = Chat::start(backend, "You help.").await;
    let s = &c.s;
    let a = s.tenant.assistant_id.clone();
    let other = s.new_assistant(&c.owner, "elsewhere").await;

    let mut people: Vec<(String, String, &[&str])> =
        vec![("owner".into(), c.owner.clone(), &["*"] as &[&str])];
    for (role, caps) in ROLES {
        let (_, token) = s
            .join(&c.owner, &format!("{role}@tenant-a.test"), role)
            .await;
        people.push((role.to_string(), token, caps));
    }
    for (role, token, caps) in &people {
        let mut reached = Vec::new();
        for (path, label, needs) in PAGES {
            let res = page(s, &format!("/ui/assistants/{a}{path}"), Some(token)).await;
            let allowed = needs.is_none_or(|cap| holds(caps, cap));
            let expected = if allowed {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(res.status(), expected, "{role} on {path:?}");
            assert_page_headers(&res, &format!("{role} on {path:?}"));
            let html = res.text().await.unwrap();
            if allowed {
                reached.push(label.to_string());
                assert!(html.contains("<nav class=\"side\""), "{role} on {path:?}");
                let mut nav = nav_labels(&html);
                nav.retain(|l| l != "Provider keys" && l != "Audit log");
                let expected_nav: Vec<String> = PAGES
                    .iter()
                    .filter(|(_, _, n)| n.is_none_or(|cap| holds(caps, cap)))
                    .map(|(_, l, _)| l.to_string())
                    .collect();
                assert_eq!(nav, expected_nav, "{role}'s navigation on {path:?}");
            } else {
                assert!(html.contains("Not allowed"), "{role} on {path:?}: {html}");
            }
            // Another assistant of the same workspace, not the caller's (the owner's is).
            if role != "owner" {
                let res = page(s, &format!("/ui/assistants/{other}{path}"), Some(token)).await;
                assert_eq!(
                    res.status(),
                    StatusCode::NOT_FOUND,
                    "{role} elsewhere {path:?}"
                );
            }
        }
        assert!(reached.contains(&"Overview".to_string()), "{role}");
    }
    for (path, _, _) in PAGES {
        let res = page(s, &format!("/ui/assistants/{a}{path}"), None).await;
        assert_eq!(
            res.status(),
            StatusCode::UNAUTHORIZED,
            "anonymous on {path:?}"
        );
        assert_page_headers(&res, "anonymous");
        let html = res.text().await.unwrap();
        assert!(html.contains("Sign in to bastion"), "{html}");
        assert!(
            html.contains(&format!("data-next=\"/ui/assistants/{a}{path}\"")),
            "the sign-in page returns to {path:?}"
        );
        let res = page(
            s,
            &format!("/ui/assistants/{a}{path}"),
            Some("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
        )
        .await;
        assert_eq!(
            res.status(),
            StatusCode::UNAUTHORIZED,
            "alg none on {path:?}"
        );
    }
    // Workspace pages: the owner (workspace owner) reaches them; an assistant member who is
    // not a member of the workspace does not see that it exists.
    let ws = &s.tenant.workspace_id;
    for path in ["provider-keys", "audit"] {
        let res = page(
            s,
            &format!("/ui/workspaces/{ws}/{path}?from={a}"),
            Some(&c.owner),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let html = res.text().await.unwrap();
        assert!(
            !html.contains(&c.secret),
            "a provider key's secret on {path}"
        );
        let member = &people.last().unwrap().1;
        let res = page(s, &format!("/ui/workspaces/{ws}/{path}"), Some(member)).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

on_both_backends!(every_page_answers_as_its_access_rule);

/// The page's script and style come from this origin, named by their content's digest and
/// cached for good; any other name is a 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_are_addressed_by_their_digest() {
    let s = common::Server::start(Backend::Sqlite).await;
    let res = page(&s, "/ui/login", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    let src = html
        .split("<script src=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a script element")
        .to_string();
    assert!(
        src.starts_with("/ui/static/") && src.ends_with("/ui.js"),
        "{src}"
    );
    assert!(!html.contains("<script>"), "no inline script");
    let res = page(&s, &src, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(res.headers()[CACHE_CONTROL]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let stale = src.replace("/ui/static/", "/ui/static/0");
    assert_eq!(page(&s, &stale, None).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        page(&s, "/ui/static/x/../../api/v1/me", None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Enrols TOTP for the holder of `token`; the raw secret.
async fn enrol_totp(s: &common::Server, token: &str) -> Vec<u8> {
    let (status, body) = s
        .post("/api/v1/auth/mfa/totp", token, serde_json::json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let secret = totp_rs::Secret::Encoded(body["secret"].as_str().unwrap().to_string())
        .to_bytes()
        .unwrap();
    let code = bastion_auth::totp::code_at(&secret, now()).unwrap();
    let (status, body) = s
        .post(
            "/api/v1/auth/mfa/totp/confirm",
            token,
            serde_json::json!({"code": code}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    secret
}

fn chromium() -> Option<PathBuf> {
    let path = PathBuf::from(
        std::env::var("BASTION_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    path.exists().then_some(path)
}

/// The whole UI in a real browser; then the API confirms what the browser did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_ui_in_chromium() {
    let Some(chromium) = chromium() else {
        panic!("Chromium is missing: install Debian's chromium (.ci/run does)");
    };
    let support = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/ui");
    assert!(
        support.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: npm ci in tests/support/ui (.ci/run does)"
    );
    // The OpenID provider the member signs in with. It redirects to the callback at
    // `localhost`, which the browser run answers with a redirect to the server's real
    // address: a sign-in that crosses sites, as one through a real provider does.
    let idp = mock::MockIdp::start(&[OAUTH_REDIRECT]);
    let oauth = format!(
        "[[oauth_providers]]\nname = \"mock\"\nkind = \"oidc\"\nissuer = \"{}\"\n\
         client_id = \"{}\"\nclient_secret = \"{}\"\nredirect_uri = \"{OAUTH_REDIRECT}\"\n",
        idp.issuer,
        mock::CLIENT_ID,
        mock::CLIENT_SECRET
    );
    let c = Chat::start_configured(Backend::Sqlite, "You help.", &oauth, Vec::new()).await;
    let s = &c.s;
    // Slow enough that the answer visibly arrives in parts.
    c.fake.set_token_delay(Duration::from_millis(40));
    let member = "member@tenant-a.test";
    s.join(&c.owner, member, "member").await;
    // A viewer with TOTP: the browser signs in with the code of the next 30-second step (the
    // one used to confirm enrolment cannot be used twice; ±1 step is accepted).
    let mfa_user = "mfa@tenant-a.test";
    let (_, mfa_token) = s.join(&c.owner, mfa_user, "viewer").await;
    let totp = enrol_totp(s, &mfa_token).await;
    let next_step = now() + 30;
    let mfa_code = bastion_auth::totp::code_at(&totp, next_step).expect("a code");
    idp.set_identity(
        serde_json::json!({"sub": "member-at-idp", "email": member, "email_verified": true}),
    )
    .await;
    let mut device = Device::new();
    let (status, ota) = device.handshake(s).await;
    assert_eq!(status, StatusCode::OK, "{ota}");
    let code = ota["activation"]["code"]
        .as_str()
        .expect("a code")
        .to_string();

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    let browser = tokio::process::Command::new("node")
        .arg(support.join("e2e.mjs"))
        .current_dir(&support)
        .env("UI_BASE_URL", s.url(""))
        .env("UI_ASSISTANT_ID", &s.tenant.assistant_id)
        .env("UI_WORKSPACE_ID", &s.tenant.workspace_id)
        .env("UI_OWNER_EMAIL", OWNER_EMAIL)
        .env("UI_MEMBER_EMAIL", member)
        .env("UI_PASSWORD", PASSWORD)
        .env("UI_DEVICE_CODE", &code)
        .env("UI_MFA_EMAIL", mfa_user)
        .env("UI_MFA_CODE", &mfa_code)
        .env("UI_PROVIDER_SECRET", &c.secret)
        .env("UI_SCREENSHOTS", &shots)
        .env("UI_CHROMIUM", &chromium)
        .env("UI_OAUTH_REDIRECT", OAUTH_REDIRECT)
        .kill_on_drop(true)
        .output();
    // Once the browser has bound the device, the device connects: the devices page shows
    // it online without being reloaded. Its channel stays open until the run ends.
    let device_comes_online = async {
        let path = format!("/api/v1/assistants/{}/devices", s.tenant.assistant_id);
        for _ in 0..600 {
            let (_, list) = s.get(&path, &c.owner).await;
            if list[0]["status"] == "bound" {
                let (status, creds) = device.handshake(s).await;
                assert_eq!(status, StatusCode::OK, "{creds}");
                let url = creds["websocket"]["url"].as_str().expect("url").to_string();
                let token = creds["websocket"]["token"]
                    .as_str()
                    .expect("token")
                    .to_string();
                let mut channel = device.connect(&url, &token).await.expect("channel");
                channel.hello().await;
                return Some(channel);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    };
    let (out, channel) = tokio::join!(browser, device_comes_online);
    let out = out.expect("node runs");
    assert!(channel.is_some(), "the browser never bound the device");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no report from the browser run\n{stdout}\n{stderr}"));
    assert!(
        out.status.success(),
        "the browser run failed: {:#}\n{stderr}",
        report["problems"]
    );
    let r = &report["results"];
    eprintln!("screenshots in {}", shots.display());

    // The key the page showed once is a working key of this assistant.
    let key = r["api_key"].as_str().expect("a key");
    let (status, models) = s.get("/v1/models", key).await;
    assert_eq!(status, StatusCode::OK, "{models}");
    let a = &s.tenant.assistant_id;
    let (_, keys) = s
        .get(&format!("/api/v1/assistants/{a}/api-keys"), &c.owner)
        .await;
    assert!(keys
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["name"] == "made-in-the-ui"));
    // The device is bound to this assistant with the owner as its owner.
    let (_, devices) = s
        .get(&format!("/api/v1/assistants/{a}/devices"), &c.owner)
        .await;
    let d = &devices.as_array().unwrap()[0];
    assert_eq!(d["status"], "bound", "{d}");
    assert_eq!(d["owner_id"], s.tenant.owner_id.as_str());
    assert_eq!(r["device_status"], "bound");
    // The chat is a stored conversation of the owner, with the streamed answer and its rating.
    let cid = r["conversation"].as_str().expect("a conversation");
    let (status, conv) = s
        .get(
            &format!("/api/v1/assistants/{a}/conversations/{cid}"),
            &c.owner,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{conv}");
    assert_eq!(conv["messages"][0]["content"], "Hello from the browser");
    assert_eq!(
        conv["messages"][1]["content"],
        "You said: Hello from the browser"
    );
    let (_, feedback) = s
        .get(&format!("/api/v1/assistants/{a}/feedback"), &c.owner)
        .await;
    assert_eq!(feedback["up"], 1, "{feedback}");
    assert_eq!(
        r["mfa_signed_in"], true,
        "the TOTP step was passed in the browser"
    );
    // The tool added in the page, with the rule chosen there, and turned off there.
    let (_, tools) = s
        .get(&format!("/api/v1/assistants/{a}/tools"), &c.owner)
        .await;
    let tool = tools
        .as_array()
        .expect("tools")
        .iter()
        .find(|t| t["name"] == "web_page")
        .expect("the tool added in the page");
    assert_eq!(tool["name"], "web_page", "{tool}");
    assert_eq!(tool["approval"]["rule"], "always", "{tool}");
    assert_eq!(
        tool["allowed_roles"],
        serde_json::json!(["editor", "member"])
    );
    assert_eq!(tool["enabled"], false, "turned off in the page");
    // The member was refused every admin page.
    for (path, status) in r["member_refused"].as_object().unwrap() {
        assert!(status == 403 || status == 404, "{path}: {status}");
    }
}
