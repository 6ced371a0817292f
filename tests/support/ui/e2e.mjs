// Drives bastion's Control UI in Debian's Chromium (playwright-core), for tests/ui.rs.
//
// The Rust test starts bastion with a fake provider and a device waiting with an activation
// code, and passes what it set up in the environment. This script signs in as the owner,
// chats (the answer must stream in), creates an API key (its secret shown once), binds the
// device by its code, visits every page and saves screenshots; then signs in as a member and
// checks that admin pages and buttons are absent and their URLs refused. Any CSP violation,
// console error or page error fails the run, except the refusals it provokes on purpose.
// It prints one JSON line of results for the Rust test to check against the API.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`missing ${name}`);
  return v;
};
const BASE = env("UI_BASE_URL");
const ASSISTANT = env("UI_ASSISTANT_ID");
const WORKSPACE = env("UI_WORKSPACE_ID");
const OWNER = env("UI_OWNER_EMAIL");
const MEMBER = env("UI_MEMBER_EMAIL");
const PASSWORD = env("UI_PASSWORD");
const DEVICE_CODE = env("UI_DEVICE_CODE");
const PROVIDER_SECRET = env("UI_PROVIDER_SECRET");
const MFA_USER = env("UI_MFA_EMAIL");
const MFA_CODE = env("UI_MFA_CODE");
const OAUTH_REDIRECT = env("UI_OAUTH_REDIRECT");
const SHOTS = env("UI_SCREENSHOTS");
const CHROMIUM = process.env.UI_CHROMIUM || "/usr/bin/chromium";

