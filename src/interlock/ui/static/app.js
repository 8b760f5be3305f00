// The Interlock dashboard: one ES module, no framework, no build step. Every page is one JSON
// request per panel to /ui/api; text goes into the page through textContent only (never as
// HTML), and actions carry the session's CSRF token in `x-csrf-token`.

const SVG = "http://www.w3.org/2000/svg";
const PAGES = [
  ["overview", "Overview", "read_metrics"],
  ["rollouts", "Rollouts", "read_metrics"],
  ["drift", "Drift", "read_metrics"],
  ["keys", "Keys", "admin_keys"],
  ["audit", "Audit", "read_audit"],
  ["limits", "Limits", "read_metrics"],
];
const REFRESH_MS = { overview: 2000, rollouts: 2000, drift: 10000, limits: 5000 };
let session = null;
let timer = null;
const history = new Map(); // model group -> recent requests/s, for the sparklines

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const num = (v, digits = 0) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }));
const pct = (v) => (v === null || v === undefined ? "–" : `${(v * 100).toFixed(1)} %`);
const ms = (v) => (v === null || v === undefined ? "–" : `${v < 10 ? v.toFixed(2) : v.toFixed(0)} ms`);
const usd = (v) => (v === null || v === undefined ? "–" : `$${Number(v).toFixed(v < 1 ? 4 : 2)}`);
const when = (t) => (t ? new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "–");
const may = (p) => session && session.permissions.includes(p);

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", headers: {}, ...options };
  if (init.method && init.method !== "GET") init.headers["x-csrf-token"] = session ? session.csrf : "";
  if (init.body && typeof init.body !== "string") {
    init.body = JSON.stringify(init.body);
    init.headers["content-type"] = "application/json";
  }
  const resp = await fetch(path, init);
  const data = await resp.json().catch(() => ({}));
  if (resp.status === 401) { location.assign("/ui"); throw new ApiError(401, "logged out"); }
  if (!resp.ok) throw new ApiError(resp.status, (data.error && data.error.message) || resp.statusText);
  return data;
}

function table(headers, rows) {
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map(([label, cls]) => h("th", { class: cls }, label)))),
    h("tbody", {}, rows));
}

function pill(text, kind) { return h("span", { class: `pill ${kind}` }, text); }

function bar(used, limit) {
  const share = limit ? Math.min(1, (used || 0) / limit) : 0;
  const inner = h("span", { class: share > 0.9 ? "bad" : share > 0.7 ? "warn" : "" });
  inner.style.width = `${(share * 100).toFixed(1)}%`; // CSSOM, which the CSP allows (no style attribute)
  return h("span", { class: "bar", title: `${used ?? "?"} of ${limit}` }, inner);
}

