// The dashboard's connection to its gateway: OpenClaw protocol v4 over one
// WebSocket. It proves a device identity (Ed25519, signed v3 payload), keeps
// the secrets where they belong (the shared token for this tab in
// sessionStorage, the revocable device token per gateway in localStorage),
// waits out pairing, reconnects with backoff, and treats two tick periods
// of silence as a dead connection.
//
// Events it dispatches: "state" (detail: the state, see STATES), "hello"
// (detail: the hello-ok payload), "event" (detail: {event, payload}) and
// "gap" (a broadcast was missed: refetch).

export const VERSION = "0.1.0";
const CLIENT = { id: "pinclaw-dashboard", mode: "webchat" };
const ROLE = "operator";
const SCOPES = ["operator.admin", "operator.read", "operator.write", "operator.approvals", "operator.pairing"];
// The Control UI's reconnect cadence, also while a pairing waits.
const BACKOFF = { first: 800, factor: 1.7, max: 15000 };
const SECRET = "pinclaw.secret"; // sessionStorage: the shared token or password

/** What the page shows: login (no usable secret), connecting (first try),
 * ok, offline (retrying), pairing (waiting for approval). */
export const STATES = ["login", "connecting", "ok", "offline", "pairing"];

// --- small helpers ---------------------------------------------------------

// Storage can throw (private modes, quotas): the page then just forgets.
const read = (area, key) => {
  try {
    return area.getItem(key);
  } catch {
    return null;
  }
};
const write = (area, key, value) => {
  try {
    value == null ? area.removeItem(key) : area.setItem(key, value);
  } catch {
    /* not stored */
  }
};

const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const unb64url = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const utf8 = (s) => new TextEncoder().encode(s);

/** A random UUID (crypto.randomUUID needs a secure context; this does not). */
export function uuid() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 15) | 64;
  b[8] = (b[8] & 63) | 128;
  const x = hex(b);
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** An error answer of the gateway (or OFFLINE when there is no connection). */
export class GatewayError extends Error {
  constructor(error) {
    super(error.message || error.code || "request failed");
    Object.assign(this, { code: error.code, details: error.details || {}, retryAfterMs: error.retryAfterMs });
  }
}

// --- device identity ---------------------------------------------------------

// One IndexedDB object store of keys and values.
function idb(mode, op) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open("pinclaw", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("kv");
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction("kv", mode);
      const req = op(tx.objectStore("kv"));
      tx.oncomplete = () => (db.close(), resolve(req.result));
      tx.onerror = tx.onabort = () => (db.close(), reject(tx.error));
    };
  });
}

// WebCrypto Ed25519 with a non-extractable private key kept in IndexedDB
// (a CryptoKey survives structured cloning, never as bytes).
async function webCryptoIdentity() {
  if (!(globalThis.isSecureContext && crypto.subtle)) return null;
  try {
    let pair = await idb("readonly", (s) => s.get("device-key")).catch(() => null);
    if (!pair) {
      pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
      await idb("readwrite", (s) => s.put(pair, "device-key")).catch(() => {});
    }
    const pub = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    const id = hex(new Uint8Array(await crypto.subtle.digest("SHA-256", pub)));
    const sign = async (text) => b64url(new Uint8Array(await crypto.subtle.sign("Ed25519", pair.privateKey, utf8(text))));
    return { kind: "webcrypto", id, publicKey: b64url(pub), sign };
  } catch {
    return null; // this browser's WebCrypto has no Ed25519
  }
}

// The pure-JS fallback, loaded only when needed; its seed in localStorage.
async function scriptIdentity(stored) {
  const ed = await import("/ed25519.js");
  const seed = stored ? unb64url(stored) : crypto.getRandomValues(new Uint8Array(32));
  write(localStorage, "pinclaw.seed", b64url(seed));
  const pub = ed.publicKey(seed);
  const sign = async (text) => b64url(ed.sign(utf8(text), seed));
  return { kind: "js", id: hex(ed.sha256(pub)), publicKey: b64url(pub), sign };
}

/** This browser's device identity: {kind, id, publicKey, sign(text)}. A
 * browser that once used the fallback keeps it, so its pairing holds. */
