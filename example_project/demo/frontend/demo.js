// The django-tokens demo front end: plain JavaScript, no build step.
//
// Served by the example project at /demo/, or from any other origin listed in
// CORS_ALLOWED_ORIGINS with ?api=<the API's origin>. The access token lives in memory only.
// In the refresh-cookie mode the refresh token never reaches this script: the browser keeps
// it in an HttpOnly cookie and sends it to the refresh path alone. In body mode (the
// default) the page has to hold it in memory itself.
"use strict";

(() => {
  const params = new URLSearchParams(window.location.search);
  const API = (params.get("api") || window.location.origin).replace(/\/+$/, "");
  // How often the page asks /api/me, which is how it notices a revoked session.
  const POLL_SECONDS = Math.max(1, Number(params.get("poll")) || 5);

  const $ = (id) => document.getElementById(id);
  let accessToken = null;
  let bodyRefreshToken = null;
  let refreshTimer = null;
  let pollTimer = null;
  let refreshes = 0;

  function log(text) {
    const item = document.createElement("li");
    item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
    $("log").append(item);
  }

  function status(text, kind) {
    $("status").textContent = text;
    $("status").className = kind || "";
  }

  function show(signedIn) {
    $("session-panel").hidden = !signedIn;
    $("login-panel").hidden = signedIn;
  }

  // fetch() with JSON in and out; the outcome is always {ok, status, data}, never a throw.
  async function call(path, { method = "GET", body, token, withCookies = false } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(API + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        // "include" lets the browser store and send the refresh cookie cross-origin; the
        // API grants it only to the origins it lists.
        credentials: withCookies ? "include" : "omit",
        cache: "no-store",
      });
    } catch (error) {
      return {
        ok: false,
        status: 0,
        data: { error: "network_error", message: `Blocked or unreachable (CORS?): ${error}` },
      };
    }
    let data = null;
    if (response.status !== 204) {
      try {
        data = await response.json();
      } catch (error) {
        data = { error: "not_json", message: `HTTP ${response.status} without a JSON body` };
      }
    }
    return { ok: response.ok, status: response.status, data };
  }

  function describe(result) {
    const data = result.data || {};
    return `${result.status} ${data.error || ""}${data.message ? `: ${data.message}` : ""}`;
  }

  function claimsOf(jwt) {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=");
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  }

  function accept(tokens) {
    accessToken = tokens.access_token;
    const cookieMode = !("refresh_token" in tokens);
    bodyRefreshToken = cookieMode ? null : tokens.refresh_token;
    const claims = claimsOf(accessToken);
    $("claims").textContent = JSON.stringify(claims, null, 2);
    $("who").textContent = claims.username || claims.preferred_username || claims.sub;
    $("mode").textContent = cookieMode
      ? "in an HttpOnly cookie this page cannot read (refresh-cookie mode)"
      : "in this page's memory (body mode; the refresh-cookie mode keeps it from scripts)";
    $("mode").dataset.mode = cookieMode ? "cookie" : "body";
    $("expires").textContent =
      `${new Date(claims.exp * 1000).toLocaleTimeString()} (in ${tokens.expires_in} s)`;
    $("page-cookies").textContent = document.cookie || "(none)";
    show(true);
    scheduleRefresh(tokens.expires_in);
    if (pollTimer === null) pollTimer = setInterval(callMe, POLL_SECONDS * 1000);
    callMe();
  }

  // Refresh a minute before expiry, or at three quarters of a short lifetime.
  function scheduleRefresh(expiresIn) {
    clearTimeout(refreshTimer);
    const lead = expiresIn > 120 ? expiresIn - 60 : expiresIn * 0.75;
    refreshTimer = setTimeout(() => refresh("silent"), Math.max(1, lead) * 1000);
  }

  function ended(message, kind) {
    clearTimeout(refreshTimer);
    clearInterval(pollTimer);
    refreshTimer = null;
    pollTimer = null;
    accessToken = null;
    bodyRefreshToken = null;
    show(false);
    status(message, kind || "error");
    log(message);
  }

  async function refresh(why) {
    const body = bodyRefreshToken ? { refresh_token: bodyRefreshToken } : undefined;
    const result = await call("/api/token/refresh", { method: "POST", body, withCookies: true });
    if (!result.ok) {
      ended(`The session was revoked or has expired: refresh refused (${describe(result)}).`);
      return false;
    }
    if (why === "silent") {
      refreshes += 1;
      $("refresh-count").textContent = String(refreshes);
    }
    log(`Refreshed (${why}): new access token, and the refresh token rotated.`);
    accept(result.data);
    return true;
  }

  async function callMe() {
    if (!accessToken) return;
    const result = await call("/api/me", { token: accessToken });
    if (result.ok) {
      $("me").textContent = JSON.stringify(result.data, null, 2);
      return;
    }
    $("me").textContent = JSON.stringify(result.data, null, 2);
    if (result.status === 401) {
      // Refused before it expired: revoked. A refresh tells revoked from merely expired.
      log(`/api/me refused the access token (${describe(result)}).`);
      await refresh("after a 401");
    }
  }

  async function login(event) {
    event.preventDefault();
    status("Logging in…");
    const result = await call("/api/token", {
      method: "POST",
      body: { username: $("username").value, password: $("password").value },
      withCookies: true,
    });
    $("password").value = "";
    if (!result.ok) {
      status(`Login refused (${describe(result)}).`, "error");
      log(`Login refused (${describe(result)}).`);
      return;
    }
    refreshes = 0;
    $("refresh-count").textContent = "0";
    status("Signed in.", "ok");
    log("Logged in with the password service.");
    accept(result.data);
  }

  async function logout() {
    const result = await call("/api/token/logout", {
      method: "POST",
      token: accessToken,
      withCookies: true,
    });
    if (result.status === 204) {
      ended("Logged out: the session is revoked and the refresh cookie cleared.", "ok");
    } else {
      ended(`Logout refused (${describe(result)}); the session may already be revoked.`);
    }
  }

  async function start() {
    $("api").textContent = API;
    $("origin").textContent = window.location.origin;
    $("login-form").addEventListener("submit", login);
    $("call-me").addEventListener("click", callMe);
    $("refresh-now").addEventListener("click", () => refresh("on request"));
    $("logout").addEventListener("click", logout);
    // A refresh cookie from an earlier visit opens the session without a password.
    const result = await call("/api/token/refresh", { method: "POST", withCookies: true });
    if (result.ok) {
      log("Session restored from the refresh cookie.");
      status("Signed in (restored from the refresh cookie).", "ok");
      accept(result.data);
    } else {
      show(false);
    }
    document.body.dataset.ready = "true";
  }

  start();
})();
