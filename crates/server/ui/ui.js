// bastion Control UI: the one script of the pages (served from this origin; no inline
// script anywhere). Pages are rendered by the server; this sends every change to the API
// itself, with the session's cookies and its CSRF token, and shows the outcome.
"use strict";

(function () {
  const CSRF_COOKIE = "__Host-bastion_csrf";

  // A navigation this script starts is same-site, so the SameSite=Strict session cookies go
  // with it, even on a page first reached from another site (an OAuth callback's redirect),
  // where a browser reload would leave them out.
  function reloadPage() {
    location.assign(location.href);
  }

  function csrfToken() {
    for (const part of document.cookie.split(";")) {
      const [name, ...rest] = part.trim().split("=");
      if (name === CSRF_COOKIE) return decodeURIComponent(rest.join("="));
    }
    return "";
  }

  // One call to the API. A 401 (the short-lived access token ran out) is answered by one
  // refresh of the session, then the call is made again.
  async function call(method, path, body, accept) {
    const send = () =>
      fetch(path, {
        method,
        credentials: "same-origin",
        headers: Object.assign(
          { "X-CSRF-Token": csrfToken(), Accept: accept || "application/json" },
          body === undefined ? {} : { "Content-Type": "application/json" }
        ),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    let res = await send();
    if (res.status === 401 && (await refresh())) res = await send();
    return res;
  }

  async function refresh() {
    const res = await fetch("/api/v1/auth/refresh", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
      body: JSON.stringify({ mode: "cookie" }),
    });
    return res.ok;
  }

  // The detail of a problem+json answer, or a plain description.
  async function problemText(res) {
    try {
      const p = await res.json();
      return p.detail || p.title || "The request failed (" + res.status + ").";
    } catch (_) {
      return "The request failed (" + res.status + ").";
    }
  }

  function outcomeOf(el) {
    const scope = el.closest("form") || el.closest("td") || el.parentElement;
    let out = scope && scope.querySelector(".outcome");
    if (!out && scope) {
      out = document.createElement("p");
      out.className = "outcome";
      out.setAttribute("role", "status");
      scope.appendChild(out);
    }
    return out;
  }

  function say(el, text, ok) {
    const out = outcomeOf(el);
    if (!out) return;
    out.textContent = text;
    out.classList.toggle("error", !ok);
  }

  // A form's fields as the JSON object the API takes.
  function formBody(form) {
    const body = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled) continue;
      const kind = el.dataset.kind || "";
      if (kind === "list") {
        if (!body[el.name]) body[el.name] = [];
        if (el.checked) body[el.name].push(el.value);
        continue;
      }
      if (kind === "bool") {
        body[el.name] = el.checked;
        continue;
      }
      const value = el.value;
      if (value === "" && !("keepEmpty" in el.dataset)) continue;
      if (kind === "number") body[el.name] = Number(value);
      else if (kind === "json") body[el.name] = JSON.parse(value);
      else if (kind === "lines")
        body[el.name] = value.split("\n").map((s) => s.trim()).filter(Boolean);
      else body[el.name] = value;
    }
    return body;
  }

  function fill(template, data) {
    return template.replace(/\{(\w+)\}/g, (_, k) => encodeURIComponent(data[k] || ""));
  }

  function showSecret(form, value) {
    let box = form.querySelector(".secret");
    if (!box) {
      box = document.createElement("div");
      box.className = "secret";
      box.setAttribute("role", "alert");
      form.appendChild(box);
    }
    box.textContent = "";
    const label = document.createElement("p");
    label.textContent = form.dataset.secretLabel || "Shown once:";
    const code = document.createElement("code");
    code.textContent = value;
    const done = document.createElement("button");
    done.type = "button";
    done.textContent = "I have stored it";
    done.addEventListener("click", () => reloadPage());
    box.append(label, code, done);
  }

  function showPreview(form, data, body) {
    const box = form.querySelector("[data-preview]");
    const d = data.device || {};
    box.textContent = "";
    const p = document.createElement("p");
    p.textContent =
      "This code belongs to a " + (d.board || "device") + " (MAC …" + (d.mac_suffix || "") +
      ", firmware " + (d.app_version || "?") + ", first seen " + (d.first_seen_at || "?") +
      "). Bind it to this assistant, with you as its owner?";
    const yes = document.createElement("button");
    yes.type = "button";
    yes.textContent = "Yes, bind this device";
    yes.addEventListener("click", async () => {
      yes.disabled = true;
      const res = await call(form.dataset.method, form.dataset.api, Object.assign({}, body, { confirm: true }));
      if (res.ok) reloadPage();
      else {
        yes.disabled = false;
        say(form, await problemText(res), false);
      }
    });
    box.append(p, yes);
    box.hidden = false;
  }

  async function submitApiForm(form) {
    const body = formBody(form);
    const button = form.querySelector("[type=submit]");
    if (button) button.disabled = true;
    say(form, "Working…", true);
    try {
      const res = await call(form.dataset.method || "POST", form.dataset.api, body);
      if (!res.ok) {
        say(form, await problemText(res), false);
        return;
      }
      const data = res.status === 204 ? {} : await res.json().catch(() => ({}));
      const done = form.dataset.done || "reload";
      if (done === "secret" && data[form.dataset.secret]) {
        say(form, "Done.", true);
        showSecret(form, data[form.dataset.secret]);
      } else if (done === "preview" && data.confirm_required) {
        say(form, "", true);
        showPreview(form, data, body);
      } else if (done === "goto") {
        location.assign(fill(form.dataset.goto, data));
      } else {
        reloadPage();
      }
    } catch (e) {
      say(form, "The server could not be reached.", false);
    } finally {
      if (button) button.disabled = false;
    }
  }

  async function clickApiButton(button) {
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    button.disabled = true;
    const body = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
    try {
      const res = await call(button.dataset.method || "POST", button.dataset.api, body);
      if (res.ok) reloadPage();
      else say(button, await problemText(res), false);
    } catch (e) {
      say(button, "The server could not be reached.", false);
    } finally {
      button.disabled = false;
    }
  }

  // Sign-in: password, then a TOTP code when the account has one.
  function setUpLogin(root) {
    const next = root.dataset.next || "/ui/";
    const passwordForm = root.querySelector("#password-form");
    const totpForm = root.querySelector("#totp-form");
    let mfaToken = null;
    const post = (path, body) =>
      fetch(path, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(Object.assign(body, { mode: "cookie" })),
      });
    passwordForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = formBody(passwordForm);
      const res = await post("/api/v1/auth/login", body);
      if (!res.ok) return say(passwordForm, await problemText(res), false);
      const data = await res.json();
      if (data.mfa_required) {
        mfaToken = data.mfa_token;
        passwordForm.hidden = true;
        totpForm.hidden = false;
        totpForm.querySelector("input").focus();
        return;
      }
      location.assign(next);
    });
    totpForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const res = await post("/api/v1/auth/login/mfa", {
        mfa_token: mfaToken,
        code: formBody(totpForm).code,
      });
      if (!res.ok) return say(totpForm, await problemText(res), false);
      location.assign(next);
    });
    // A page that answered 401 may only have lost its access token: resume the session.
    // Once per minute at most, so a session that cannot be resumed shows the form.
    const last = Number(sessionStorage.getItem("bastion-resumed") || 0);
    if (location.pathname !== "/ui/login" && csrfToken() && Date.now() - last > 60000) {
      sessionStorage.setItem("bastion-resumed", String(Date.now()));
      refresh().then((ok) => {
        if (ok) reloadPage();
      });
    }
  }

  // Chat: send a message, create the conversation first if there is none, and show the
  // answer as its Server-Sent Events arrive.
  function setUpChat(form) {
    const list = document.getElementById("messages");
    const base = form.dataset.apiBase;
    const bubble = (role, text) => {
      const li = document.createElement("li");
      li.className = "message " + role;
      const who = document.createElement("span");
      who.className = "visually-hidden";
      who.textContent = role === "user" ? "You:" : "Assistant:";
      const content = document.createElement("div");
      content.className = "content";
      content.textContent = text;
      li.append(who, content);
      list.appendChild(li);
      return content;
    };
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const textarea = form.querySelector("textarea");
      const content = textarea.value.trim();
      if (!content) return;
      const button = form.querySelector("[type=submit]");
      button.disabled = true;
      say(form, "", true);
      try {
        if (!form.dataset.conversation) {
          const res = await call("POST", base + "/conversations", {});
          if (!res.ok) return say(form, await problemText(res), false);
          const c = await res.json();
          form.dataset.conversation = c.id;
          history.replaceState(null, "", form.dataset.page + "?c=" + encodeURIComponent(c.id));
        }
        const path = base + "/conversations/" + form.dataset.conversation + "/messages";
        const res = await call("POST", path, { content }, "text/event-stream");
        if (!res.ok) return say(form, await problemText(res), false);
        textarea.value = "";
        bubble("user", content);
        const answer = bubble("assistant", "");
        answer.parentElement.setAttribute("aria-busy", "true");
        await readEvents(res, (event, data) => {
          if (event === "delta") answer.textContent += data.text || "";
          else if (event === "done") {
            answer.textContent = (data.answer && data.answer.content) || answer.textContent;
            const id = (data.answer && data.answer.id) || "";
            answer.parentElement.dataset.messageId = id;
            if (id) answer.parentElement.appendChild(feedbackButtons(path + "/" + encodeURIComponent(id) + "/feedback"));
          } else if (event === "error") say(form, data.detail || "The model failed.", false);
        });
        answer.parentElement.removeAttribute("aria-busy");
      } catch (e) {
        say(form, "The server could not be reached.", false);
      } finally {
        button.disabled = false;
      }
    });
  }

  // The rating buttons of an answer (as the server renders them on stored answers).
  function feedbackButtons(api) {
    const div = document.createElement("div");
    div.className = "feedback";
    for (const [label, rating] of [["Helpful", "up"], ["Not helpful", "down"]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.dataset.api = api;
      b.dataset.method = "PUT";
      b.dataset.body = JSON.stringify({ rating });
      div.appendChild(b);
    }
    return div;
  }

  // The text/event-stream format (WHATWG HTML, server-sent events): fields per line,
  // events separated by a blank line; `data` lines joined by newlines.
  async function readEvents(res, onEvent) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let event = "message";
    let data = [];
    const dispatch = () => {
      if (data.length) {
        let parsed = {};
        try {
          parsed = JSON.parse(data.join("\n"));
        } catch (_) {}
        onEvent(event, parsed);
      }
      event = "message";
      data = [];
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + (buffer.startsWith("\r\n", nl) ? 2 : 1));
        if (line === "") dispatch();
        else if (line.startsWith(":")) continue;
        else {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? "" : line.slice(colon + 1);
          if (val.startsWith(" ")) val = val.slice(1);
          if (field === "event") event = val;
          else if (field === "data") data.push(val);
        }
      }
    }
    dispatch();
  }

  // Devices: follow the assistant's device events and update the rows they name.
  function followDevices(root) {
    const events = root.dataset.deviceEvents;
    const base = root.dataset.deviceBase;
    // The page was rendered from the devices as they were at this event: follow from it.
    let after = Number(root.dataset.deviceCursor || 0);
    const loop = async () => {
      for (;;) {
        let res;
        try {
          res = await call("GET", events + "?wait_secs=25&after=" + after);
        } catch (_) {
          await new Promise((r) => setTimeout(r, 5000));
          continue;
        }
        if (!res.ok) return;
        const page = await res.json();
        if (page.gap) {
          // More happened than the server keeps: show the devices as they are now.
          if (!document.activeElement || document.activeElement === document.body) return reloadPage();
        }
        after = page.cursor;
        for (const e of page.events || []) await refreshDevice(e.device_id);
      }
    };
    const refreshDevice = async (id) => {
      const row = root.querySelector('tr[data-device-id="' + CSS.escape(id) + '"]');
      if (!row) {
        // A new device: show it, unless the user is typing.
        if (!document.activeElement || document.activeElement === document.body) reloadPage();
        return;
      }
      const res = await call("GET", base + "/" + encodeURIComponent(id));
      if (!res.ok) return row.remove();
      const d = await res.json();
      const set = (field, text) => {
        const cell = row.querySelector('[data-field="' + field + '"]');
        if (cell) cell.textContent = text;
      };
      set("status", d.status);
      set("online", d.online ? "online" : "offline");
      set("last_seen_at", (d.last_seen_at || "").slice(0, 16).replace("T", " "));
      set("last_ip", d.last_ip || "");
    };
    loop();
  }

  function start() {
    for (const form of document.querySelectorAll("form[data-api]")) {
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        submitApiForm(form);
      });
    }
    document.addEventListener("click", (ev) => {
      const button = ev.target.closest("button[data-api]");
      if (button) clickApiButton(button);
      const signOut = ev.target.closest("button[data-sign-out]");
      if (signOut) {
        call("POST", "/api/v1/auth/logout", {}).finally(() => location.assign("/ui/login"));
      }
    });
    for (const select of document.querySelectorAll("select[data-navigate]")) {
      select.addEventListener("change", () => location.assign(select.value));
    }
    const login = document.querySelector("[data-login]");
    if (login) setUpLogin(login);
    const chat = document.querySelector("form[data-chat]");
    if (chat) setUpChat(chat);
    const devices = document.querySelector("[data-device-events]");
    if (devices) followDevices(devices);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
