// tilegate console: sign in with a pasted token, see the paths it reaches and their
// Integrate URLs, create narrower tokens (fence drawn on a map), list and revoke them.
//
// The token lives in sessionStorage (this tab only) and goes to the token API as
// `Authorization: Bearer`; no cookies. It is never written into the page again.
// Markup is built with createElement/textContent only: nothing from the API is ever
// parsed as HTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const STORE_KEY = "tilegate.console.token";
  const TOKEN_RE = /^[a-z0-9]{1,16}_[0-9A-Za-z]{49}$/;
  const TIERS = ["view", "viewPlus", "share", "edit", "fullView", "editPlus", "admin"];
  const API = "/account/security/accessToken";
  const PLACEHOLDER = "YOUR_TOKEN";

  const state = { token: null, me: null, byId: new Map(), tokens: [], createMap: null, previewMap: null, expiryTimer: null };

  /** Builds an element: `el("td", {class: "x", text: "…"}, child, …)`. */
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else if (k === "onclick") e.addEventListener("click", v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c != null) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && typeof body.detail === "string" && body.detail) || "the token API answered " + status);
      this.status = status;
      this.body = body;
    }
  }

  async function api(method, path, body) {
    const headers = { Authorization: "Bearer " + state.token, Accept: "application/json" };
    const init = { method, headers, credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (res.status === 401) {
      signOut(sessionEnded(data));
      throw new ApiError(401, data);
    }
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  }

  function sessionEnded(body) {
    const reason = body && body.reason;
    const why = {
      expired_token: "the token has expired",
      revoked_token: "the token was revoked",
      unknown_token: "the gateway does not know this token",
      malformed_token: "this is not a tilegate token",
    }[reason] || "the token API refused the token";
    return "Signed out: " + why + ". Sign in with another token.";
  }

  // ---- sign in / out -------------------------------------------------------------

  function showSignIn(message) {
    $("app").hidden = true;
    $("signout").hidden = true;
    $("who").textContent = "";
    $("signin").hidden = false;
    $("signin-error").textContent = message || "";
    $("token-input").value = "";
    $("token-input").focus();
  }

  function signOut(message) {
    sessionStorage.removeItem(STORE_KEY);
    state.token = null;
    state.me = null;
    if (state.expiryTimer) clearTimeout(state.expiryTimer);
    showSignIn(message);
  }

  async function signIn(token, remember) {
    state.token = token;
    let me;
    try {
      me = await api("GET", "/account/security/paths");
    } catch (e) {
      if (e.status === 401) return; // signOut already showed why
      state.token = null;
      sessionStorage.removeItem(STORE_KEY);
      const reason = e.body && e.body.reason;
      showSignIn(reason === "scope_ogc_only"
        ? "This token has scope `ogc`: it works for maps but not for the token API. Sign in with a token of scope `all`."
        : "Sign-in failed: " + e.message);
      return;
    }
    if (remember) sessionStorage.setItem(STORE_KEY, token);
    state.me = me;
    state.byId = new Map(me.paths.map((p) => [p.id, p]));
    $("signin").hidden = true;
    $("app").hidden = false;
    $("signout").hidden = false;
    const exp = me.token.expiresAt;
    $("who").textContent = "Signed in as token " + me.token.id.slice(0, 8) + "… · " + (exp ? "expires " + fmtTime(exp) : "never expires");
    if (state.expiryTimer) clearTimeout(state.expiryTimer);
    if (exp) {
      const ms = Date.parse(exp) - Date.now();
      if (ms < 2147483647) state.expiryTimer = setTimeout(() => signOut("Signed out: the token has expired. Sign in with another token."), Math.max(0, ms));
    }
    renderTree();
    setupCreate();
    showView("paths-view");
  }

  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const value = $("token-input").value.trim();
    $("token-input").value = "";
    if (!TOKEN_RE.test(value)) {
      showSignIn("That is not a tilegate token: expected a lower-case prefix, `_`, then 49 letters and digits (the paste had "
        + value.length + " characters). Paste the whole token, without quotes or `Bearer`.");
      return;
    }
    signIn(value, true);
  });
  $("signout").addEventListener("click", () => signOut("Signed out."));

  // ---- views ---------------------------------------------------------------------

  function showView(id) {
    for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== id;
    for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t.dataset.view === id);
    if (id === "tokens-view") loadTokens();
    if (id === "create-view" && state.createMap) { state.createMap.fitCanvas(); state.createMap.draw(); }
  }
  for (const t of document.querySelectorAll(".tab")) t.addEventListener("click", () => showView(t.dataset.view));

  function fmtTime(s) {
    if (!s) return "—";
    const d = new Date(s);
    return isNaN(d) ? s : d.toISOString().replace("T", " ").replace(/:\d\d\.\d+Z$|:\d\dZ$/, " UTC");
  }

  function copyRow(value, label) {
    const input = el("input", { readonly: true, spellcheck: "false", value, "aria-label": label || "URL" });
    input.value = value;
    const button = el("button", { type: "button", class: "copy", text: "Copy" });
    button.addEventListener("click", async () => {
      try { await navigator.clipboard.writeText(input.value); } catch (_) { input.select(); document.execCommand("copy"); }
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
    return el("div", { class: "copyrow" }, input, button);
  }

  // ---- the path tree and Integrate -------------------------------------------------

  function renderTree() {
    const tree = $("tree");
    tree.replaceChildren();
    const children = new Map();
    for (const p of state.me.paths) {
      const k = p.parent || "";
      if (!children.has(k)) children.set(k, []);
      children.get(k).push(p);
    }
    const build = (parent) => {
      const ul = parent === "" ? tree : el("ul");
      for (const p of children.get(parent) || []) {
        const node = el("button", { type: "button", class: "node", "data-path": p.id, text: p.id });
        node.addEventListener("click", () => showIntegrate(p.id));
        const li = el("li", {}, node, el("span", { class: "badge", text: p.kind }), el("span", { class: "badge tier", text: p.access.accessTier }));
        if (p.layers && p.layers.length) li.append(el("span", { class: "muted", text: " layers: " + p.layers.join(", ") }));
        if (children.has(p.id)) li.append(build(p.id));
        ul.append(li);
      }
      return ul;
    };
    build("");
    if (!state.me.paths.length) tree.append(el("li", { class: "muted", text: "This token reaches no declared path." }));
  }

  /** The Integrate URLs of a path, for `token` (or the placeholder when `null`). */
  function integrateBlock(p, token) {
    const shown = token || PLACEHOLDER;
    const box = el("div", { class: "integrate-urls" });
    if (!p.integrate.length) {
      box.append(el("p", { class: "muted", text: "A folder: its layers have the URLs." }));
      return box;
    }
    const table = el("table", { class: "urls" });
    for (const u of p.integrate) {
      const sep = u.url.includes("?") ? "&" : "?";
      const cell = el("td", {},
        el("div", { class: "muted", text: "Header form (Authorization: Bearer " + shown + ")" }), copyRow(u.url, u.label));
      if (state.me.queryToken) {
        cell.append(el("div", { class: "muted", text: "Query form, for clients that cannot send headers" }),
          copyRow(u.url + sep + "token=" + shown, u.label + " with token"));
      }
      const settings = [];
      if (u.qgis) settings.push("QGIS: " + u.qgis + "\n  Authentication ▸ Basic: user tilegate, password " + shown);
      if (u.gdal) settings.push("GDAL: export GDAL_HTTP_HEADERS=\"Authorization: Bearer " + shown + "\"\n  " + u.gdal);
      if (settings.length) cell.append(el("pre", { class: "settings", text: settings.join("\n") }));
      table.append(el("tr", { class: "integration", "data-protocol": u.protocol, "data-check": u.check },
        el("td", {}, el("strong", { text: u.label })), cell));
    }
    box.append(table);
    return box;
  }

  function showIntegrate(id) {
    const p = state.byId.get(id);
    for (const n of document.querySelectorAll("#tree .node")) n.classList.toggle("selected", n.dataset.path === id);
    const box = $("integrate");
    box.replaceChildren(el("h2", { text: "Integrate: " + p.id }));
    const a = p.access;
    const facts = el("p", {}, p.kind + " · your tier ", el("strong", { text: a.accessTier }),
      a.grantedOn !== p.id ? " (granted on " + a.grantedOn + ")" : "",
      " · fence: " + fenceSummary(a.geoFence),
      a.propertyFence ? " · properties: " + (a.propertyFence.join(", ") || "geometry only") : "");
    box.append(facts);
    if (p.properties && p.properties.length) box.append(el("p", { class: "muted", text: "Declared properties: " + p.properties.join(", ") }));
    box.append(el("p", { class: "muted", text: "Replace " + PLACEHOLDER + " with the token you give the client." }));
    box.append(integrateBlock(p, null));
    if (TIERS.indexOf(a.accessTier) >= TIERS.indexOf("share")) {
      const b = el("button", { type: "button", id: "integrate-create", text: "Create a token for " + p.id });
      b.addEventListener("click", () => { $("c-path").value = p.id; pathChanged(); showView("create-view"); });
      box.append(b);
    }
  }

  function fenceSummary(g) {
    if (!g) return "none";
    const parts = [];
    if (g.tiles) parts.push(g.tiles.length + " tile" + (g.tiles.length === 1 ? "" : "s"));
    if (g.maxZoom != null) parts.push("maxZoom " + g.maxZoom);
    return parts.join(", ") || "none";
  }

  // ---- create ----------------------------------------------------------------------

  function shareable() {
    return state.me.paths.filter((p) => TIERS.indexOf(p.access.accessTier) >= TIERS.indexOf("share"));
  }

  /** A raster layer the token may view, for the base map (same origin only: CSP). */
  function baseLayer() {
    const origin = state.me.publicUrl ? new URL(state.me.publicUrl, location.href).origin : location.origin;
    if (origin !== location.origin) return null;
    const p = state.me.paths.find((q) => q.kind === "raster" && !q.access.geoFence && q.integrate.some((u) => u.protocol === "xyz"))
      || state.me.paths.find((q) => q.kind === "raster" && q.integrate.some((u) => u.protocol === "xyz"));
    return p ? p.id : null;
  }

  function setupCreate() {
    const paths = shareable();
    $("no-share").hidden = paths.length > 0;
    $("create-form").hidden = paths.length === 0;
    $("c-result").hidden = true;
    $("tab-create").classList.toggle("disabled", paths.length === 0);
    if (!paths.length) {
      $("notice").hidden = false;
      $("notice").textContent = "This token holds less than `share` on every path: it can see paths and their URLs but cannot create tokens.";
      return;
    }
    $("notice").hidden = true;
    const select = $("c-path");
    select.replaceChildren(...paths.map((p) => el("option", { value: p.id, text: p.id + " (" + p.kind + ", you: " + p.access.accessTier + ")" })));
    if (!state.createMap) {
      state.createMap = new window.TileMap($("c-map"), { zoom: 1, onChange: tilesChanged });
      // For the browser tests: where a place is on the map (only same-origin script runs here).
      window.tilegateCreateMap = state.createMap;
      const base = baseLayer();
      if (base) {
        state.createMap.base = async (z, x, y) => {
          const r = await fetch("/ogc/xyz/" + encodeURIComponent(base) + "/" + z + "/" + x + "/" + y + ".png",
            { headers: { Authorization: "Bearer " + state.token }, credentials: "omit", referrerPolicy: "no-referrer" });
          return r.ok ? createImageBitmap(await r.blob()) : null;
        };
      }
    }
    pathChanged();
  }

  function pathChanged() {
    const p = state.byId.get($("c-path").value);
    if (!p) return;
    const held = TIERS.indexOf(p.access.accessTier);
    const tier = $("c-tier");
    tier.replaceChildren(...TIERS.slice(0, held + 1).map((t) => el("option", { value: t, text: t })));
    tier.value = "view";
    const props = p.kind === "vector" && p.properties && p.properties.length ? p.properties : null;
    $("c-props-box").hidden = !props;
    $("c-props-on").checked = false;
    $("c-props").replaceChildren(...(props || []).map((n) =>
      el("label", {}, el("input", { type: "checkbox", value: n, checked: true, "data-prop": n }), n)));
    const g = p.access.geoFence;
    state.createMap.limit = (g && g.tiles) || [];
    if (g && g.tiles) state.createMap.fit(g.tiles);
    if (g && g.maxZoom != null) {
      $("c-maxzoom").max = String(g.maxZoom);
      $("c-maxzoom").value = String(Math.min(Number($("c-maxzoom").value), g.maxZoom));
    } else {
      $("c-maxzoom").max = "24";
    }
    $("c-maxzoom-out").textContent = $("c-maxzoom").value;
    state.createMap.draw();
  }

  function tilesChanged(n) {
    $("c-tilecount").textContent = n
      ? n + " tile" + (n === 1 ? "" : "s") + " selected" + ($("c-fence-on").checked ? "" : " (tick “Limit to the tiles” to use them)")
      : "No tiles selected: no tile limit.";
    if (n && !$("c-fence-on").checked) $("c-fence-on").checked = true;
  }

  $("c-path").addEventListener("change", pathChanged);
  $("c-life").addEventListener("change", () => { $("c-date").hidden = $("c-life").value !== "date"; });
  $("c-pick-zoom").addEventListener("change", () => {
    const z = Math.max(0, Math.min(24, parseInt($("c-pick-zoom").value, 10) || 0));
    $("c-pick-zoom").value = String(z);
    state.createMap.pickZoom = z;
    state.createMap.draw();
  });
  for (const r of document.querySelectorAll("input[name=c-mode]")) r.addEventListener("change", () => { state.createMap.mode = r.value; });
  $("c-zoom-in").addEventListener("click", () => state.createMap.setZoom(state.createMap.zoom + 1));
  $("c-zoom-out").addEventListener("click", () => state.createMap.setZoom(state.createMap.zoom - 1));
  $("c-clear").addEventListener("click", () => state.createMap.clear());
  $("c-maxzoom").addEventListener("input", () => {
    $("c-maxzoom-out").textContent = $("c-maxzoom").value;
    $("c-maxzoom-on").checked = true;
  });
  $("c-paste-apply").addEventListener("click", () => {
    const text = $("c-paste").value.trim();
    $("c-paste-error").textContent = "";
    try {
      const nums = text.split(/[\s,]+/).filter(Boolean).map(Number);
      let added;
      if (nums.length === 4 && nums.every((n) => isFinite(n))) {
        const [a, b, c, d] = nums;
        if (a >= c || b >= d || a < -180 || c > 180 || b < -90 || d > 90) throw new Error("a bbox is minLon,minLat,maxLon,maxLat in degrees, min below max");
        added = state.createMap.addBBox(a, b, c, d);
      } else {
        added = state.createMap.addGeoJSON(JSON.parse(text));
      }
      $("c-paste-error").textContent = "";
      $("c-tilecount").textContent += " (" + added + " from the paste)";
    } catch (e) {
      $("c-paste-error").textContent = "Cannot read the paste: " + (e instanceof SyntaxError ? "neither a bbox nor JSON" : e.message);
    }
  });

  function confirmDialog(title, body) {
    const d = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-body").replaceChildren(...body);
    d.returnValue = "";
    return new Promise((resolve) => {
      d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
      d.showModal();
    });
  }

  const FIELD_OF = { description: "c-desc", validFor: "c-life", expiresAt: "c-life", scope: "c-scope", accessTier: "c-tier",
    geoFence: "c-map", tiles: "c-map", maxZoom: "c-maxzoom", propertyFence: "c-props", allowedOrigins: "c-origins" };

  function showProblems(e) {
    for (const x of document.querySelectorAll(".field-error")) x.remove();
    const detail = e.body && e.body.detail;
    if (Array.isArray(detail)) {
      const lines = detail.map((p) => (Array.isArray(p.loc) ? p.loc.join(".") + ": " : "") + p.msg);
      $("c-error").textContent = "The token API refused the request (" + e.status + "):\n" + lines.join("\n");
      for (const p of detail) {
        const field = (p.loc || []).map(String).reverse().map((k) => FIELD_OF[k]).find(Boolean);
        const target = field && $(field);
        if (target) target.after(el("div", { class: "field-error", text: p.msg }));
      }
    } else {
      $("c-error").textContent = "The token API refused the request (" + e.status + "): " + e.message;
    }
  }

  $("create-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("c-error").textContent = "";
    for (const x of document.querySelectorAll(".field-error")) x.remove();
    const p = state.byId.get($("c-path").value);
    const access = { accessTier: $("c-tier").value };
    const fence = {};
    if ($("c-fence-on").checked) {
      const tiles = state.createMap.getTiles();
      if (!tiles.length) { $("c-error").textContent = "Select at least one tile on the map, or untick “Limit to the tiles”."; return; }
      fence.tiles = tiles;
    }
    if ($("c-maxzoom-on").checked) fence.maxZoom = Number($("c-maxzoom").value);
    if (Object.keys(fence).length) access.geoFence = fence;
    if (!$("c-props-box").hidden && $("c-props-on").checked) {
      access.propertyFence = Array.from(document.querySelectorAll("#c-props input:checked")).map((i) => i.value);
    }
    const body = { description: $("c-desc").value.trim(), scope: $("c-scope").value, accessList: [{ pathId: p.id, access }] };
    const life = $("c-life").value;
    if (life === "never") {
      const capped = state.me.token.expiresAt ? " It will still expire with your own token, " + fmtTime(state.me.token.expiresAt) + "." : "";
      const ok = await confirmDialog("Create a token that never expires?", [el("p", { text: "It works until someone revokes it." + capped })]);
      if (!ok) return;
    } else if (life === "date") {
      const t = Date.parse($("c-date").value);
      if (isNaN(t)) { $("c-error").textContent = "Pick the expiry date and time."; return; }
      body.expiresAt = new Date(t).toISOString().replace(/\.\d{3}Z$/, "Z");
    } else {
      body.validFor = Number(life);
    }
    const origins = $("c-origins").value.split(/\s+/).filter(Boolean);
    if (origins.length) body.allowedOrigins = origins;
    let created;
    try {
      created = await api("POST", API, body);
    } catch (err) {
      if (err.status !== 401) showProblems(err);
      return;
    }
    $("create-form").hidden = true;
    $("c-result").hidden = false;
    $("c-token").value = created.token;
    $("c-result-integrate").replaceChildren(el("h3", { text: "Its Integrate URLs (" + p.id + ")" }), integrateBlock(p, created.token));
  });
  $("c-token-copy").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText($("c-token").value); } catch (_) { $("c-token").select(); document.execCommand("copy"); }
    $("c-token-copy").textContent = "Copied";
  });
  $("c-another").addEventListener("click", () => {
    $("c-token").value = "";
    $("c-result-integrate").replaceChildren();
    $("c-result").hidden = true;
    $("create-form").hidden = false;
    $("c-token-copy").textContent = "Copy";
  });

  // ---- token list ------------------------------------------------------------------

  async function loadTokens() {
    let all = [];
    let start = null;
    try {
      for (let page = 0; page < 50; page++) {
        const q = "?pageSize=100" + (start ? "&pageStart=" + encodeURIComponent(start) : "");
        const r = await api("GET", API + q);
        all = all.concat(r.result);
        start = r.nextPageStart;
        if (!start) break;
      }
    } catch (e) {
      if (e.status !== 401) { $("t-empty").hidden = false; $("t-empty").textContent = "Cannot list tokens: " + e.message; }
      return;
    }
    state.tokens = all;
    renderTokens();
  }

  /** Every listed token made from `id`, transitively (the cascade of a revocation). */
  function descendants(id) {
    const out = [];
    const queue = [id];
    while (queue.length) {
      const cur = queue.shift();
      for (const t of state.tokens) if (t.createdBy === cur && !out.includes(t)) { out.push(t); queue.push(t.id); }
    }
    return out;
  }

  function usage(t) {
    if (!("lastUsedAt" in t)) return "—";
    if (!t.lastUsedAt) return "never";
    return fmtTime(t.lastUsedAt) + (t.lastUsedFrom ? " from " + t.lastUsedFrom : "");
  }

  function renderTokens() {
    const filter = $("t-filter").value.trim().toLowerCase();
    const showRevoked = $("t-revoked").checked;
    const sort = $("t-sort").value;
    let list = state.tokens.filter((t) => showRevoked || !t.revokedAt);
    if (filter) {
      list = list.filter((t) => [t.description, t.displayKey, t.id, t.scope, ...t.accessList.map((a) => a.pathId + " " + a.access.accessTier)]
        .join(" ").toLowerCase().includes(filter));
    }
    const by = {
      "created-desc": (a, b) => String(b.createdAt).localeCompare(String(a.createdAt)),
      "created-asc": (a, b) => String(a.createdAt).localeCompare(String(b.createdAt)),
      description: (a, b) => a.description.localeCompare(b.description),
      "used-desc": (a, b) => String(b.lastUsedAt || "").localeCompare(String(a.lastUsedAt || "")),
      "requests-desc": (a, b) => (b.requestCount || 0) - (a.requestCount || 0),
    }[sort];
    list.sort(by);
    const body = $("t-body");
    body.replaceChildren();
    for (const t of list) {
      const paths = el("td", {}, ...t.accessList.map((a) => el("div", {}, a.pathId + ": ", el("strong", { text: a.access.accessTier }),
        a.access.propertyFence ? " · props: " + (a.access.propertyFence.join(", ") || "geometry only") : "")));
      if (Array.isArray(t.allowedOrigins) && t.allowedOrigins.length) {
        paths.append(el("div", { class: "muted origins", text: "origins: " + t.allowedOrigins.join(", ") }));
      }
      const fenced = t.accessList.find((a) => a.access.geoFence);
      const actions = el("td", {});
      if (fenced) {
        actions.append(el("button", { type: "button", class: "preview", text: "Preview",
          onclick: () => preview(t, fenced) }));
      }
      if (!t.revokedAt) {
        actions.append(el("button", { type: "button", class: "danger revoke", text: "Revoke", onclick: () => revoke(t) }));
      }
      body.append(el("tr", { class: t.revokedAt ? "revoked" : null, "data-id": t.id, "data-description": t.description },
        el("td", { text: t.description }),
        el("td", { class: "mono", text: t.displayKey }),
        paths,
        el("td", { text: t.scope }),
        el("td", { text: t.accessList.map((a) => fenceSummary(a.access.geoFence)).join("; ") }),
        el("td", { text: fmtTime(t.createdAt) }),
        el("td", { text: t.revokedAt ? "revoked " + fmtTime(t.revokedAt) : t.expiresAt ? fmtTime(t.expiresAt) : "never" }),
        el("td", { class: "last-used", text: usage(t) }),
        el("td", { class: "requests", text: "requestCount" in t ? String(t.requestCount) : "—" }),
        actions));
    }
    $("t-empty").hidden = list.length > 0;
    $("t-empty").textContent = state.tokens.length ? "No token matches the filter." : "No tokens made from this one yet.";
    renderDelegation();
  }

  function renderDelegation() {
    const ids = new Set(state.tokens.map((t) => t.id));
    const tree = $("t-tree");
    const node = (t) => {
      const li = el("li", { "data-id": t.id }, el("span", { text: t.description }), el("span", { class: "badge", text: t.displayKey }),
        t.revokedAt ? el("span", { class: "badge", text: "revoked" }) : null);
      const kids = state.tokens.filter((c) => c.createdBy === t.id);
      if (kids.length) li.append(el("ul", {}, ...kids.map(node)));
      return li;
    };
    const roots = state.tokens.filter((t) => !ids.has(t.createdBy));
    tree.replaceChildren(el("li", {}, el("strong", { text: "this token" }), el("ul", {}, ...roots.map(node))));
  }

  function preview(t, entry) {
    if (!state.previewMap) state.previewMap = new window.TileMap($("t-map"), { zoom: 1, readOnly: true });
    state.previewMap.fitCanvas();
    const g = entry.access.geoFence;
    state.previewMap.setTiles(g.tiles || []);
    state.previewMap.fit(g.tiles || []);
    $("t-preview-label").textContent = t.description + " on " + entry.pathId + ": " + fenceSummary(g);
  }

  async function revoke(t) {
    const below = descendants(t.id).filter((d) => !d.revokedAt);
    const body = [el("p", { text: "“" + t.description + "” (" + t.displayKey + ") stops working at once." })];
    if (below.length) {
      body.push(el("p", { text: "These tokens were made from it and stop working too:" }),
        el("ul", { class: "cascade" }, ...below.map((d) => el("li", { text: d.description + " (" + d.displayKey + ")" }))));
    } else {
      body.push(el("p", { class: "muted", text: "No token you can see was made from it." }));
    }
    const ok = await confirmDialog("Revoke “" + t.description + "”?", body);
    if (!ok) return;
    try {
      await api("DELETE", API + "/" + encodeURIComponent(t.id));
    } catch (e) {
      if (e.status !== 401) { $("t-empty").hidden = false; $("t-empty").textContent = "Revoke failed: " + e.message; }
      return;
    }
    await loadTokens();
  }

  $("t-filter").addEventListener("input", renderTokens);
  $("t-sort").addEventListener("change", renderTokens);
  $("t-revoked").addEventListener("change", renderTokens);
  $("t-refresh").addEventListener("click", loadTokens);

  // ---- start -------------------------------------------------------------------------

  // A service worker registered on this origin (by any page the gateway ever relayed)
  // would see every token API call and its Authorization header. The gateway refuses
  // to relay `Service-Worker-Allowed` and sandboxes relayed pages, so none should
  // exist; if one does, the console removes it and does not sign in under it.
  async function noServiceWorker() {
    if (!("serviceWorker" in navigator)) return true;
    const regs = await navigator.serviceWorker.getRegistrations();
    await Promise.all(regs.map((r) => r.unregister()));
    return !navigator.serviceWorker.controller && regs.length === 0;
  }

  noServiceWorker().then((clean) => {
    if (!clean) {
      sessionStorage.removeItem(STORE_KEY);
      showSignIn("A service worker was controlling this page and has been removed. Reload the page, then sign in again.");
      for (const e of $("signin").querySelectorAll("input, button, textarea")) e.disabled = true;
      return;
    }
    const saved = sessionStorage.getItem(STORE_KEY);
    if (saved) signIn(saved, false);
    else showSignIn("");
  });
})();
