// The pinclaw dashboard: one page, five views (home/board, chat, history,
// approvals, health) over one gateway connection (gateway.js).
//
// Rule of this file: whatever the gateway, a model or a tool sends is put in
// the page as text (textContent, text nodes), never parsed as HTML.

import { Gateway, uuid } from "/gateway.js";

// --- DOM helpers ---------------------------------------------------------------

const $ = (id) => document.getElementById(id);

/** An element with attributes (on* become listeners) and children (strings become text nodes). */
function h(tag, attrs, ...children) {
  const el = tag.startsWith("svg:") ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  el.append(...children.flat(Infinity).filter((c) => c != null && c !== false));
  return el;
}

const button = (label, onclick, attrs = {}) => h("button", { type: "button", onclick, ...attrs }, label);

const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

function ago(ms) {
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(ms).toLocaleDateString();
}

function span(ms) {
  const m = Math.floor(ms / 60000);
  if (m < 1) return "under a minute";
  if (m < 60) return `${m} min`;
  const hrs = Math.floor(m / 60);
  return hrs < 48 ? `${hrs} h ${m % 60} min` : `${Math.floor(hrs / 24)} d ${hrs % 24} h`;
}

const mib = (bytes) => `${(bytes / 1048576).toFixed(1)} MiB`;

// Tell screen readers once (the live region), e.g. a finished reply.
function announce(text) {
  $("announce").textContent = text.length > 400 ? text.slice(0, 400) + "…" : text;
}

// --- connection ----------------------------------------------------------------

// A link from `pinclaw dashboard` carries the token in the fragment: keep it
// for this tab only and take it out of the address bar (and history).
{
  const m = location.hash.match(/[#&]token=([^&]*)/);
  if (m) {
    try {
      sessionStorage.setItem("pinclaw.secret", decodeURIComponent(m[1]));
    } catch {
      /* private mode: the login form asks */
    }
    history.replaceState(null, "", location.pathname + location.search);
  }
}

// The page's own origin; ?gateway=ws://… only for development against a
// gateway on another port (the gateway's CSP blocks it when it serves the page).
const gatewayUrl = new URLSearchParams(location.search).get("gateway") || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
const gw = new Gateway(gatewayUrl);
const scope = (s) => gw.hello?.auth?.scopes?.includes(s) || gw.hello?.auth?.scopes?.includes("operator.admin");

/** A node.invoke of the gateway's own board. */
const invoke = (command, params, timeoutMs = 15000) =>
  gw.request("node.invoke", { nodeId: "local", command, params, idempotencyKey: uuid(), timeoutMs });

const CONN_TEXT = { ok: "Connected", connecting: "Connecting…", offline: "Offline", pairing: "Waiting for approval", login: "Signed out" };

gw.addEventListener("state", () => showState());
gw.addEventListener("hello", () => {
  document.body.dataset.auth = gw.hello.auth?.method || "";
  refreshAll();
});
gw.addEventListener("gap", () => refreshAll());
gw.addEventListener("event", (e) => onEvent(e.detail));

function showState() {
  const state = gw.state;
  document.body.dataset.conn = state;
  if (gw.identity) document.body.dataset.identity = gw.identity.kind;
  $("conn").textContent = CONN_TEXT[state];
  $("banner").hidden = state !== "offline";
  $("banner-text").textContent = gw.problem && gw.problem !== "connection lost" ? `Offline: ${gw.problem}. Reconnecting…` : "Offline. Reconnecting…";
  $("login").hidden = state !== "login";
  $("login-error").textContent = state === "login" ? gw.problem : "";
  $("pairing").hidden = state !== "pairing";
  if (state === "pairing") {
    const id = gw.pairing?.requestId || "<requestId>";
    $("approve-cmd").textContent = `pinclaw devices approve ${id}`;
    $("pairing-note").textContent = `${
      gw.pairing?.reason === "scope-upgrade" ? "This browser asks for more access than it was approved for." : "This page connects by itself once you approve it."
    } Its device id starts with ${gw.identity?.id.slice(0, 12)}.`;
  }
  showView();
  if (state === "login") setTimeout(() => $("secret").focus(), 0);
}

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  gw.signIn($("secret").value.trim());
  $("secret").value = "";
});
$("retry").addEventListener("click", () => gw.wake());
$("check-now").addEventListener("click", () => gw.wake());

// Back from sleep, the network, or the back/forward cache: reconnect now,
// or refetch what may have changed while nobody looked.
for (const [target, type] of [[document, "visibilitychange"], [window, "online"], [window, "pageshow"]]) {
  target.addEventListener(type, () => {
    if (document.visibilityState === "hidden") return;
    if (gw.resume()) refreshAll();
  });
}

// --- views and routing -----------------------------------------------------------

const VIEWS = ["home", "chat", "history", "approvals", "health"];
let view = "home";