function sparkline(values, width = 160, height = 28) {
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? width / (values.length - 1) : width;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`).join(" ");
  return s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "requests per second" },
    s("polyline", { points, fill: "none", stroke: "#2557d6", "stroke-width": 1.5 }));
}

// -- pages ------------------------------------------------------------------------------------------
async function overview(main) {
  const data = await api("/ui/api/overview");
  const rows = [];
  for (const g of data.groups) {
    const series = history.get(g.model) || [];
    series.push(g.requests_per_s);
    if (series.length > 30) series.shift();
    history.set(g.model, series);
    const figures = (f) => [
      h("td", { class: "num" }, num(f.requests_per_s, 1)), h("td", { class: "num" }, ms(f.p95_ms)),
      h("td", { class: "num" }, pct(f.error_rate)), h("td", { class: "num" }, pct(f.exact_hit_rate)),
      h("td", { class: "num" }, pct(f.semantic_hit_rate)), h("td", { class: "num" }, num(f.total_requests)),
      h("td", { class: "num" }, `${num(f.tokens_in)} / ${num(f.tokens_out)}`), h("td", { class: "num" }, usd(f.spend_usd)),
    ];
    rows.push(h("tr", { class: "group", "data-model": g.model },
      h("td", {}, g.model), h("td", {}, g.strategy), h("td", {}, ""), h("td", {}, ""), h("td", { class: "num" }, ""),
      ...figures(g)));
    for (const d of g.deployments) {
      const health = d.healthy === true ? pill("healthy", "ok") : d.healthy === false ? pill("down", "bad") : pill("unknown", "");
      const circuit = pill(d.circuit, d.circuit === "closed" ? "ok" : d.circuit === "open" ? "bad" : "warn");
      rows.push(h("tr", { "data-deployment": d.id },
        h("td", {}, `\u2003${d.id}`), h("td", {}, `${d.version} · w ${d.weight}`), h("td", {}, health), h("td", {}, circuit),
        h("td", { class: "num" }, num(d.inflight)), ...figures(d)));
    }
  }
  const cards = data.groups.map((g) => h("div", { class: "card" },
    h("h3", {}, g.model), sparkline(history.get(g.model) || []),
    h("div", { class: "muted" }, `${num(g.requests_per_s, 1)} req/s now · ${num(g.answered_by_cache)} answered from cache`)));
  main.replaceChildren(
    h("h2", {}, "Traffic"),
    h("p", { class: "muted" }, `Requests/s over the last ${data.rate_window_s} s; P95, error and hit rates over the last ${data.window_s} s (hit rates of the requests the cache looked up); totals since this process started. Updated ${when(data.at)}.`),
    h("div", { class: "grid" }, cards),
    table([["Group / deployment"], ["Version"], ["Health"], ["Circuit"], ["In flight", "num"], ["Req/s", "num"], ["P95", "num"],
      ["Errors", "num"], ["Exact hits", "num"], ["Semantic hits", "num"], ["Requests", "num"], ["Tokens in / out", "num"],
      ["Spend", "num"]], rows));
}

function weightsBar(versions) {
  const width = 360;
  const colors = ["#2557d6", "#e07b00", "#1a7f37", "#8e44ad"];
  let x = 0;
  const parts = [];
  versions.forEach((v, i) => {
    const w = (v.weight / 100) * width;
    parts.push(s("rect", { x, y: 0, width: Math.max(0, w), height: 18, fill: colors[i % colors.length] }));
    if (w > 40) parts.push(s("text", { x: x + 4, y: 13, fill: "#fff" }, `${v.version} ${v.weight}%`));
    x += w;
  });
  return s("svg", { width, height: 18, viewBox: `0 0 ${width} 18`, role: "img", "aria-label": "version weights" },
    s("rect", { x: 0, y: 0, width, height: 18, fill: "#e8ebf0" }), ...parts);
}

const notes = new Map(); // model group -> [class, text] of the latest action's result

async function act(model, action) {
  try {
    const status = await api(`/ui/api/rollouts/${encodeURIComponent(model)}/${action}`, { method: "POST" });
    notes.set(model, ["message ok", `${action}: the rollout is now ${status.phase}`]);
  } catch (err) {
    notes.set(model, ["message bad", `${action} refused: ${err.message}`]);
  }
  await render();
}

async function rollouts(main) {
  const data = await api("/ui/api/rollouts");
  if (!data.enabled) { main.replaceChildren(h("p", { class: "muted" }, "Rollouts are not enabled: configure a `rollout` section or `rollouts`.")); return; }
  const cards = data.data.map((r) => {
    if (r.error) return h("div", { class: "card" }, h("h3", {}, r.model), h("p", { class: "bad" }, `Status unavailable (${r.error})`));
    const [noteClass, noteText] = notes.get(r.model) || ["message", ""];
    const out = h("p", { class: noteClass, "data-result": r.model }, noteText);
    const phaseKind = r.phase === "Healthy" || r.phase === "Promoted" ? "ok" : r.phase === "Aborted" ? "bad" : "warn";
    const verdict = r.last_verdict;
    const buttons = may("admin_rollouts") ? h("div", { class: "actions" },
      ["pause", "resume", "promote", "abort"].map((a) => h("button", { type: "button", class: a === "abort" ? "danger" : "", "data-action": a, "data-model": r.model, onclick: () => act(r.model, a) }, a))) : null;
    return h("div", { class: "card", "data-rollout": r.model },
      h("h3", {}, r.model, " ", pill(r.phase, phaseKind)),
      h("div", { class: "muted" }, `step ${r.step + 1} of ${r.steps} · revision ${r.revision}${r.reason ? " · " + r.reason : ""}`),
      weightsBar(r.versions),
      table([["Version"], ["Weight", "num"], ["Requests", "num"], ["Errors", "num"], ["P95", "num"]],
        r.versions.map((v) => h("tr", { "data-version": v.version }, h("td", {}, v.version), h("td", { class: "num" }, `${v.weight} %`),
          h("td", { class: "num" }, num(v.requests)), h("td", { class: "num" }, pct(v.error_rate)), h("td", { class: "num" }, ms(v.p95_ms))))),
      h("p", {}, "Last analysis: ", verdict ? pill(verdict.phase, verdict.phase === "Successful" ? "ok" : verdict.phase === "Failed" ? "bad" : "warn") : h("span", { class: "muted" }, "none yet"),
        verdict && verdict.message ? h("span", { class: "muted" }, ` ${verdict.message}`) : null),
      Object.keys(r.analysis).length ? h("div", { class: "kv" }, Object.entries(r.analysis).flatMap(([k, v]) => [h("span", { class: "muted" }, k), h("span", {}, v)])) : null,
      h("div", { class: "muted" }, `shadow ${r.shadow_percent} % · figures over the last ${r.window_s} s`),
      buttons, out);
  });
  main.replaceChildren(h("h2", {}, "Rollouts"), cards.length ? h("div", { class: "grid" }, cards) : h("p", { class: "muted" }, "No rollouts."));
}

function driftChart(features) {
  // One row per feature: the decisive statistic against its threshold (p-value tests: 1 - p
  // against 1 - alpha), coloured by status.
  const rowH = 22, labelW = 120, plotW = 300, width = labelW + plotW + 90;
  const rows = features.map((f, i) => {
    const check = f.checks.find((c) => c.flagged !== null) || f.checks[0];
    let value = 0, threshold = null, label = f.status; // the reason goes in the row's tooltip
    if (check) {
      if (check.p_value !== null && check.p_value !== undefined) {
        value = 1 - check.p_value; threshold = check.threshold !== null ? 1 - check.threshold : null; label = `p=${check.p_value.toPrecision(2)}`;
      } else {
        value = Math.min(1, Math.abs(check.statistic || 0)); threshold = check.threshold; label = `${check.name}=${num(check.statistic, 3)}`;
      }
    }
    const y = i * rowH;
    const color = f.status === "drifted" ? "#c62828" : f.status === "ok" ? "#1a7f37" : "#9aa1ab";
    return [
      s("title", {}, `${f.name}: ${f.status}${f.reason ? ` (${f.reason})` : ""}, ${f.n_live} live / ${f.n_reference} baseline`),
      s("text", { x: 0, y: y + 15 }, f.name),
      s("rect", { x: labelW, y: y + 4, width: plotW, height: 14, fill: "#eef0f3" }),
      s("rect", { x: labelW, y: y + 4, width: Math.max(1, value * plotW), height: 14, fill: color, "data-feature": f.name }),
      threshold !== null ? s("line", { x1: labelW + threshold * plotW, x2: labelW + threshold * plotW, y1: y + 2, y2: y + 20, stroke: "#1d2430", "stroke-dasharray": "3 2" }) : null,
      s("text", { x: labelW + plotW + 6, y: y + 15 }, label),
    ].filter(Boolean);
  });
  const height = Math.max(rowH, features.length * rowH);
  return s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "drift per feature" }, ...rows.flat());
}

async function drift(main) {
  const data = await api("/ui/api/drift");
  if (!data.enabled) { main.replaceChildren(h("p", { class: "muted" }, "Drift monitoring is not enabled: configure a `drift` section.")); return; }
  const cards = data.data.map(({ model, version, report }) => h("div", { class: "card", "data-drift": `${model}/${version}` },
    h("h3", {}, `${model} · ${version} `, report.dataset_drifted ? pill("drift alert", "bad") : pill("no drift", "ok")),
    h("div", { class: "muted" }, `${report.drifted_features.length} of ${report.tested_features} features drifted (share ${pct(report.drifted_share)}, alert at ${pct(report.dataset_share)}) · baseline ${num(report.n_reference)} observations, live window ${num(report.n_live)}`),
    driftChart(report.features),
    h("p", { class: "muted" }, "Bars: 1 − p-value (tests) or the distance; dashed line: the threshold.")));
  main.replaceChildren(h("h2", {}, "Drift"), cards.length ? h("div", { class: "grid wide" }, cards) : h("p", { class: "muted" }, "No drift reports yet."));
}

async function keys(main, after = null, append = false) {
  const q = after ? `?after=${encodeURIComponent(after)}` : "";
  const data = await api(`/ui/api/keys${q}`);
  if (!data.enabled) { main.replaceChildren(h("p", { class: "muted" }, "API keys are not enabled: configure security.keys.")); return; }
  const rows = data.data.map((k) => h("tr", { "data-key": k.id },
    h("td", {}, k.id), h("td", {}, k.name), h("td", {}, k.tenant), h("td", {}, k.roles.join(", ")),
    h("td", {}, pill(k.state, k.state === "active" ? "ok" : "bad")), h("td", {}, when(k.created_at)),
    h("td", {}, k.state === "active" ? h("button", { type: "button", class: "danger", "data-revoke": k.id, onclick: async () => {
      if (!confirm(`Revoke ${k.id}?`)) return;
      try { await api(`/ui/api/keys/${encodeURIComponent(k.id)}/revoke`, { method: "POST" }); } catch (err) { alert(err.message); }
      await render();
    } }, "revoke") : "")));
  if (append) {
    document.querySelector("#main tbody").append(...rows);
    document.querySelector("#main #more").replaceWith(moreButton(data.next, (n) => keys(null, n, true)));
    return;
  }
  const created = h("div", { id: "created" });
  const form = h("form", { class: "inline", onsubmit: async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    try {
      const made = await api("/ui/api/keys", { method: "POST", body: { name: f.get("name"), tenant: f.get("tenant") || "default", roles: [f.get("role")] } });
      created.replaceChildren(h("p", {}, `Key ${made.id} created. Copy it now: it is shown once and stored nowhere.`), h("div", { class: "secret", id: "new-key" }, made.key));
    } catch (err) { created.replaceChildren(h("p", { class: "bad" }, err.message)); }
  } },
    h("label", {}, "Name", h("input", { name: "name", required: true, maxlength: 200 })),
    h("label", {}, "Tenant", h("input", { name: "tenant", placeholder: "default" })),
    h("label", {}, "Role", h("select", { name: "role" }, ["user", "auditor", "operator", "admin"].map((r) => h("option", {}, r)))),
    h("button", { type: "submit", class: "primary" }, "Create key"));
  const c = data.counts;
  main.replaceChildren(h("h2", {}, "Keys"),
    h("p", { class: "muted" }, `${num(c.active)} active · ${num(c.revoked)} revoked · ${num(c.total)} in all`),
    h("div", { class: "card" }, form, created),
    table([["Id"], ["Name"], ["Tenant"], ["Roles"], ["State"], ["Created"], [""]], rows),
    moreButton(data.next, (n) => keys(null, n, true)));
}

function moreButton(next, load) {
  return next ? h("button", { type: "button", id: "more", onclick: () => load(next) }, "More") : h("span", { id: "more" });
}

async function audit(main, before = null, append = false) {
  const data = await api(`/ui/api/audit${before ? `?before=${before}` : ""}`);
  if (!data.enabled) { main.replaceChildren(h("p", { class: "muted" }, "The audit trail is not enabled: configure `audit`.")); return; }
  const rows = data.data.map((e) => h("tr", { "data-seq": e.seq },
    h("td", { class: "num" }, e.seq), h("td", {}, when(e.ts)), h("td", {}, e.kind || ""), h("td", {}, e.action || e.endpoint || ""),
    h("td", {}, e.target || e.model || ""), h("td", {}, e.subject || ""), h("td", {}, e.tenant || ""),
    h("td", {}, e.status ?? e.outcome ?? ""), h("td", {}, e.data_class || ""), h("td", { class: "muted" }, e.hash)));
  if (append) {
    document.querySelector("#main tbody").append(...rows);
    document.querySelector("#main #more").replaceWith(moreButton(data.next, (n) => audit(null, n, true)));
    return;
  }
  const chain = data.chain;
  const verdict = !chain ? h("span", { class: "muted" }, "no check") : chain.problem ? pill(`broken: ${chain.problem}`, "bad")
    : chain.ok ? pill("chain intact", "ok") : pill(chain.error ? `not readable (${chain.error})` : "not checked yet", "warn");
  main.replaceChildren(h("h2", {}, "Audit"),
    h("div", { class: "card", id: "chain" }, h("h3", {}, "Chain verification ", verdict),
      chain ? h("div", { class: "muted" }, `Incremental background check: records 1 to ${num(chain.verified_through)} verified; latest pass ${when(chain.checked_at)}; full pass from the first record ${when(chain.full_pass_at)}.`) : null),
    table([["#", "num"], ["Time"], ["Kind"], ["Action"], ["Target"], ["Subject"], ["Tenant"], ["Status"], ["Class"], ["Hash"]], rows),
    moreButton(data.next, (n) => audit(null, n, true)));
}

function usageCell(u, format = num) {
  if (!u) return h("td", { class: "muted" }, "–");
  return h("td", {}, bar(u.used, u.limit), ` ${format(u.used)} / ${format(u.limit)}`);
}

async function limits(main) {
  const data = await api("/ui/api/limits");
  const rows = data.data.map((r) => h("tr", { "data-limit": `${r.scope}:${r.name}` },
    h("td", {}, r.scope), h("td", {}, r.name), usageCell(r.rpm), usageCell(r.tpm), usageCell(r.budget, usd)));
  main.replaceChildren(h("h2", {}, "Limits"),
    h("p", { class: "muted" }, `Requests and tokens in the current ${data.window_s}-second window; spend in the current budget period. Counted in Redis, a figure includes the units processes have leased and not handed out yet.${data.counters_readable ? "" : " The counter store cannot be read right now."}`),
    rows.length ? table([["Scope"], ["Name"], ["Requests/min"], ["Tokens/min"], ["Budget"]], rows) : h("p", { class: "muted" }, "No limits configured."));
}

const RENDER = { overview, rollouts, drift, keys, audit, limits };

function current() {
  const name = location.hash.slice(1);
  const allowed = PAGES.filter(([, , p]) => may(p)).map(([n]) => n);
  return allowed.includes(name) ? name : allowed[0];
}

let generation = 0;

async function render() {
  clearTimeout(timer);
  const gen = ++generation;
  const name = current();
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === name));
  const main = document.getElementById("main");
  const view = h("div"); // built aside, shown only if no later render started meanwhile
  try {
    await RENDER[name](view);
  } catch (err) {
    if (err.status === 401) return;
    view.replaceChildren(h("p", { class: "bad", id: "failed" }, `This page could not be loaded: ${err.message}`));
  }
  if (gen !== generation) return;
  main.replaceChildren(...view.childNodes);
  main.dataset.page = name;
  main.dataset.renderMs = String(Math.round(performance.now()));
  if (REFRESH_MS[name]) timer = setTimeout(() => render(), REFRESH_MS[name]);
}

async function start() {
  session = await api("/ui/api/session");
  document.getElementById("who").textContent = `${session.subject} · ${session.roles.join(", ")}`;
  document.getElementById("nav").replaceChildren(...PAGES.filter(([, , p]) => may(p)).map(([name, label]) =>
    h("a", { href: `#${name}`, "data-page": name }, label)));
  document.getElementById("logout").addEventListener("click", async () => {
    await api("/ui/logout", { method: "POST" }).catch(() => null);
    location.assign("/ui");
  });
  window.addEventListener("hashchange", () => render());
  await render();
}

start();