mkdirSync(SHOTS, { recursive: true });
const results = {};
const problems = [];
// Addresses refused on purpose (401 before sign-in, 403 for a member): Chromium logs their
// load as failed, which is expected there and nowhere else.
const refused = new Set();
async function gotoRefused(page, url) {
  refused.add(url);
  return page.goto(url);
}

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function watch(page, who) {
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`)
    );
  });
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const text = msg.text();
    // A navigation refused on purpose (401 before sign-in, 403 for a member) is logged by
    // Chromium as a failed load; nothing else may be.
    const at = (msg.location() && msg.location().url) || "";
    if (/status of 40[134]/.test(text) && refused.has(at)) return;
    problems.push(`${who} console error on ${page.url()}: ${text}`);
  });
  page.on("pageerror", (err) => problems.push(`${who} page error on ${page.url()}: ${err}`));
}

async function cspViolations(page) {
  const v = await page.evaluate(() => window.__csp || []);
  for (const x of v) problems.push(`CSP violation on ${page.url()}: ${x}`);
}

// Every control has an accessible name; nothing is wider than the screen.
async function checkPage(page, label) {
  const unlabeled = await page.evaluate(() => {
    const bad = [];
    for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea, button")) {
      if (el.closest("[hidden]")) continue;
      const named =
        (el.labels && el.labels.length > 0) ||
        el.getAttribute("aria-label") ||
        (el.tagName === "BUTTON" && el.textContent.trim());
      if (!named) bad.push(el.outerHTML.slice(0, 80));
    }
    return bad;
  });
  check(unlabeled.length === 0, `${label}: controls without a label: ${unlabeled.join(" | ")}`);
  const csp = await page.evaluate(async () => {
    const r = await fetch(location.href, { credentials: "same-origin" });
    return r.headers.get("content-security-policy") || "";
  });
  check(csp.includes("script-src 'self'") && csp.includes("frame-ancestors 'none'"), `${label}: CSP header ${csp}`);
  check(!csp.includes("unsafe-inline") && !csp.includes("unsafe-eval"), `${label}: CSP allows inline or eval`);
  await cspViolations(page);
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function signIn(page, email) {
  const res = await gotoRefused(page, `${BASE}/ui/`);
  check(res.status() === 401, `/ui/ before sign-in answers 401, got ${res.status()}`);
  await page.waitForSelector("#password-form");
  await page.fill("#f-email", email);
  await page.fill("#f-password", PASSWORD);
  return page;
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  // ---- a user with TOTP: first, while the code is fresh ----
  const mfa = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const p2 = await mfa.newPage();
  await watch(p2, "mfa");
  await signIn(p2, MFA_USER);
  await p2.click("#password-form button[type=submit]");
  await p2.waitForSelector("#totp-form:not([hidden])");
  check(await p2.isHidden("#password-form"), "the password step is done");
  await checkPage(p2, "sign-in totp");
  // A wrong code is refused (401, logged by Chromium as a failed load) and said so.
  const mfaStep = `${BASE}/api/v1/auth/login/mfa`;
  refused.add(mfaStep);
  await p2.fill("#f-code", "000000");
  await p2.click("#totp-form button[type=submit]");
  await p2.waitForSelector("#totp-form .outcome.error");
  await p2.waitForTimeout(200);
  refused.delete(mfaStep);
  await shot(p2, "sign-in-totp");
  await p2.fill("#f-code", MFA_CODE);
  await p2.click("#totp-form button[type=submit]");
  await p2.waitForSelector("text=Your assistants");
  results.mfa_signed_in = true;
  await mfa.close();

  // ---- the owner ----
  const owner = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await owner.newPage();
  await watch(page, "owner");
  await signIn(page, OWNER);
  await checkPage(page, "sign-in");
  await shot(page, "sign-in");
  // The sign-in page stands at /ui/ (which answered 401): signed in, it shows the list.
  await page.click("#password-form button[type=submit]");
  await page.waitForSelector("text=Your assistants");
  await shot(page, "assistants");

  const A = `${BASE}/ui/assistants/${ASSISTANT}`;
  await page.goto(A);
  await page.waitForSelector("dl.stats");
  await checkPage(page, "overview");
  const navLinks = await page.$$eval("nav.side a", (as) => as.map((a) => a.textContent.trim()));
  for (const l of ["Chat", "Members", "API keys", "Tools", "Devices", "Settings", "Provider keys", "Audit log"]) {
    check(navLinks.includes(l), `the owner's navigation has ${l}: ${navLinks}`);
  }
  await shot(page, "overview");

  // Chat: the answer streams in.
  await page.goto(`${A}/chat`);
  await checkPage(page, "chat");
  await page.fill("#f-content", "Hello from the browser");
  await page.evaluate(() => {
    window.__states = new Set();
    new MutationObserver(() => {
      const a = document.querySelector("#messages li.assistant .content");
      if (a) window.__states.add(a.textContent);
    }).observe(document.getElementById("messages"), { subtree: true, childList: true, characterData: true });
  });
  await page.click("#chat-form button[type=submit]");
  await page.waitForFunction(() => {
    const a = document.querySelector("#messages li.assistant");
    return a && a.dataset.messageId;
  });
  const answer = await page.textContent("#messages li.assistant .content");
  check(answer === "You said: Hello from the browser", `the answer: ${answer}`);
  const states = await page.evaluate(() => [...window.__states].filter(Boolean).length);
  check(states >= 3, `the answer arrived in parts (${states} states seen)`);
  check(/\?c=/.test(page.url()), `the chat's address names its conversation: ${page.url()}`);
  results.conversation = new URL(page.url()).searchParams.get("c");
  // Rated on the streamed answer; the page then shows the stored conversation.
  await Promise.all([page.waitForNavigation(), page.click("#messages li.assistant button:has-text('Helpful')")]);
  await page.waitForSelector("#messages li.assistant");
  check((await page.$$("#messages li.message")).length === 2, "the conversation shows both messages after a reload");
  await shot(page, "chat");

  // An API key: the secret is shown once.
  await page.goto(`${A}/api-keys`);
  await checkPage(page, "api keys");
  await page.fill("#f-name", "made-in-the-ui");
  await page.click("#api-key-form button[type=submit]");
  await page.waitForSelector(".secret code");
  results.api_key = (await page.textContent(".secret code")).trim();
  check(results.api_key.startsWith("bst_"), `the key shown: ${results.api_key.slice(0, 4)}`);
  await shot(page, "api-key-created");
  await page.click(".secret button");
  await page.waitForSelector("td:has-text('made-in-the-ui')");
  check(!(await page.content()).includes(results.api_key), "the key is not shown again");

  // A device bound by its code, after a look at which device it is.
  await page.goto(`${A}/devices`);
  await checkPage(page, "devices");
  await page.fill("#f-code", DEVICE_CODE);
  await page.click("#bind-form button[type=submit]");
  await page.waitForSelector("[data-preview]:not([hidden]) button");
  const preview = await page.textContent("[data-preview]");
  check(/MAC …/.test(preview), `the preview names the device: ${preview}`);
  await Promise.all([page.waitForNavigation(), page.click("[data-preview] button")]);
  await page.waitForSelector("tr[data-device-id]");
  results.device_status = (await page.textContent("tr[data-device-id] [data-field=status]")).trim();
  // The device connects now (the Rust side sees it bound): the row turns online by itself.
  await page.evaluate(() => (window.__notReloaded = true));
  await page.waitForFunction(
    () => document.querySelector("tr[data-device-id] [data-field=online]").textContent === "online",
    null,
    { timeout: 30000 }
  );
  results.device_online_live = await page.evaluate(() => window.__notReloaded === true);
  await shot(page, "devices");

  // A custom role, created and then offered for members.
  await page.goto(`${A}/members`);
  await page.fill("#role-form #f-name", "support-desk");
  await page.check("#role-form input[value='chat']");
  await page.check("#role-form input[value='feedback.read']");
  await Promise.all([page.waitForNavigation(), page.click("#role-form button[type=submit]")]);
  await page.waitForSelector("td:has-text('support-desk')");
  check((await page.$$("#invite-form option[value='support-desk']")).length === 1, "the new role is offered");

  // A built-in tool, added with its approval rule, then turned off.
  await page.goto(`${A}/tools`);
  await page.selectOption("#f-builtin", "fetch_url");
  await page.fill("#tool-form #f-name", "web_page");
  await page.selectOption("#f-approval", { label: "every call waits" });
  await page.fill("#f-allowed_roles", "editor\nmember");
  await Promise.all([page.waitForNavigation(), page.click("#tool-form button[type=submit]")]);
  await page.waitForSelector("td:has-text('web_page')");
  // (The bound device's own MCP tools are listed too.)
  const row = "tbody tr:has(td:text-is('web_page'))";
  const toolRow = await page.textContent(row);
  check(toolRow.includes("always"), `the approval rule is shown: ${toolRow}`);
  await Promise.all([page.waitForNavigation(), page.click(`${row} button:has-text('Turn off')`)]);
  await page.waitForSelector(`${row} button:has-text('Turn on')`);
  results.tool_added = true;

  for (const [path, name, text] of [
    ["/members", "members", "Invite"],
    ["/tools", "tools", "Add a built-in tool"],
    ["/mcp-servers", "mcp-servers", "Connect an MCP server"],
    ["/approvals", "approvals", "Nothing is waiting"],
    ["/settings", "settings", "System prompt"],
    ["/conversations", "conversations", "Last message"],
  ]) {
    await page.goto(`${A}${path}`);
    await page.waitForSelector(`text=${text}`);
    await checkPage(page, name);
    await shot(page, name);
  }
  await page.goto(`${A}/conversations/${results.conversation}`);
  await page.waitForSelector("text=Model calls");
  await checkPage(page, "conversation");
  check((await page.$$("h2:has-text('Model calls') + div table tbody tr")).length >= 1, "the conversation's trace is listed");
  await shot(page, "conversation-traces");
  await page.goto(`${BASE}/ui/workspaces/${WORKSPACE}/provider-keys?from=${ASSISTANT}`);
  await page.waitForSelector("text=Add a provider key");
  await checkPage(page, "provider keys");
  check(!(await page.content()).includes(PROVIDER_SECRET), "a provider key's secret is never on the page");
  await shot(page, "provider-keys");
  await page.goto(`${BASE}/ui/workspaces/${WORKSPACE}/audit?from=${ASSISTANT}`);
  await page.waitForSelector("text=device.bind");
  await checkPage(page, "audit");
  await shot(page, "audit-log");

  // On a phone.
  await page.setViewportSize({ width: 390, height: 844 });
  // Every page fits a phone's width (wide tables scroll inside their own box).
  for (const path of ["", "/chat", "/conversations", "/members", "/api-keys", "/tools", "/mcp-servers",
    "/approvals", "/devices", "/settings"]) {
    await page.goto(`${A}${path}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `${path || "overview"}: the page is ${overflow}px wider than a phone`);
    if (path === "/chat" || path === "/devices") await shot(page, `phone${path.replace("/", "-")}`);
  }

  await Promise.all([page.waitForURL(`${BASE}/ui/login`), page.click("button[data-sign-out]")]);
  const after = await gotoRefused(page, `${A}/api-keys`);
  check(after.status() === 401, `after signing out the page answers 401, got ${after.status()}`);
  await owner.close();

  // ---- a member ----
  const member = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const m = await member.newPage();
  await watch(m, "member");
  // With the OAuth button: the provider sends the browser to the callback at localhost,
  // forwarded here to the server; the session's SameSite=Strict cookies are not sent on the
  // last redirect of a chain that crossed sites, so the page resumes the session itself.
  await m.route(`${OAUTH_REDIRECT}**`, (route) => {
    const u = new URL(route.request().url());
    return route.fulfill({ status: 302, headers: { location: `${BASE}${u.pathname}${u.search}` } });
  });
  await signIn(m, MEMBER);
  await m.click("a.button:has-text('Sign in with mock')");
  await m.waitForSelector("text=Your assistants");
  check((await m.textContent("ul.cards")).includes("member"), "the member's assistants are listed");
  results.oauth_signed_in = true;
  await m.goto(A);
  await m.waitForSelector("nav.side");
  const memberLinks = await m.$$eval("nav.side a", (as) => as.map((a) => a.textContent.trim()));
  check(JSON.stringify(memberLinks) === JSON.stringify(["Overview", "Chat", "Conversations"]),
    `a member's navigation: ${memberLinks}`);
  await shot(m, "member-overview");
  await m.goto(`${A}/chat`);
  check((await m.$$("[data-api*='/api-keys'], [data-api*='/members'], [data-api*='/devices']")).length === 0,
    "no admin buttons on a member's chat page");
  results.member_refused = {};
  for (const path of ["/members", "/api-keys", "/devices", "/settings", "/tools", "/mcp-servers", "/approvals"]) {
    const res = await gotoRefused(m, `${A}${path}`);
    results.member_refused[path] = res.status();
    check(res.status() === 403, `a member gets 403 on ${path}, got ${res.status()}`);
    check(await m.isVisible("text=Not allowed"), `the refusal page on ${path}`);
  }
  for (const path of [`/ui/workspaces/${WORKSPACE}/provider-keys`, `/ui/workspaces/${WORKSPACE}/audit`]) {
    const res = await gotoRefused(m, `${BASE}${path}`);
    results.member_refused[path] = res.status();
    check([403, 404].includes(res.status()), `a member is refused ${path}: ${res.status()}`);
  }
  await cspViolations(m);
  await member.close();
} catch (e) {
  problems.push(String(e && e.stack ? e.stack : e));
} finally {
  await browser.close();
}

console.log(JSON.stringify({ results, problems }));
process.exit(problems.length ? 1 : 0);
