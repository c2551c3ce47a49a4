// Skylane operator console: plain DOM, no framework, no build step. Every value is put in the page
// as text (textContent / createTextNode), never as HTML; charts are SVG built with DOM calls. The admin
// key lives in sessionStorage only and travels in the Authorization header (no cookies: no CSRF).
"use strict";

const STORE = "skylane-admin-key";
const API = "/admin/v1";
const SVGNS = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

// ---- DOM helpers (text only) ------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, "");
    else if (v !== false && v !== null && v !== undefined) node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

const usd = (v) => v === null || v === undefined ? "unlimited"
  : "$" + Number(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: Math.abs(v) < 1 ? 4 : 2 });
const num = (v) => Number(v || 0).toLocaleString("en-US");
const lim = (v) => v === null || v === undefined ? "unlimited" : num(v);
const pct = (v) => (Number(v || 0) * 100).toFixed(1) + "%";
const when = (ts) => ts ? new Date(ts * 1000).toISOString().slice(0, 16).replace("T", " ") + "Z" : "never";
const METRICS = { cost_usd: ["Spend", usd], requests: ["Requests", num], tokens: ["Tokens", num], errors: ["Errors", num] };

// ---- the API ----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = { authorization: "Bearer " + (sessionStorage.getItem(STORE) || "") };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                        credentials: "omit", cache: "no-store" });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, (data.error && data.error.message) || res.statusText);
  return data;
}

function fail(err) {
  if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
    sessionStorage.removeItem(STORE);
    showLogin(err.message);
    return;
  }
  $("status").textContent = err.message || String(err);
}

// ---- login ------------------------------------------------------------------------------------

function showLogin(message) {
  $("login").hidden = false;
  $("nav").hidden = true;
  $("logout").hidden = true;
  $("whoami").textContent = "";
  $("view").replaceChildren();
  $("login-error").textContent = message || "";
}

async function signIn(key) {
  sessionStorage.setItem(STORE, key);
  try {
    const me = await api("GET", "/me");
    $("login").hidden = true;
    $("nav").hidden = false;
    $("logout").hidden = false;
    $("whoami").textContent = "signed in as " + me.name + " (" + me.key_id + ")";
    route();
  } catch (err) {
    sessionStorage.removeItem(STORE);
    showLogin(err.message);
  }
}

// ---- charts -----------------------------------------------------------------------------------

function stackedBars(labels, series, metric) {
  const W = 900, H = 260, L = 64, B = 34, T = 10;
  const totals = labels.map((_, i) => series.reduce((s, g) => s + (g.values[metric][i] || 0), 0));
  const max = Math.max(...totals, 0) || 1;
  const chart = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": METRICS[metric][0] });
  const fmt = METRICS[metric][1];
  for (let k = 0; k <= 4; k++) {
    const y = T + (H - T - B) * (1 - k / 4);
    chart.append(svg("line", { x1: L, x2: W, y1: y, y2: y }));
    chart.append(svg("text", { x: L - 6, y: y + 4, "text-anchor": "end" }, fmt(max * k / 4)));
  }
  const slot = (W - L) / Math.max(labels.length, 1);
  labels.forEach((label, i) => {
    let y = H - B;
    series.forEach((g, gi) => {
      const v = g.values[metric][i] || 0;
      if (!v) return;
      const h = (H - T - B) * v / max;
      y -= h;
      chart.append(svg("rect", { x: L + i * slot + slot * 0.15, y, width: slot * 0.7, height: Math.max(h, 0.5),
                                 class: "c" + Math.min(gi, 6) },
                       svg("title", {}, `${label} · ${g.label || g.name}: ${fmt(v)}`)));
    });
    const every = Math.ceil(labels.length / 12);
    if (i % every === 0) {
      const short = label.length > 10 ? label.slice(11) + "h" : label.slice(5);
      chart.append(svg("text", { x: L + i * slot + slot / 2, y: H - B + 16, "text-anchor": "middle" }, short));
    }
  });
  const legend = el("div", { class: "legend" },
    series.map((g, gi) => el("span", {}, el("i", { class: "c" + Math.min(gi, 6) }), g.label || g.name)));
  return el("div", { class: "panel" }, chart, legend);
}

function table(headers, rows, numeric) {
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h, i) => el("th", { class: numeric && numeric[i] ? "num" : null }, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c, i) => el("td", { class: numeric && numeric[i] ? "num" : null }, c))))));
}

function toggle(options, current, onpick) {
  return el("span", {}, Object.entries(options).map(([value, text]) =>
    el("button", { type: "button", class: value === current ? "on" : null, "data-value": value,
                   onclick: () => onpick(value) }, text)));
}

// ---- overview ---------------------------------------------------------------------------------