export async function deviceIdentity() {
  const seed = read(localStorage, "pinclaw.seed");
  return (!seed && (await webCryptoIdentity())) || scriptIdentity(seed);
}

// --- the connection ----------------------------------------------------------

const normalize = (s) => (s || "").trim().replace(/[A-Z]/g, (c) => c.toLowerCase());

export class Gateway extends EventTarget {
  /** url: the gateway's WebSocket URL. */
  constructor(url) {
    super();
    this.url = url;
    this.state = "connecting";
    this.ws = null;
    this.pending = new Map();
    this.n = 0;
    this.delay = BACKOFF.first;
    this.hello = null;
    this.problem = ""; // why the last attempt failed, for the login and pairing views
    this.pairing = null; // {requestId, reason} while waiting for approval
    this.instanceId = read(sessionStorage, "pinclaw.instance") || uuid();
    write(sessionStorage, "pinclaw.instance", this.instanceId);
  }

  // The device token this gateway gave this browser's identity.
  get tokenKey() {
    return `pinclaw.device:${this.url}`;
  }
  deviceToken() {
    try {
      const saved = JSON.parse(read(localStorage, this.tokenKey));
      return saved && saved.deviceId === this.identity?.id ? saved.token : null;
    } catch {
      return null;
    }
  }

  /** Use a shared token or password typed in (or from the link) and connect. */
  signIn(secret) {
    write(sessionStorage, SECRET, secret || null);
    this.problem = "";
    this.set("connecting");
    this.wake();
  }

  /** Forget the secrets of this tab and this gateway. */
  signOut() {
    write(sessionStorage, SECRET, null);
    write(localStorage, this.tokenKey, null);
    this.set("login");
    this.drop();
  }

  /** Connect (or reconnect now, skipping the backoff wait). */
  async wake() {
    clearTimeout(this.timer);
    if (this.ws || this.state === "login" || this.opening) return;
    this.opening = true;
    try {
      this.identity ??= await deviceIdentity();
      if (!read(sessionStorage, SECRET) && !this.deviceToken()) return this.set("login");
      const ws = new WebSocket(this.url);
      this.ws = ws;
      this.seq = 0;
      ws.onmessage = (e) => this.ws === ws && this.frame(e.data);
      ws.onclose = () => this.ws === ws && this.closed();
    } catch (e) {
      // No identity (the fallback did not load) or no socket: try again later.
      this.problem = e.message;
      this.retry();
    } finally {
      this.opening = false;
    }
  }

  /** A request; resolves with the payload, rejects with a GatewayError. */
  request(method, params = {}) {
    if (this.state !== "ok") return Promise.reject(new GatewayError({ code: "OFFLINE", message: "not connected" }));
    return this.send(method, params);
  }