function showView(fetch) {
  const hash = location.hash.slice(1);
  view = VIEWS.includes(hash) ? hash : "home";
  const open = gw.state === "ok" || gw.state === "offline";
  for (const v of VIEWS) $(`view-${v}`).hidden = !open || v !== view;
  for (const a of document.querySelectorAll("[data-tab]")) {
    if (a.dataset.tab === view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.querySelector(".tabs").hidden = !open;
  if (fetch && gw.state === "ok") refreshView();
}

window.addEventListener("hashchange", () => showView(true));

// What each view fetches when it is shown (and again after a reconnect).
function refreshView() {
  if (view === "home") loadGlance();
  if (view === "history") loadHistory();
  if (view === "health") loadHealth();
  if (view === "approvals") loadApprovals();
  if (view === "chat") scrollLog();
}

// After every connect: everything the page shows, fetched again.
let boardLoaded = Promise.resolve();
function refreshAll() {
  logCursor = null; // another gateway process may have answered: its own log
  boardLoaded = loadBoard();
  loadApprovals();
  loadSessions();
  loadChat();
  loadGlance();
  if (view === "history" || view === "health") refreshView();
}

// Views poll what has no event, only while shown and visible.
setInterval(() => {
  if (gw.state !== "ok" || document.visibilityState === "hidden") return;
  if (view === "health") loadHealth();
  if (view === "history" && Date.now() - historyAt >= historyStep) loadHistory();
  if (view === "approvals") loadDmPairing();
  if (view === "home") {
    loadGlance();
    for (const d of devices.values()) paint(d);
  }
}, 10000);

function onEvent({ event, payload }) {
  switch (event) {
    case "node.event":
      if (payload?.event === "board.change") boardChange(payload.payload || {});
      break;
    case "chat":
      chatEvent(payload || {});
      break;
    case "agent":
      agentEvent(payload || {});
      break;
    case "exec.approval.requested":
      approvals.set(payload.id, payload);
      showApprovals();
      break;
    case "exec.approval.resolved":
      approvals.delete(payload.id);
      showApprovals();
      break;
    case "device.pair.requested":
    case "device.pair.resolved":
    case "node.pair.requested":
    case "node.pair.resolved":
      loadPairing();
      break;
    case "sessions.changed":
      loadSessions();
      break;
    case "node.presence":
      loadGlance();
      if (view === "health") loadHealth();
      break;
    case "shutdown":
      gw.problem = "the gateway is restarting";
      break;
  }
}

// Show a failure next to what failed, briefly.
function flash(el, text) {
  el.textContent = text;
  el.hidden = false;
  clearTimeout(el.timer);
  el.timer = setTimeout(() => (el.hidden = true), 8000);
}

// --- home: the board ------------------------------------------------------------------

const devices = new Map(); // name → device (board.state entry + el, busy, error)

// Field names carry their unit: temperature_c, humidity_pct, pressure_hpa.
const UNITS = { c: "°C", f: "°F", pct: "%", hpa: "hPa", v: "V", a: "A", w: "W", lux: "lx", ppm: "ppm" };
function field(name, value) {
  const cut = name.lastIndexOf("_");
  const unit = cut > 0 ? UNITS[name.slice(cut + 1)] : undefined;
  const label = unit ? name.slice(0, cut) : name;
  const digits = unit === "°C" || unit === "°F" || unit === "V" ? 1 : 0;
  const text = typeof value === "number" ? value.toFixed(Math.abs(value) < 10 && !digits ? 1 : digits) : "—";
  return { label: label.replace(/_/g, " "), text: unit ? `${text} ${unit}` : text };
}

const isSwitch = (d) => d.kind === "output";
const isInput = (d) => d.kind === "input";
const isPwm = (d) => d.kind === "pwm";
const isSensor = (d) => !isSwitch(d) && !isInput(d) && !isPwm(d);

async function loadBoard() {
  let state;
  try {
    state = await gw.request("board.state");
  } catch (e) {
    $("board-empty").hidden = false;
    $("board-empty").textContent = e.code === "OFFLINE" ? "" : `The board could not be read: ${e.message}`;
    return;
  }
  devices.clear();
  for (const d of state.devices || []) devices.set(d.name, d);
  const groups = { sensors: isSensor, outputs: (d) => isSwitch(d) || isPwm(d), inputs: isInput };
  for (const [id, test] of Object.entries(groups)) {
    const list = [...devices.values()].filter(test);
    $(id).replaceChildren(...list.map(tile));
    $(`h-${id}`).hidden = !list.length;
  }
  $("board-empty").hidden = devices.size > 0;
  $("board-empty").textContent = "This gateway has no board.";
  showApprovals();
}

// One tile per device: [data-device=name], its value in [data-testid=value].
// Line icons (24×24, stroked) for a tile's kind.
const ICONS = {
  temp: "M10 13.5V5a2 2 0 1 1 4 0v8.5a4 4 0 1 1-4 0zM12 10v6",
  chip: "M7 7h10v10H7zM10 3v4m4-4v4m-4 10v4m4-4v4M3 10h4m-4 4h4m10-4h4m-4 4h4",
  bolt: "M13 3 5 13.5h6L10 21l8-10.5h-6z",
  power: "M12 3.5v8M7.2 6.8a7 7 0 1 0 9.6 0",
  fan: "M12 10.5a1.5 1.5 0 1 0 0 3 1.5 1.5 0 1 0 0-3M12 10.5C11 6 12 3.5 15 4s2 4-1.5 7.5M13.5 12c4.5-1 7 0 6.5 3s-4 2-7.5-1.5M12 13.5c1 4.5 0 7-3 6.5s-2-4 1.5-7.5M10.5 12C6 13 3.5 12 4 9s4-2 7.5 1.5",
  motion: "M12 12h.01M8.5 8.5a5 5 0 0 0 0 7M15.5 8.5a5 5 0 0 1 0 7M5.5 5.5a9.2 9.2 0 0 0 0 13M18.5 5.5a9.2 9.2 0 0 1 0 13",
  button: "M12 12m-3.5 0a3.5 3.5 0 1 0 7 0 3.5 3.5 0 1 0-7 0M12 12m-8 0a8 8 0 1 0 16 0 8 8 0 1 0-16 0",
  door: "M6.5 20.5v-17h11v17M4 20.5h16M14.5 12.5v.01",
  drop: "M12 3.5s6 6.4 6 10.5a6 6 0 1 1-12 0c0-4.1 6-10.5 6-10.5z",
};
function icon(d) {
  const byClass = { door: "door", window: "door", opening: "door", moisture: "drop" };
  const name =
    { output: "power", pwm: "fan", cpu_temp: "chip", throttled: "bolt" }[d.kind] || (isInput(d) ? (motion(d) ? "motion" : byClass[inputClass(d)] || "button") : "temp");
  return h("svg:svg", { viewBox: "0 0 24 24", class: "icon", "aria-hidden": "true" }, h("svg:path", { d: ICONS[name] }));
}

function tile(d) {
  d.valueEl = h("span", { class: "value", "data-testid": "value" });
  d.noteEl = h("span", { class: "note" });
  d.el = h("article", { class: `tile ${d.kind}`, "data-device": d.name, "data-kind": d.kind }, h("div", { class: "head" }, h("span", { class: "label" }, d.label || d.name), icon(d)));
  if (isSwitch(d)) {
    d.control = h("button", { type: "button", role: "switch", class: "switch", "aria-label": d.label || d.name, onclick: () => toggle(d) }, h("span", { class: "knob" }));
    d.el.append(h("div", { class: "row" }, d.valueEl, d.control));
  } else if (isPwm(d)) {
    d.control = h("input", { type: "range", min: 0, max: 100, step: 1, "aria-label": d.label || d.name, onchange: () => setDuty(d) });
    d.el.append(d.valueEl, d.control);
  } else {
    d.el.append(d.valueEl);
    if (isSensor(d)) d.el.append((d.moreEl = h("span", { class: "more" })));
  }
  d.actions = h("div", { class: "actions" });
  d.el.append(d.noteEl, d.actions);
  paint(d);
  return d.el;
}

// What an input's two states mean, by the class it declares (board config
// `class = "motion"`); older gateways send none: guessed from the name.
const INPUT_WORDS = {
  button: ["Pressed", "Released"],
  motion: ["Motion", "Clear"],
  occupancy: ["Occupied", "Clear"],
  presence: ["Present", "Away"],
  door: ["Open", "Closed"],
  window: ["Open", "Closed"],
  opening: ["Open", "Closed"],
  moisture: ["Wet", "Dry"],
  smoke: ["Smoke", "Clear"],
  vibration: ["Vibration", "Still"],
};
const inputClass = (d) => d.class || (/pir|motion/i.test(`${d.name} ${d.label}`) ? "motion" : "");
const motion = (d) => ["motion", "occupancy", "presence"].includes(inputClass(d));

// Brings a tile up to date with its device.
function paint(d) {
  if (!d.el) return;
  const waiting = [...approvals.values()].filter((a) => a.device === d.name);
  const pending = d.busy === "confirm" || waiting.length > 0;
  d.el.classList.toggle("pending", pending);
  d.el.toggleAttribute("aria-busy", pending || !!d.busy);
  // A value shows its age only once it is old enough to doubt.
  const stale = d.ts && Date.now() - d.ts > 15 * 60000 ? `Updated ${ago(d.ts)}` : "";
  let note = d.error || (pending ? "Waiting for approval" : stale);
  if (isSwitch(d)) {
    const on = d.value === true;
    d.valueEl.textContent = d.value == null ? "—" : on ? "On" : "Off";
    d.el.dataset.state = on ? "on" : "off";
    d.control.setAttribute("aria-checked", on);
    d.control.disabled = !!d.busy;
    if (d.confirm && !pending && !d.error) note = "Asks for approval";
  } else if (isPwm(d)) {
    const pct = Math.round((d.duty || 0) * 100);
    d.valueEl.textContent = d.duty == null ? "—" : pct ? `${pct} %` : "Off";
    d.el.dataset.state = pct ? "on" : "off";
    if (document.activeElement !== d.control) d.control.value = pct;
    d.control.disabled = !!d.busy;
  } else if (isInput(d)) {
    const on = d.value === true;
    const [yes, no] = INPUT_WORDS[inputClass(d)] || ["Active", "Idle"];
    d.valueEl.textContent = d.value == null ? "—" : on ? yes : no;
    d.el.dataset.state = on ? "on" : "off";
  } else {
    const fields = Object.entries(d.values || {});
    if (d.kind === "throttled") {
      // get_throttled: bits 0-3 say what limits the SoC now, bits 16-19
      // what has happened since boot.
      const flags = d.values?.flags;
      const now = flags & 0xf, since = (flags >> 16) & 0xf;
      d.valueEl.textContent = flags == null ? "—" : now & 1 ? "Under-voltage" : now ? "Throttled" : "OK";
      d.moreEl.textContent = !flags ? "" : now ? `flags 0x${flags.toString(16)}` : `since boot: ${since & 1 ? "under-voltage" : "throttling"} (0x${flags.toString(16)})`;
      d.el.dataset.state = flags == null ? "" : now ? "warn" : "ok";
    } else {
      // Temperature first, then humidity, pressure, the rest.
      const rank = (k) => ["temp", "humid", "press"].findIndex((p) => k.startsWith(p)) >>> 0;
      fields.sort((a, b) => rank(a[0]) - rank(b[0]));
      d.valueEl.textContent = fields.length ? field(...fields[0]).text : "—";
      d.moreEl.textContent = fields
        .slice(1)
        .map(([k, v]) => field(k, v).text)
        .join(" · ");
    }
  }
  d.noteEl.textContent = note;
  // Pending approvals of this device can be decided right here.
  d.actions.replaceChildren(...(scope("operator.approvals") ? waiting.slice(0, 1).flatMap((a) => decisionButtons(a)) : []));
}

function boardChange(c) {
  const d = devices.get(c.name);
  if (!d) return;
  if ("value" in c) d.value = c.value;
  if ("duty" in c) d.duty = c.duty;
  if (c.values) d.values = { ...d.values, ...c.values };
  d.ts = c.ts;
  d.error = "";
  paint(d);
}

// A relay is switched only when the board says so: no optimistic flip. A
// confirm = true output waits (up to 5 min) for an operator's approval.
async function toggle(d) {
  if (d.busy) return;
  await write(d, "gpio.write", { name: d.name, value: d.value !== true }, (p) => "value" in p && (d.value = p.value));
}

async function setDuty(d) {
  const duty = Number(d.control.value) / 100;
  d.control.blur();
  await write(d, "pwm.set", { name: d.name, duty }, (p) => "duty" in p && (d.duty = p.duty));
}

async function write(d, command, params, apply) {
  d.busy = d.confirm ? "confirm" : "write";
  d.error = "";
  paint(d);
  try {
    const res = await invoke(command, params, d.confirm ? 300000 : 15000);
    apply(res?.payload || {});
  } catch (e) {
    const code = e.details?.code;
    d.error = code === "APPROVAL_DENIED" ? "Denied" : code === "APPROVAL_TIMEOUT" ? "Nobody approved in time" : e.message;
  }
  d.busy = false;
  paint(d);
}

// The strip at the top of home: is everything healthy?
async function loadGlance() {
  try {
    const [health, nodes, channels] = await Promise.all([gw.request("health"), gw.request("node.list"), gw.request("channels.status")]);
    const chips = [h("span", { class: "chip ok" }, `Up ${span(health.uptimeMs || 0)}`)];
    const models = health.providers;
    if (models) chips.push(h("span", { class: `chip ${models.available ? "ok" : "bad"}` }, models.available ? "Assistant ready" : "Assistant unavailable"));
    else chips.push(h("span", { class: "chip" }, "No model configured"));
    for (const id of channels.channelOrder || []) {
      const acc = (channels.channelAccounts?.[id] || [])[0] || {};
      const ok = acc.healthState === "healthy" || (acc.connected && !acc.lastError);
      chips.push(h("span", { class: `chip ${ok ? "ok" : "bad"}` }, `${channels.channelLabels?.[id] || id} ${ok ? "ok" : acc.healthState || "down"}`));
    }
    const remote = (nodes.nodes || []).filter((n) => !n.gatewayLocal);
    if (remote.length) {
      const up = remote.filter((n) => n.connected).length;
      chips.push(h("span", { class: `chip ${up === remote.length ? "ok" : "bad"}` }, `Nodes ${up}/${remote.length} online`));
    }
    const auto = health.automations;
    if (auto?.total) chips.push(h("span", { class: `chip ${auto.failing ? "bad" : "ok"}` }, `${auto.enabled} automation${auto.enabled === 1 ? "" : "s"}${auto.failing ? `, ${auto.failing} failing` : ""}`));
    $("glance").replaceChildren(...chips.map((c) => h("a", { href: "#health" }, c)));
  } catch {
    /* shown again on the next refresh */
  }
}

// --- history: sparklines ------------------------------------------------------------

const POINTS = 120; // a sparkline's resolution: enough for a phone, cheap to draw
let historyAt = 0; // when it was last fetched; refetched once per history step
let historyStep = 60000;

async function loadHistory() {
  await boardLoaded; // which devices are sensors
  historyAt = Date.now();
  const sensors = [...devices.values()].filter((d) => isSensor(d) && d.kind !== "throttled");
  const cards = [];
  for (const d of sensors) {
    let hist;
    try {
      hist = await gw.request("sensors.history", { name: d.name });
    } catch {
      continue;
    }
    const rows = Object.entries(hist.fields || {}).map(([name, series]) => sparkRow(name, series, hist.stepMs || 60000)).filter(Boolean);
    if (rows.length) cards.push(h("article", { class: "card chart", "data-device": d.name }, h("h3", {}, d.label || d.name), rows));
    historyStep = Math.max(10000, hist.stepMs || 60000);
    const kept = Object.values(hist.fields || {})[0]?.values.length * (hist.stepMs || 60000);
    if (kept) $("history-span").textContent = kept >= 5400000 ? `Last ${Math.round(kept / 3600000)} hours` : `Last ${Math.round(kept / 60000)} minutes`;
  }
  $("charts").replaceChildren(...cards);
  $("charts-empty").hidden = cards.length > 0;
}

// One field's row: name, last value, min–max, and a line over time.
function sparkRow(name, { startMs, values }, stepMs) {
  const first = values.findIndex((v) => v != null);
  if (first < 0) return null;
  const data = values.slice(first);
  // Average into at most POINTS buckets; null where a bucket has no value.
  const per = Math.max(1, Math.ceil(data.length / POINTS));
  const buckets = [];
  for (let i = 0; i < data.length; i += per) {
    const got = data.slice(i, i + per).filter((v) => v != null);
    buckets.push(got.length ? got.reduce((a, b) => a + b, 0) / got.length : null);
  }
  const seen = data.filter((v) => v != null);
  const min = Math.min(...seen);
  const max = Math.max(...seen);
  const last = seen[seen.length - 1];
  const range = max - min;
  const W = 300;
  const H = 48;
  const x = (i) => (buckets.length > 1 ? (i / (buckets.length - 1)) * W : W);
  const y = (v) => (range ? H - 4 - ((v - min) / range) * (H - 8) : H / 2);
  // A polyline per run of values; a gap of a few missed samples is bridged,
  // a longer one (the hub was off) breaks the line.
  const lines = [];
  let run = [];
  let gap = 0;
  buckets.forEach((v, i) => {
    if (v == null) return gap++;
    if (gap > 3) lines.push(run), (run = []);
    gap = 0;
    run.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
  });
  if (run.length) lines.push(run);
  const f = field(name, last);
  const lo = field(name, min).text;
  const hi = field(name, max).text;
  const since = startMs + first * stepMs;
  const svg = h(
    "svg:svg",
    { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", class: "spark", role: "img", "aria-label": `${f.label} since ${clock(since)}: from ${lo} to ${hi}, now ${f.text}` },
    // Each run: a soft area under it, then the line (a lone sample is a dot).
    lines.map((pts) => {
      const [x0, y0] = pts[0].split(",");
      if (pts.length === 1) return h("svg:circle", { cx: x0, cy: y0, r: 2 });
      const x1 = pts[pts.length - 1].split(",")[0];
      return [h("svg:polygon", { class: "area", points: `${x0},${H} ${pts.join(" ")} ${x1},${H}` }), h("svg:polyline", { points: pts.join(" ") })];
    }),
  );
  return h(
    "div",
    { class: "spark-row" },
    h("div", { class: "spark-head" }, h("span", { class: "label" }, f.label), h("strong", {}, f.text)),
    svg,
    h("div", { class: "spark-foot muted" }, h("span", {}, `since ${clock(since)}`), h("span", {}, `${lo} – ${hi}`)),
  );
}

// --- approvals and pairing ----------------------------------------------------------

const approvals = new Map(); // id → exec.approval request
let pairing = { devices: [], nodes: [] };
let dmPairing = [];

function decisionButtons(a) {
  const resolve = (decision) => async (e) => {
    e.target.disabled = true;
    try {
      await gw.request("exec.approval.resolve", { id: a.id, decision });
      approvals.delete(a.id);
      showApprovals();
    } catch (err) {
      e.target.disabled = false;
      e.target.textContent = err.message;
    }
  };
  return [
    button("Approve", resolve("allow"), { class: "primary", "data-testid": "approve", "data-approval": a.id }),
    button("Deny", resolve("deny"), { "data-testid": "deny", "data-approval": a.id }),
  ];
}

async function loadApprovals() {
  if (!scope("operator.approvals")) return;
  try {
    const list = await gw.request("exec.approval.list");
    approvals.clear();
    for (const a of Array.isArray(list) ? list : list.approvals || []) approvals.set(a.id, a);
  } catch {
    /* offline: shown on the next connect */
  }
  showApprovals();
  loadPairing();
  if (view === "approvals") loadDmPairing();
}

async function loadPairing() {
  if (!scope("operator.pairing")) return;
  try {
    const [dev, nod] = await Promise.all([gw.request("device.pair.list"), gw.request("node.pair.list")]);
    // A device's retry that was in flight while it was approved can leave a
    // "not paired" request behind for a device that is paired: not shown.
    const paired = new Set((dev.paired || []).map((d) => d.deviceId));
    pairing = { devices: (dev.pending || []).filter((p) => !(p.reason === "not-paired" && paired.has(p.deviceId))), nodes: nod.pending || [] };
  } catch {
    return;
  }
  showApprovals();
}

async function loadDmPairing() {
  try {
    dmPairing = (await gw.request("channels.pairing.list")).requests || [];
  } catch {
    return;
  }
  showApprovals();
}

// A pairing request's card with approve / reject.
function requestCard(title, lines, approve, reject, testid, requestId) {
  const status = h("p", { class: "error", hidden: true });
  const act = (fn) => async (e) => {
    e.target.disabled = true;
    try {
      await fn();
      e.target.closest("article").remove();
      loadPairing(); // the lists and the badge, as they are now
      loadDmPairing();
    } catch (err) {
      e.target.disabled = false;
      flash(status, err.message);
    }
  };
  return h(
    "article",
    { class: "card request", "data-testid": testid, "data-request": requestId },
    h("h3", {}, title),
    lines.filter(Boolean).map((l) => h("p", { class: "muted" }, l)),
    status,
    h("div", { class: "actions" }, button("Approve", act(approve), { class: "primary", "data-testid": `${testid}-approve` }), reject && button("Reject", act(reject), { "data-testid": `${testid}-reject` })),
  );
}

function showApprovals() {
  for (const d of devices.values()) paint(d);
  const cards = [...approvals.values()].map((a) =>
    h(
      "article",
      { class: "card request", "data-testid": "approval", "data-approval": a.id },
      h("h3", {}, a.summary || a.request?.command || "A command"),
      h("p", { class: "muted" }, a.device ? `${devices.get(a.device)?.label || a.device} on this hub` : a.request?.host ? `On ${a.request.host}` : ""),
      h("p", { class: "muted" }, `Asked${a.requestedBy ? ` by ${a.requestedBy}` : ""} at ${clock(a.createdAtMs || a.ts || Date.now())}${a.expiresAtMs ? `, expires at ${clock(a.expiresAtMs)}` : ""}`),
      h("div", { class: "actions" }, decisionButtons(a)),
    ),
  );
  $("approval-list").replaceChildren(...(cards.length ? cards : [h("p", { class: "muted" }, "Nothing waits for approval.")]));
  // In chat too: a run that switches a guarded output waits for this. (The
  // bar takes room from the conversation: keep its end in view.)
  const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 120;
  $("chat-approvals").replaceChildren(
    ...[...approvals.values()].map((a) => h("div", { class: "pending-row" }, h("span", {}, "Waiting for you: ", h("strong", {}, a.summary || a.request?.command || "a command")), h("span", { class: "actions" }, decisionButtons(a)))),
  );
  if (atEnd) scrollLog(true);
  const pairs = [
    ...pairing.devices.map((p) =>
      requestCard(
        p.displayName || p.clientId || "A new device",
        [
          `${p.platform || "Unknown platform"}${p.remoteIp ? ` from ${p.remoteIp}` : ""}, device id ${(p.deviceId || "").slice(0, 12)}`,
          p.scopes?.includes("operator.admin") ? "Asks for full control of the hub" : `Asks for ${p.role || "operator"} access${p.scopes?.length ? `: ${p.scopes.join(", ")}` : ""}`,
          p.reason && p.reason !== "not-paired" && `Already paired; asks for more (${p.reason})`,
        ],
        () => gw.request("device.pair.approve", { requestId: p.requestId }),
        () => gw.request("device.pair.reject", { requestId: p.requestId }),
        "device-request",
        p.requestId,
      ),
    ),
    ...pairing.nodes.map((p) =>
      requestCard(
        `Node: ${p.displayName || (p.nodeId || "").slice(0, 8)}`,
        [`${p.platform || "A board"}${p.version ? `, pinclaw ${p.version}` : ""}`, p.commands?.length && `Wants to run: ${p.commands.join(", ")}`],
        () => gw.request("node.pair.approve", { requestId: p.requestId }),
        () => gw.request("node.pair.reject", { requestId: p.requestId }),
        "node-request",
        p.requestId,
      ),
    ),
  ];
  $("pair-list").replaceChildren(...(pairs.length ? pairs : [h("p", { class: "muted" }, "No device or node is waiting.")]));
  const dms = dmPairing.map((r) => {
    const which = { channel: r.channel, accountId: r.accountId, requestId: r.requestId };
    return requestCard(
      `${r.channelLabel || r.channel}: ${r.senderLabel || r.senderId}`,
      [`Wants to talk to the assistant${r.createdAt ? `, asked ${ago(Date.parse(r.createdAt))}` : ""}`, r.senderLabel && `Sender ${r.senderId}`],
      () => gw.request("channels.pairing.approve", { ...which, notify: true }),
      () => gw.request("channels.pairing.dismiss", which),
      "dm-request",
      r.requestId,
    );
  });
  $("dm-list").replaceChildren(...(dms.length ? dms : [h("p", { class: "muted" }, "No chat sender is waiting.")]));
  const count = approvals.size + pairing.devices.length + pairing.nodes.length + dmPairing.length;
  $("badge").hidden = !count;
  $("badge").textContent = count;
}

// --- health -------------------------------------------------------------------------

let logCursor = null;

// A card of facts; state "ok", "warn" or "none" colours its dot.
function card(title, rows, state = "ok") {
  return h(
    "article",
    { class: `card facts ${state}`, "data-testid": `health-${title.toLowerCase()}` },
    h("h3", {}, title),
    h(
      "dl",
      {},
      rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
    ),
  );
}

async function loadHealth() {
  const get = (m, p) => gw.request(m, p).catch(() => null);
  const [health, status, channels, nodes, cron] = await Promise.all([get("health"), get("status"), get("channels.status"), get("node.list"), get("cron.list", { includeDisabled: true })]);
  const cards = [];
  if (health) {
    cards.push(
      card("Gateway", [
        ["Version", health.version || "?"],
        ["Up", span(health.uptimeMs || 0)],
        ["Memory", status?.processMemory ? mib(status.processMemory.rssBytes) : "?"],
        ["Clients", `${health.connections?.operators ?? "?"} operators, ${health.connections?.nodes ?? 0} nodes`],
        ["Event loop", health.eventLoop?.degraded ? `degraded: ${health.eventLoop.reasons.join(", ")}` : "ok"],
      ], health.eventLoop?.degraded ? "warn" : "ok"),
    );
  }
  const models = status?.models || [];
  cards.push(
    card(
      "Models",
      models.length
        ? models.map((m) => [
            m.id,
            m.status === "available"
              ? "available"
              : `${{ cooldown: "cooling down", probing: "breaker half-open" }[m.status] || m.status}${m.cooldownRemainingMs ? ` ${Math.ceil(m.cooldownRemainingMs / 1000)} s` : ""}${m.lastError ? `: ${m.lastError}` : ""}`,
          ])
        : [["", "No model configured"]],
      !models.length ? "none" : models.some((m) => m.status !== "available") ? "warn" : "ok",
    ),
  );
  const rows = [];
  for (const id of channels?.channelOrder || []) {
    for (const a of channels.channelAccounts?.[id] || []) {
      rows.push([`${channels.channelLabels?.[id] || id}${a.name ? ` (${a.name})` : ""}`, `${a.healthState || (a.connected ? "connected" : "down")}${a.lastError ? `: ${a.lastError}` : ""}`]);
    }
  }
  const mqtt = health?.mqtt;
  if (mqtt) rows.push([`MQTT (${mqtt.nodeId})`, `${mqtt.healthState}${mqtt.reconnectCount ? `, ${mqtt.reconnectCount} reconnects` : ""}${mqtt.lastError ? `: ${mqtt.lastError}` : ""}`]);
  cards.push(card("Channels", rows.length ? rows : [["", "No channel configured"]], !rows.length ? "none" : rows.some((r) => !r[1].startsWith("healthy")) ? "warn" : "ok"));
  const nodeRows = (nodes?.nodes || []).map((n) => [n.displayName || n.nodeId.slice(0, 8), `${n.gatewayLocal ? "this hub" : n.connected ? "online" : `offline${n.lastSeenAtMs ? `, seen ${ago(n.lastSeenAtMs)}` : ""}`}${n.approvalState && n.approvalState !== "approved" ? `, ${n.approvalState}` : ""}`]);
  cards.push(card("Nodes", nodeRows.length ? nodeRows : [["", "None"]], nodeRows.some((r) => r[1].startsWith("offline")) ? "warn" : "ok"));
  const jobs = cron?.jobs || [];
  cards.push(
    card(
      "Automations",
      jobs.length
        ? jobs.map((j) => [j.name || j.id.slice(0, 8), !j.enabled ? "off" : `${j.state?.lastStatus ? `last ${j.state.lastStatus}, ` : ""}${j.state?.nextRunAtMs ? `next ${clock(j.state.nextRunAtMs)}` : "idle"}`])
        : [["", "None"]],
      !jobs.length ? "none" : jobs.some((j) => j.state?.consecutiveErrors) ? "warn" : "ok",
    ),
  );
  // This browser: how it proves itself, and a way out (a shared tablet).
  const me = card("This browser", [
    ["Device id", `${gw.identity.id.slice(0, 16)}…`],
    ["Key", gw.identity.kind === "webcrypto" ? "WebCrypto Ed25519, not extractable" : "pure-JS Ed25519 (not a secure context)"],
    ["Signed in with", { token: "the gateway token", password: "the password", "device-token": "its device token" }[gw.hello?.auth?.method] || "?"],
  ]);
  me.append(h("div", { class: "actions" }, button("Sign out", () => gw.signOut(), { "data-testid": "sign-out" })));
  cards.push(me);
  $("health").replaceChildren(...cards);
  const logs = await get("logs.tail", logCursor == null ? { limit: 200 } : { cursor: logCursor });
  if (!logs) return;
  const box = $("logs");
  const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
  if (logCursor == null || logs.reset) box.replaceChildren();
  box.append(...(logs.lines || []).map((l) => h("div", { class: /\b(ERROR|WARN)\b/.test(l) ? "warn" : "" }, l)));
  while (box.childElementCount > 500) box.firstChild.remove();
  if (!box.childElementCount) box.append(h("div", { class: "empty" }, "No log lines yet."));
  else if (logs.lines?.length) box.querySelector(".empty")?.remove();
  logCursor = logs.cursor;
  if (atEnd) box.scrollTop = box.scrollHeight;
}

// --- chat ---------------------------------------------------------------------------

const log = $("log");
const input = $("chat-input");
let sessionKey = "agent:main:main";
try {
  sessionKey = localStorage.getItem("pinclaw.session") || sessionKey;
} catch {
  /* storage off: the main session */
}
let activeRun = null; // the run of this session that is streaming
const runs = new Map(); // runId → {bubble, tools: Map(toolCallId → card)}

// A small Markdown subset, built from nodes: ``` blocks, `code`, **bold**,
// *italic*, "- " lists, paragraphs.
function markdown(text) {
  const out = [];
  const parts = text.split(/```[^\n]*\n?/);
  parts.forEach((part, i) => {
    if (i % 2) return out.push(h("pre", {}, h("code", {}, part.replace(/\n$/, ""))));
    for (const block of part.split(/\n{2,}/)) {
      if (!block.trim()) continue;
      const lines = block.split("\n");
      if (lines.every((l) => /^\s*([-*•]|\d+\.)\s/.test(l))) {
        out.push(h(/^\s*\d/.test(lines[0]) ? "ol" : "ul", {}, lines.map((l) => h("li", {}, inline(l.replace(/^\s*([-*•]|\d+\.)\s+/, ""))))));
      } else {
        out.push(h("p", {}, lines.map((l, j) => [j ? h("br") : null, inline(l.replace(/^#+\s+/, ""))])));
      }
    }
  });
  return out;
}

function inline(line) {
  return line.split(/(`[^`]+`|\*\*[^*]+\*\*|\*[^*\s][^*]*\*)/).map((t, i) => {
    if (!(i % 2)) return t;
    if (t.startsWith("`")) return h("code", {}, t.slice(1, -1));
    if (t.startsWith("**")) return h("strong", {}, t.slice(2, -2));
    return h("em", {}, t.slice(1, -1));
  });
}

const textOf = (m) => (typeof m?.text === "string" && m.text) || (m?.content || []).filter((c) => c.type === "text").map((c) => c.text).join("") || "";

function scrollLog(force) {
  if (force || log.scrollHeight - log.scrollTop - log.clientHeight < 120) log.scrollTop = log.scrollHeight;
}

function bubble(role, text, attrs = {}) {
  const el = h("div", { class: `msg ${role}`, "data-role": role, ...attrs }, h("div", { class: "body" }, markdown(text)));
  log.append(el);
  return el;
}

function setText(el, text) {
  el.querySelector(".body").replaceChildren(...markdown(text));
}

function errorLine(text, runId) {
  log.append(h("div", { class: "msg assistant error", "data-role": "assistant", "data-kind": "error", "data-run": runId, role: "alert" }, text));
}

// A tool call as one compact line; its result folds out.
function toolCard(call, runId) {
  const args = call.arguments || call.args || {};
  let what = "";
  if (args.invokeCommand) {
    let p = {};
    try {
      p = JSON.parse(args.invokeParamsJson || "{}");
    } catch {
      /* shown without params */
    }
    what = `${args.invokeCommand}${p.name ? ` ${p.name}` : ""}${"value" in p ? ` → ${p.value ? "on" : "off"}` : ""}`;
  } else {
    what = JSON.stringify(args).slice(0, 80);
  }
  const result = h("pre", { class: "result" });
  const el = h(
    "details",
    { class: "msg tool running", "data-role": "tool", "data-run": runId },
    h("summary", {}, h("span", { class: "tool-name" }, call.name || "tool"), " ", h("span", { class: "tool-what" }, what)),
    result,
  );
  el.result = result;
  return el;
}

function toolResult(card, text, isError) {
  card.classList.remove("running");
  card.classList.toggle("failed", !!isError);
  card.result.textContent = text.length > 4000 ? `${text.slice(0, 4000)}…` : text;
}

function run(runId) {
  if (!runs.has(runId)) runs.set(runId, { tools: new Map() });
  return runs.get(runId);
}

async function loadSessions() {
  let list = [];
  try {
    list = (await gw.request("sessions.list", { limit: 50 })).sessions || [];
  } catch {
    return;
  }
  const name = (key) => key.replace(/^agent:main:/, "").replace(/^main$/, "Main chat");
  const keys = list.map((s) => s.key);
  if (!keys.includes(sessionKey)) keys.unshift(sessionKey);
  const select = $("session");
  select.replaceChildren(
    ...keys.map((k) => {
      const s = list.find((x) => x.key === k);
      return h("option", { value: k, selected: k === sessionKey }, `${s?.label || name(k)}${s?.lastActivityAt ? ` · ${ago(s.lastActivityAt)}` : ""}`);
    }),
  );
}

$("session").addEventListener("change", (e) => openSession(e.target.value));
$("new-chat").addEventListener("click", () => {
  openSession(`agent:main:web-${new Date().toISOString().slice(0, 16).replace(/[-:T]/g, "")}`);
  loadSessions();
  input.focus();
});

function openSession(key) {
  sessionKey = key;
  try {
    localStorage.setItem("pinclaw.session", key);
  } catch {
    /* not remembered */
  }
  loadChat();
}

async function loadChat() {
  let hist;
  try {
    hist = await gw.request("chat.history", { sessionKey, limit: 100 });
  } catch {
    return;
  }
  runs.clear();
  log.replaceChildren();
  for (const m of hist.messages || []) {
    const text = textOf(m);
    if (m.kind === "error") errorLine(text, m.runId);
    else if (m.role === "user") bubble("user", text, { class: `msg user${m.dropped ? " dropped" : ""}` });
    else if (m.role === "assistant") {
      for (const call of m.toolCalls || []) log.append((run(m.runId).tools.set(call.id, toolCard(call, m.runId)), run(m.runId).tools.get(call.id)));
      if (text) bubble("assistant", text);
    } else if (m.role === "tool") {
      const card = run(m.runId).tools.get(m.toolCallId) || log.appendChild(toolCard({ name: m.toolName }, m.runId));
      toolResult(card, text, m.isError);
    }
  }
  if (!log.childElementCount) log.append(h("p", { class: "empty muted" }, "Ask about the house: “how warm is the room?”, “switch relay1 on”."));
  const info = hist.sessionInfo || {};
  activeRun = info.hasActiveRun ? (info.activeRunIds || [])[0] || activeRun : null;
  composerState();
  scrollLog(true);
}

function composerState() {
  $("chat-abort").hidden = !activeRun;
}

function chatEvent(p) {
  if (p.sessionKey !== sessionKey) return;
  log.querySelector(".empty")?.remove();
  const r = run(p.runId);
  const text = textOf(p.message);
  if (p.state === "delta") {
    activeRun = p.runId;
    r.text = text || (r.text || "") + (p.deltaText || "");
    if (!r.bubble) r.bubble = bubble("assistant", "", { "aria-busy": "true", "data-run": p.runId });
    setText(r.bubble, r.text);
  } else if (p.state === "final") {
    if (text) {
      r.bubble ??= bubble("assistant", "", { "data-run": p.runId });
      setText(r.bubble, text);
      announce(text);
    }
    r.bubble?.removeAttribute("aria-busy");
    activeRun = null;
  } else if (p.state === "error" || p.state === "aborted") {
    r.bubble?.removeAttribute("aria-busy");
    if (p.state === "error") errorLine(p.errorMessage || "The run failed.", p.runId);
    else log.append(h("div", { class: "msg note muted" }, "Stopped."));
    activeRun = null;
  }
  composerState();
  scrollLog();
}

function agentEvent(p) {
  if (p.sessionKey !== sessionKey) return;
  const d = p.data || {};
  const r = run(p.runId);
  if (p.stream === "lifecycle" && d.phase === "start") activeRun = p.runId;
  if (p.stream === "tool" && d.phase === "start") {
    log.querySelector(".empty")?.remove();
    const card = toolCard({ name: d.name, args: d.args }, p.runId);
    r.tools.set(d.toolCallId, card);
    // Tools run before the reply that follows them: a bubble still open
    // from an earlier turn of this run is closed.
    r.bubble?.removeAttribute("aria-busy");
    r.bubble = null;
    r.text = "";
    log.append(card);
  } else if (p.stream === "tool" && d.phase === "result") {
    const card = r.tools.get(d.toolCallId);
    if (card) toolResult(card, typeof d.result === "string" ? d.result : JSON.stringify(d.result), d.isError);
  }
  composerState();
  scrollLog();
}

async function send() {
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  grow();
  log.querySelector(".empty")?.remove();
  const el = bubble("user", text, { class: "msg user sending" });
  scrollLog(true);
  try {
    const ack = await gw.request("chat.send", { sessionKey, message: text, idempotencyKey: uuid() });
    activeRun = ack.runId;
    el.classList.remove("sending");
  } catch (e) {
    el.remove();
    if (!input.value) input.value = text;
    grow();
    errorLine(`Not sent: ${e.message}`);
  }
  composerState();
}

function grow() {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
}

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  send();
});
input.addEventListener("input", grow);
input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send();
  }
});
$("chat-abort").addEventListener("click", () => {
  gw.request("chat.abort", { sessionKey, runId: activeRun }).catch((e) => errorLine(e.message));
});

// --- start ------------------------------------------------------------------------------

showState();
gw.wake();