const overviewState = { period: "7d", metric: "cost_usd", split: "model" };

async function overview() {
  const s = overviewState;
  const data = await api("GET", "/usage?period=" + s.period);
  const t = data.totals;
  const redraw = (k) => (v) => { s[k] = v; route(); };
  const cards = el("div", { class: "cards" },
    [["Spend", usd(t.cost_usd), "total-spend"], ["Requests", num(t.requests), "total-requests"],
     ["Tokens", num(t.tokens), "total-tokens"], ["Error rate", pct(t.error_rate), "total-error-rate"]]
      .map(([label, value, id]) => el("div", { class: "card" }, el("div", { class: "label" }, label),
                                      el("div", { class: "value", id }, value))));
  const split = data.split[s.split];
  return [
    el("h1", {}, "Overview"),
    el("div", { class: "toolbar" },
      toggle({ "24h": "24 hours", "7d": "7 days", "30d": "30 days" }, s.period, redraw("period")),
      toggle({ cost_usd: "Spend", requests: "Requests", tokens: "Tokens", errors: "Errors" }, s.metric, redraw("metric")),
      toggle({ model: "By model", key: "By key" }, s.split, redraw("split"))),
    cards,
    el("div", { id: "chart" }, stackedBars(data.buckets, split, s.metric)),
    el("p", { class: "muted" }, `${data.keys_with_usage} keys with usage; by ${data.unit} (UTC).`),
    el("div", { class: "grid2" },
      el("div", { class: "panel" }, el("h2", {}, "Top keys"),
        table(["Key", "Id", "Spend", "Requests", "Errors"],
              data.top_keys.map((k) => [el("a", { href: "#key/" + encodeURIComponent(k.key_id) }, k.name || k.key_id),
                                        k.key_id, usd(k.cost_usd), num(k.requests), pct(k.error_rate)]),
              [0, 0, 1, 1, 1])),
      el("div", { class: "panel" }, el("h2", {}, "Top models"),
        table(["Model", "Spend", "Requests", "Tokens", "Errors"],
              data.top_models.map((m) => [m.model, usd(m.cost_usd), num(m.requests), num(m.tokens), pct(m.error_rate)]),
              [0, 1, 1, 1, 1]))),
  ];
}

// ---- keys -------------------------------------------------------------------------------------

const keysState = { search: "", status: "all", created: null };

function createForm() {
  const form = el("form", { class: "inline", id: "create-form", autocomplete: "off" },
    el("label", {}, "Name", el("input", { name: "name", required: true, maxlength: 200 })),
    el("label", {}, "RPM", el("input", { name: "rpm", placeholder: "60 / unlimited", size: 10 })),
    el("label", {}, "TPM", el("input", { name: "tpm", placeholder: "100000 / unlimited", size: 12 })),
    el("label", {}, "Credits USD", el("input", { name: "credits", placeholder: "unlimited", size: 10 })),
    el("label", {}, "Models", el("input", { name: "models", placeholder: "openai/*, …", size: 16 })),
    el("label", {}, "Expires", el("input", { name: "expires", type: "date" })),
    el("label", {}, "Admin", el("input", { name: "admin", type: "checkbox" })),
    el("button", { type: "submit", class: "primary" }, "Create key"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = form.elements;
    try {
      const created = await api("POST", "/keys", {
        name: f.name.value, rpm: limitOf(f.rpm.value, 60), tpm: limitOf(f.tpm.value, 100000),
        credits_usd: f.credits.value.trim() ? Number(f.credits.value) : null, models: listOf(f.models.value),
        expires_at: f.expires.value ? Date.parse(f.expires.value + "T00:00:00Z") / 1000 : null, admin: f.admin.checked });
      keysState.created = created;
      route();
    } catch (err) { fail(err); }
  });
  return form;
}

function limitOf(text, dflt) {
  const t = String(text).trim().toLowerCase();
  if (!t) return dflt;
  return ["unlimited", "none", "off"].includes(t) ? null : parseInt(t, 10);
}
const listOf = (text) => String(text).split(",").map((s) => s.trim()).filter(Boolean);

function secretBox(created) {
  const code = el("code", { id: "new-key" }, created.key);
  const copy = el("button", { type: "button", id: "copy-key" }, "Copy");
  copy.addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(created.key); copy.textContent = "Copied"; }
    catch { window.getSelection().selectAllChildren(code); copy.textContent = "Selected: press Ctrl+C"; }
  });
  return el("div", { class: "secret" }, el("strong", {}, `New key “${created.name}”, shown once:`), code, copy,
            el("button", { type: "button", onclick: () => { keysState.created = null; route(); } }, "Done"));
}

async function act(method, path, body) {
  try { await api(method, path, body); route(); } catch (err) { fail(err); }
}