  send(method, params) {
    const id = String(++this.n);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ type: "req", id, method, params }));
    });
  }

  set(state) {
    if (state === this.state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  frame(text) {
    this.lastFrame = Date.now();
    let f;
    try {
      f = JSON.parse(text);
    } catch {
      return;
    }
    if (f.type === "res") {
      const p = this.pending.get(f.id);
      this.pending.delete(f.id);
      if (p) f.ok ? p.resolve(f.payload) : p.reject(new GatewayError(f.error || {}));
    } else if (f.type === "event" && f.event === "connect.challenge") {
      this.connect(f.payload || {}).catch(() => this.drop());
    } else if (f.type === "event") {
      // seq counts every broadcast meant for this connection: a jump means
      // some were dropped (slow consumer), so views refetch.
      if (typeof f.seq === "number") {
        if (this.seq && f.seq > this.seq + 1) this.emit("gap");
        this.seq = f.seq;
      }
      this.emit("event", { event: f.event, payload: f.payload });
    }
  }

  async connect({ nonce, ts }) {
    const secret = read(sessionStorage, SECRET);
    const deviceToken = this.deviceToken();
    // The secret goes as token and password (whichever the gateway uses),
    // with the device token so a rotated secret still lets a paired device in.
    const auth = {};
    if (secret) Object.assign(auth, { token: secret, password: secret });
    if (deviceToken) auth.deviceToken = deviceToken;
    const platform = navigator.userAgentData?.platform || navigator.platform || "web";
    const client = { ...CLIENT, version: VERSION, platform, displayName: `Dashboard on ${platform}`, instanceId: this.instanceId };
    const signed = ["v3", this.identity.id, client.id, client.mode, ROLE, SCOPES.join(","), ts, auth.token || deviceToken || "", nonce, normalize(platform), ""];
    const device = {
      id: this.identity.id,
      publicKey: this.identity.publicKey,
      signature: await this.identity.sign(signed.join("|")),
      signedAt: ts,
      nonce,
    };
    const params = { minProtocol: 4, maxProtocol: 4, client, role: ROLE, scopes: SCOPES, caps: ["tool-events"], auth, device };
    try {
      const hello = await this.send("connect", params);
      this.hello = hello;
      this.delay = BACKOFF.first;
      this.problem = "";
      this.pairing = null;
      if (hello.auth?.deviceToken) {
        write(localStorage, this.tokenKey, JSON.stringify({ deviceId: this.identity.id, token: hello.auth.deviceToken }));
      }
      this.watch((hello.policy && hello.policy.tickIntervalMs) || 30000);
      this.set("ok");
      this.emit("hello", hello);
    } catch (e) {
      this.refused(e, secret, deviceToken);
    }
  }

  // The handshake was refused; the gateway closes the socket next, and
  // closed() retries unless the page now needs a secret.
  refused(e, secret, deviceToken) {
    const code = e.details?.code || e.code || "";
    this.problem = e.message;
    if (code === "PAIRING_REQUIRED" || e.code === "NOT_PAIRED") {
      this.pairing = { requestId: e.details?.requestId || "", reason: e.details?.reason || "" };
      this.set("pairing");
    } else if (code === "AUTH_RATE_LIMITED") {
      this.delay = Math.max(this.delay, e.retryAfterMs || BACKOFF.max);
      this.set("offline");
    } else if (code.startsWith("AUTH_")) {
      // A device token that no longer matches (revoked, re-paired) is dropped;
      // if a secret came with it, that secret was refused too.
      if (deviceToken) write(localStorage, this.tokenKey, null);
      if (secret) write(sessionStorage, SECRET, null);
      this.problem = secret ? "The gateway did not accept that token or password." : deviceToken ? "This browser's pairing is no longer valid. Sign in again." : "";
      this.set("login");
    } else {
      this.set("offline");
    }
  }

  // The two-tick watchdog: a connection that went quiet is dead even if
  // the socket has not noticed (a phone that slept, a pulled cable).
  watch(tickMs) {
    this.tickMs = tickMs;
    clearInterval(this.watchdog);
    this.watchdog = setInterval(() => this.stale() && this.drop(), 5000);
  }

  stale() {
    return this.state === "ok" && Date.now() - this.lastFrame > 2 * this.tickMs;
  }

  /** The page came back (visible, online, from the back/forward cache):
   * drop a connection that went quiet meanwhile, reconnect now if down.
   * Whether it is up. */
  resume() {
    if (this.stale()) this.drop();
    if (!this.ws) this.wake();
    return this.state === "ok";
  }

  /** Close the socket now and handle it as lost (no waiting for the close handshake). */
  drop() {
    const ws = this.ws;
    if (!ws) return;
    this.closed();
    try {
      ws.close(4000, "dropped");
    } catch {
      /* already closed */
    }
  }

  closed() {
    this.ws = null;
    clearInterval(this.watchdog);
    for (const p of this.pending.values()) p.reject(new GatewayError({ code: "OFFLINE", message: "connection lost" }));
    this.pending.clear();
    if (this.state !== "login") this.retry();
  }

  // The next attempt after the backoff delay (0.8 s, ×1.7 each time, at
  // most 15 s; back to 0.8 s after a hello).
  retry() {
    if (this.state === "ok" || this.state === "connecting") this.set("offline");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.wake(), this.delay);
    this.delay = Math.min(this.delay * BACKOFF.factor, BACKOFF.max);
  }
}