function topUpForm(key) {
  const form = el("form", { class: "inline topup" },
    el("input", { name: "amount", size: 6, placeholder: "USD", "aria-label": "top-up amount" }),
    el("button", { type: "submit" }, "Top up"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act("POST", `/keys/${encodeURIComponent(key.key_id)}/topup`, { amount_usd: Number(form.elements.amount.value) });
  });
  return form;
}

async function keys() {
  const q = new URLSearchParams({ search: keysState.search, status: keysState.status });
  const data = await api("GET", "/keys?" + q);
  const search = el("input", { id: "key-search", type: "search", placeholder: "search name, id, model", value: keysState.search });
  search.addEventListener("change", () => { keysState.search = search.value; route(); });
  const status = el("select", { id: "key-status" }, ["all", "active", "revoked", "expired"].map((s) =>
    el("option", { value: s, selected: s === keysState.status }, s)));
  status.addEventListener("change", () => { keysState.status = status.value; route(); });
  const rows = data.data.map((k) => {
    const row = el("tr", { "data-key-id": k.key_id },
      el("td", { class: "key-name" }, el("a", { href: "#key/" + encodeURIComponent(k.key_id) }, k.name)),
      el("td", {}, k.key_id, k.admin ? el("span", { class: "pill" }, " admin") : null),
      el("td", {}, el("span", { class: "pill " + k.status }, k.status)),
      el("td", { class: "num" }, lim(k.rpm) + " / " + lim(k.tpm)),
      el("td", { class: "num balance" }, usd(k.credits_usd)),
      el("td", { class: "num" }, k.monthly_budget_usd === undefined ? "—" : usd(k.monthly_budget_usd)),
      el("td", { class: "num" }, usd(k.month_spent_usd)),
      el("td", {}, k.last_used || "—"),
      el("td", {}, when(k.expires_at)),
      el("td", {}, (k.models || []).join(", ") || "all"),
      el("td", {}, k.status === "revoked"
        ? el("button", { type: "button", onclick: () => act("PATCH", `/keys/${encodeURIComponent(k.key_id)}`, { revoked: false }) }, "Unrevoke")
        : el("button", { type: "button", class: "danger revoke", onclick: () => act("POST", `/keys/${encodeURIComponent(k.key_id)}/revoke`) }, "Revoke"),
        k.credits_usd === null ? null : topUpForm(k)));
    return row;
  });
  return [
    el("h1", {}, "Keys"),
    keysState.created ? secretBox(keysState.created) : null,
    el("div", { class: "panel" }, el("h2", {}, "Create a key"), createForm()),
    el("div", { class: "toolbar" }, search, status, el("span", { class: "muted" }, `${data.total} keys`)),
    el("div", { class: "panel" }, el("table", { id: "keys-table" },
      el("thead", {}, el("tr", {}, ["Name", "Id", "Status", "RPM / TPM", "Balance", "Monthly cap", "Spent this month",
                                   "Last used", "Expires", "Models", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows))),
  ];
}

// ---- key detail -------------------------------------------------------------------------------

async function keyDetail(keyId) {
  const k = await api("GET", "/keys/" + encodeURIComponent(keyId));
  const u = k.usage;
  const models = {};
  u.rows.forEach((r) => { models[r.model] = true; });
  const series = Object.keys(models).map((m) => ({ name: m, values: { cost_usd: [], requests: [], tokens: [], errors: [] } }));
  series.forEach((s) => u.days.forEach((d, i) => {
    const r = u.rows.find((x) => x.day === d && x.model === s.name) || {};
    for (const m of Object.keys(METRICS)) s.values[m][i] = r[m] || 0;
  }));
  const h = k.headroom;
  const form = el("form", { class: "inline", id: "edit-form", autocomplete: "off" },
    el("label", {}, "Name", el("input", { name: "name", value: k.name })),
    el("label", {}, "RPM", el("input", { name: "rpm", value: k.rpm === null ? "unlimited" : k.rpm, size: 10 })),
    el("label", {}, "TPM", el("input", { name: "tpm", value: k.tpm === null ? "unlimited" : k.tpm, size: 12 })),
    el("label", {}, "Balance USD", el("input", { name: "credits", value: k.credits_usd === null ? "unlimited" : k.credits_usd, size: 10 })),
    el("label", {}, "Models", el("input", { name: "models", value: (k.models || []).join(", "), size: 18 })),
    el("label", {}, "Expires", el("input", { name: "expires", type: "date",
                                             value: k.expires_at ? new Date(k.expires_at * 1000).toISOString().slice(0, 10) : "" })),
    el("button", { type: "submit", class: "primary" }, "Save"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = form.elements;
    const credits = f.credits.value.trim().toLowerCase();
    act("PATCH", "/keys/" + encodeURIComponent(keyId), {
      name: f.name.value, rpm: limitOf(f.rpm.value, null), tpm: limitOf(f.tpm.value, null),
      credits_usd: ["", "unlimited", "none"].includes(credits) ? null : Number(credits), models: listOf(f.models.value),
      expires_at: f.expires.value ? Date.parse(f.expires.value + "T00:00:00Z") / 1000 : null });
  });
  return [
    el("h1", {}, "Key ", el("span", { id: "detail-name" }, k.name), " ", el("span", { class: "pill " + k.status }, k.status)),
    el("p", { class: "muted" }, `${k.key_id} · created ${when(k.created_at)} · expires ${when(k.expires_at)} · balance ${usd(k.credits_usd)} · spent ${usd(k.spent_usd)}`),
    el("div", { class: "cards" },
      [["Spend (30 d)", usd(u.totals.cost_usd)], ["Requests (30 d)", num(u.totals.requests)],
       ["Requests left this minute", h.requests.remaining === null ? "unlimited" : `${num(h.requests.remaining)} of ${num(h.requests.limit)}`],
       ["Tokens left this minute", h.tokens.remaining === null ? "unlimited" : `${num(h.tokens.remaining)} of ${num(h.tokens.limit)}`]]
        .map(([label, value]) => el("div", { class: "card" }, el("div", { class: "label" }, label), el("div", { class: "value" }, value)))),
    stackedBars(u.days, series, "cost_usd"),
    el("div", { class: "panel" }, el("h2", {}, "Change"), form,
       el("div", { class: "toolbar" },
         k.status === "revoked"
           ? el("button", { type: "button", onclick: () => act("PATCH", "/keys/" + encodeURIComponent(keyId), { revoked: false }) }, "Unrevoke")
           : el("button", { type: "button", class: "danger", onclick: () => act("POST", `/keys/${encodeURIComponent(keyId)}/revoke`) }, "Revoke"),
         k.credits_usd === null ? null : topUpForm(k))),
    el("div", { class: "panel" }, el("h2", {}, "Usage by day and model"),
      table(["Day", "Model", "Requests", "Errors", "Tokens", "Spend"],
            u.rows.map((r) => [r.day, r.model, num(r.requests), num(r.errors), num(r.tokens), usd(r.cost_usd)]),
            [0, 0, 1, 1, 1, 1])),
  ];
}

// ---- models -----------------------------------------------------------------------------------

async function models() {
  const data = await api("GET", "/models");
  const price = (v) => v === null || v === undefined ? "—" : "$" + v;
  return [
    el("h1", {}, "Models"),
    el("div", { class: "panel" }, el("h2", {}, "Providers"),
      table(["Provider", "Protocol", "Configured", "Passthrough"],
            data.providers.map((p) => [p.display_name + " (" + p.name + ")", p.protocol,
                                       el("span", { class: "pill " + (p.configured ? "" : "no") }, p.configured ? "yes" : "no"),
                                       p.passthrough ? "yes" : "no"]))),
    el("div", { class: "panel" }, el("h2", {}, "Catalog (USD per 1M tokens)"),
      table(["Model", "Kind", "Configured", "Context", "Input", "Output", "Cached input", "Capabilities"],
            data.data.map((m) => [m.id + (m.deprecated ? " (deprecated)" : ""), m.kind, m.configured ? "yes" : "no",
                                  m.max_tokens ? num(m.max_tokens) : "—", price(m.pricing.input_per_million_usd),
                                  price(m.pricing.output_per_million_usd), price(m.pricing.cached_input_per_million_usd),
                                  Object.entries(m.capabilities).filter(([, v]) => v).map(([c]) => c).join(", ")]),
            [0, 0, 0, 1, 1, 1, 1, 0])),
  ];
}

// ---- routing ----------------------------------------------------------------------------------

async function route() {
  if (!sessionStorage.getItem(STORE)) { showLogin(""); return; }
  const hash = location.hash.slice(1) || "overview";
  const [view, arg] = hash.split("/");
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === (view === "key" ? "keys" : view)));
  $("status").textContent = "";
  try {
    const parts = view === "keys" ? await keys() : view === "key" ? await keyDetail(decodeURIComponent(arg || ""))
      : view === "models" ? await models() : await overview();
    $("view").replaceChildren(...parts.filter(Boolean));
    $("view").dataset.ready = view;
  } catch (err) { fail(err); }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("login-key").value.trim()); });
  $("logout").addEventListener("click", () => { sessionStorage.removeItem(STORE); showLogin(""); });
  window.addEventListener("hashchange", route);
  if (sessionStorage.getItem(STORE)) signIn(sessionStorage.getItem(STORE)); else showLogin("");
});
