// statekit.js: the browser client of statekit's sync server (docs/sync-protocol.md, v1).
//
// A plain ES module, no build step. It connects to a SyncServer, keeps one copy of
// each store (a snapshot, then RFC 6902 patches from a Server-Sent Events stream that
// resumes with Last-Event-ID), shows local writes at once (optimistic) and reconciles
// them by version, and binds the page declaratively (data-sk-text, data-sk-value,
// data-sk-list, data-sk-action). See docs/client.md.
//
//   import { connect } from "/sk/client.js";
//   const sk = connect({ prefix: "/sk", stores: ["counter"] });
//   sk.subscribe("counter", "/n", (n) => { ... });
//   await sk.update("counter", "/n", 1);
//
// Documents are never changed in place: applyPatch copies the containers on the path
// of each change and shares the rest, so "did /todo/1 change?" is an identity test.

// ---------------------------------------------------------------- JSON Pointer

export class PatchError extends Error {
  constructor(message, code = "invalid_patch") {
    super(message);
    this.name = "PatchError";
    this.code = code;
  }
}

/** RFC 6901: "/a~1b/0" -> ["a/b", "0"]; the leading "/" may be left out. */
export function parsePointer(path) {
  if (Array.isArray(path)) return path.map(String);
  if (typeof path !== "string") throw new PatchError(`path ${JSON.stringify(path)} is not a string`);
  if (path === "" || path === "/") return path === "" ? [] : [""];
  const body = path.startsWith("/") ? path.slice(1) : path;
  return body.split("/").map((token) => {
    if (/~(?![01])/.test(token)) {
      throw new PatchError(`path ${JSON.stringify(path)}: "~" must be followed by 0 or 1`, "path_not_found");
    }
    return token.replace(/~1/g, "/").replace(/~0/g, "~");
  });
}

export function formatPointer(parts) {
  return parts.map((p) => "/" + String(p).replace(/~/g, "~0").replace(/\//g, "~1")).join("");
}

function kind(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value; // "object" | "string" | "number" | "boolean"
}

function arrayIndex(parts, i, length, endOk) {
  const part = parts[i];
  const where = `path ${JSON.stringify(formatPointer(parts))}: part ${JSON.stringify(part)}`;
  if (part === "-") {
    if (endOk) return length;
    throw new PatchError(`${where}: "-" names no element`, "path_not_found");
  }
  if (!/^(0|[1-9][0-9]*)$/.test(part)) {
    throw new PatchError(`${where}: ${JSON.stringify(part)} is not a valid array index`, "path_not_found");
  }
  const index = Number(part);
  if (index > length || (index === length && !endOk)) {
    throw new PatchError(`${where}: index ${index} out of range (length ${length})`, "path_not_found");
  }
  return index;
}

function step(node, parts, i) {
  const part = parts[i];
  const where = `path ${JSON.stringify(formatPointer(parts))}: part ${JSON.stringify(part)}`;
  if (Array.isArray(node)) return node[arrayIndex(parts, i, node.length, false)];
  if (kind(node) === "object") {
    if (!Object.prototype.hasOwnProperty.call(node, part)) {
      throw new PatchError(`${where}: no key ${JSON.stringify(part)} in object`, "path_not_found");
    }
    return node[part];
  }
  throw new PatchError(`${where}: cannot index into ${kind(node)}`, "path_not_found");
}

/** The value at `path` in `doc` (throws PatchError when it does not exist). */
export function getPointer(doc, path) {
  const parts = parsePointer(path);
  let node = doc;
  for (let i = 0; i < parts.length; i++) node = step(node, parts, i);
  return node;
}

function tryGet(doc, parts) {
  try {
    let node = doc;
    for (let i = 0; i < parts.length; i++) node = step(node, parts, i);
    return node;
  } catch (e) {
    return undefined;
  }
}

// ---------------------------------------------------------------- RFC 6902

export function jsonEqual(a, b) {
  const pending = [[a, b]];
  while (pending.length) {
    const [x, y] = pending.pop();
    if (x === y) continue;
    const k = kind(x);
    if (k !== kind(y)) return false;
    if (k === "array") {
      if (x.length !== y.length) return false;
      for (let i = 0; i < x.length; i++) pending.push([x[i], y[i]]);
    } else if (k === "object") {
      const keys = Object.keys(x);
      if (keys.length !== Object.keys(y).length) return false;
      for (const key of keys) {
        if (!Object.prototype.hasOwnProperty.call(y, key)) return false;
        pending.push([x[key], y[key]]);
      }
    } else if (x !== y) {
      return false;
    }
  }
  return true;
}

function checkJson(value, where) {
  const pending = [value];
  while (pending.length) {
    const v = pending.pop();
    const k = kind(v);
    if (k === "number" && !Number.isFinite(v)) throw new PatchError(`${where}: ${v} is not JSON`);
    if (k === "array") pending.push(...v);
    else if (k === "object") pending.push(...Object.values(v));
    else if (!["null", "string", "number", "boolean"].includes(k)) {
      throw new PatchError(`${where}: a ${k} is not JSON`);
    }
  }
}

function shallowCopy(node) {
  return Array.isArray(node) ? node.slice() : Object.assign({}, node);
}

// Rebuild the containers from the root down to the parent of `parts`, call
// change(parent, lastPart) on a fresh copy of that parent, and return the new root.
function rewrite(doc, parts, change) {
  const chain = [doc];
  let node = doc;
  for (let i = 0; i < parts.length - 1; i++) {
    node = step(node, parts, i);
    chain.push(node);
  }
  const parent = chain[chain.length - 1];
  if (kind(parent) !== "array" && kind(parent) !== "object") {
    throw new PatchError(
      `path ${JSON.stringify(formatPointer(parts))}: cannot index into ${kind(parent)}`,
      "path_not_found",
    );
  }
  let fresh = shallowCopy(parent);
  change(fresh, parts[parts.length - 1]);
  for (let i = chain.length - 2; i >= 0; i--) {
    const copy = shallowCopy(chain[i]);
    const key = parts[i];
    copy[Array.isArray(copy) ? Number(key) : key] = fresh;
    fresh = copy;
  }
  return fresh;
}

function addAt(doc, parts, value) {
  if (parts.length === 0) return value;
  return rewrite(doc, parts, (parent, part) => {
    if (Array.isArray(parent)) parent.splice(arrayIndex(parts, parts.length - 1, parent.length, true), 0, value);
    else parent[part] = value;
  });
}

function removeAt(doc, parts) {
  if (parts.length === 0) throw new PatchError("the root cannot be removed");
  return rewrite(doc, parts, (parent, part) => {
    if (Array.isArray(parent)) parent.splice(arrayIndex(parts, parts.length - 1, parent.length, false), 1);
    else if (Object.prototype.hasOwnProperty.call(parent, part)) delete parent[part];
    else {
      throw new PatchError(
        `path ${JSON.stringify(formatPointer(parts))}: part ${JSON.stringify(part)}: no key ${JSON.stringify(part)} in object`,
        "path_not_found",
      );
    }
  });
}

function replaceAt(doc, parts, value) {
  if (parts.length === 0) return value;
  getPointer(doc, parts); // must exist
  return rewrite(doc, parts, (parent, part) => {
    parent[Array.isArray(parent) ? Number(part) : part] = value;
  });
}

/**
 * Apply RFC 6902 `ops` to `doc`: returns the new document, never changes `doc`.
 * Atomic: if an op fails a PatchError is thrown and `doc` is as it was.
 */
export function applyPatch(doc, ops) {
  if (!Array.isArray(ops)) throw new PatchError("a patch is an array of operations");
  let current = doc;
  ops.forEach((op, index) => {
    const label = `op ${index}`;
    if (kind(op) !== "object") throw new PatchError(`${label}: an operation is an object`);
    const name = op.op;
    if (!["add", "remove", "replace", "move", "copy", "test"].includes(name)) {
      throw new PatchError(`${label}: unknown op ${JSON.stringify(String(name)).slice(0, 40)}`);
    }
    if (typeof op.path !== "string") throw new PatchError(`${label} (${name}): "path" must be a string`);
    const parts = parsePointer(op.path.startsWith("/") || op.path === "" ? op.path : "/" + op.path);
    const needsValue = name === "add" || name === "replace" || name === "test";
    if (needsValue && !("value" in op)) throw new PatchError(`${label} (${name}): missing "value"`);
    if (needsValue) checkJson(op.value, `${label} (${name})`);
    try {
      if (name === "add") current = addAt(current, parts, op.value);
      else if (name === "remove") current = removeAt(current, parts);
      else if (name === "replace") current = replaceAt(current, parts, op.value);
      else if (name === "test") {
        if (!jsonEqual(getPointer(current, parts), op.value)) {
          throw new PatchError(`test failed at ${JSON.stringify(formatPointer(parts))}`, "test_failed");
        }
      } else {
        if (typeof op.from !== "string") throw new PatchError(`"from" must be a string`);
        const from = parsePointer(op.from.startsWith("/") || op.from === "" ? op.from : "/" + op.from);
        const value = getPointer(current, from);
        if (name === "move") {
          const inside = from.length < parts.length && from.every((p, i) => p === parts[i]);
          if (inside) throw new PatchError(`cannot move ${JSON.stringify(op.from)} into itself`);
          if (from.length === parts.length && from.every((p, i) => p === parts[i])) return;
          current = addAt(removeAt(current, from), parts, value);
        } else {
          current = addAt(current, parts, value);
        }
      }
    } catch (e) {
      if (e instanceof PatchError && !e.message.startsWith("op ")) e.message = `${label} (${name}): ${e.message}`;
      throw e;
    }
  });
  return current;
}

// ---------------------------------------------------------------- client

/** How data-sk-text shows a value: strings as they are, null as nothing, the rest as JSON. */
export function textOf(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

export class StatekitError extends Error {
  constructor(status, error, detail, store) {
    super(detail || error);
    this.name = "StatekitError";
    this.status = status;
    this.error = error;
    this.detail = detail;
    this.store = store;
  }
}

const TAB_KEY = "statekit.tab";

class StoreCopy {
  constructor(name) {
    this.name = name;
    this.version = null; // the server's version we hold
    this.base = undefined; // the server's value at that version
    this.pending = []; // local writes not yet seen in `base`, in order
    this.value = undefined; // base + pending: what the page shows
    this.watchers = new Set();
    this.seen = -1; // the highest version announced by an event
    this.queue = Promise.resolve(); // writes go out one at a time, in order
    this.resyncing = null;
    this.ready = new Promise((resolve) => (this.markReady = resolve));
  }
}

export class Client {
  constructor(options = {}) {
    this.prefix = (options.prefix || "").replace(/\/$/, "");
    this.retry = options.retry ?? 1000;
    this.useTab = options.tab ?? "auto";
    this.stores = new Map();
    this.source = null;
    this.lastEventId = "";
    this.state = "connecting"; // "connecting" | "live" | "reconnecting" | "closed"
    this.tab = null;
    this.stateWatchers = new Set();
    this._started = null;
    this._bound = new WeakSet();
    this._reconnectTimer = null;
    /** Counters, for tests and the curious: events received, snapshots refetched, streams opened. */
    this.stats = { snapshots: 0, patches: 0, resyncs: 0, opens: 0 };
    for (const name of options.stores || []) this._copy(name);
  }

  // ---------------------------------------------------- connection

  /** Connect (idempotent); resolves when every store has its first value. */
  start() {
    if (!this._started) this._started = this._start();
    return this._started;
  }

  async _start() {
    if (this.useTab) await this._tabToken();
    this._open();
    await this.ready();
  }

  ready() {
    return Promise.all([...this.stores.values()].map((s) => s.ready));
  }

  // The per-tab token (docs/sync-protocol.md): kept in sessionStorage, so each tab has
  // its own session scope and a reload keeps it. `fresh` drops a token the server refused.
  async _tabToken(fresh = false) {
    let token = null;
    try {
      if (fresh) window.sessionStorage.removeItem(TAB_KEY);
      token = window.sessionStorage.getItem(TAB_KEY);
    } catch (e) {
      token = null;
    }
    if (!token) {
      // A GET first, so the server can issue the session cookie that the POST needs.
      await fetch(`${this.prefix}/stores`, { credentials: "same-origin" }).catch(() => null);
      const r = await fetch(`${this.prefix}/session/tab`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-Statekit": "1", "Content-Type": "application/json" },
        body: "{}",
      }).catch(() => null);
      if (r && r.ok) {
        token = (await r.json()).tab;
        try {
          window.sessionStorage.setItem(TAB_KEY, token);
        } catch (e) {
          /* private mode: one token per page load */
        }
      }
    }
    this.tab = token || null;
  }

  _streamUrl() {
    const q = new URLSearchParams();
    for (const name of this.stores.keys()) q.append("store", name);
    if (this.tab) q.set("tab", this.tab);
    if (this.lastEventId) q.set("last_event_id", this.lastEventId);
    return `${this.prefix}/events?${q}`;
  }

  _open() {
    if (this.source) this.source.close();
    clearTimeout(this._reconnectTimer);
    const source = new EventSource(this._streamUrl(), { withCredentials: true });
    this.source = source;
    this.stats.opens++;
    source.onopen = () => this._setState("live");
    source.onerror = () => {
      if (this.source !== source) return;
      // The browser retries by itself (sending Last-Event-ID) unless the stream is CLOSED
      // (an HTTP error); then we open a new one that resumes with last_event_id=.
      if (source.readyState === EventSource.CLOSED) {
        this._setState("reconnecting");
        this._reconnectTimer = setTimeout(() => this._recover(), this.retry);
      } else {
        this._setState("reconnecting");
      }
    };
    source.addEventListener("snapshot", (e) => this._onEvent(e, "snapshot"));
    source.addEventListener("patch", (e) => this._onEvent(e, "patch"));
  }

  // The stream was refused: if for our tab token (401), get a new one; then reopen.
  async _recover() {
    if (this.tab) {
      const probe = new AbortController();
      const r = await fetch(this._streamUrl(), { signal: probe.signal, credentials: "same-origin" }).catch(() => null);
      probe.abort();
      if (r && r.status === 401) await this._tabToken(true);
    }
    if (this.state !== "closed") this._open();
  }

  /** Close the event stream (`reconnect()` resumes where it stopped). */
  disconnect() {
    clearTimeout(this._reconnectTimer);
    if (this.source) this.source.close();
    this.source = null;
    this._setState("closed");
  }

  /** Open the event stream again, resuming after the last event received. */
  reconnect() {
    this._setState("reconnecting");
    this._open();
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    for (const fn of this.stateWatchers) fn(state);
  }

  /** Call fn(state) when the connection state changes; returns off(). */
  onState(fn) {
    this.stateWatchers.add(fn);
    return () => this.stateWatchers.delete(fn);
  }

  _copy(name) {
    let copy = this.stores.get(name);
    if (!copy) {
      copy = new StoreCopy(name);
      this.stores.set(name, copy);
      if (this.source) this._open(); // a store named late: stream it too
    }
    return copy;
  }

  _onEvent(e, type) {
    if (e.lastEventId) this.lastEventId = e.lastEventId;
    let data;
    try {
      data = JSON.parse(e.data);
    } catch (err) {
      return;
    }
    const copy = this.stores.get(data.store);
    if (!copy) return;
    copy.seen = Math.max(copy.seen, data.version);
    this.stats[type === "snapshot" ? "snapshots" : "patches"]++;
    if (type === "snapshot") {
      this._setBase(copy, data.version, data.value);
      return;
    }
    if (copy.version !== null && data.version <= copy.version) return; // already have it
    if (copy.version !== data.base) {
      this._resync(copy); // a gap: our copy is not the patch's base
      return;
    }
    let next;
    try {
      next = applyPatch(copy.base, data.ops);
    } catch (err) {
      this._resync(copy);
      return;
    }
    this._setBase(copy, data.version, next);
  }

  /** Fetch a fresh snapshot of the store (after a gap or a failed patch). */
  _resync(copy) {
    if (copy.resyncing) return copy.resyncing;
    this.stats.resyncs++;
    copy.resyncing = (async () => {
      try {
        const r = await this._fetch(`/stores/${encodeURIComponent(copy.name)}`, {});
        const data = await r.json();
        if (copy.version === null || data.version >= copy.version) {
          copy.version = null; // the snapshot wins over whatever we had
          this._setBase(copy, data.version, data.value);
        }
      } catch (err) {
        /* the stream's next event or reconnect tries again */
      } finally {
        copy.resyncing = null;
      }
      if (copy.version !== null && copy.version < copy.seen) this._resync(copy);
    })();
    return copy.resyncing;
  }

  _setBase(copy, version, value) {
    copy.version = version;
    copy.base = value;
    // Local writes the server has confirmed at or before this version are in `value` now.
    copy.pending = copy.pending.filter((w) => w.confirmed === undefined || w.confirmed > version);
    this._recompute(copy);
    copy.markReady();
  }

  // Whether a pending write is not in `base` yet. A write in flight is left out once a
  // newer version arrived: that version may be ours, and showing the write twice (a
  // double increment, a doubled item) is worse than a moment without it.
  _pendingIn(copy, write) {
    if (write.confirmed !== undefined) return write.confirmed > copy.version;
    return write.sentAt === undefined || copy.version <= write.sentAt;
  }

  _apply(copy, upTo) {
    let value = copy.base;
    for (const write of copy.pending) {
      if (write === upTo) break;
      if (!this._pendingIn(copy, write)) continue;
      try {
        value = write.apply(value);
      } catch (err) {
        /* no longer applies over the server's state: the server will say so */
      }
    }
    return value;
  }

  _recompute(copy) {
    const old = copy.value;
    const value = this._apply(copy, null);
    copy.value = value;
    for (const watcher of [...copy.watchers]) watcher.check(old, value);
  }

  // ---------------------------------------------------- reading

  /** The current value at `path` of `store` (undefined until it arrives or if absent). */
  get(store, path = "") {
    const copy = this._copy(store);
    return copy.value === undefined ? undefined : tryGet(copy.value, parsePointer(path));
  }

  /** Resolves when the writes made so far (to `store`, or to every store) were answered. */
  settled(store = null) {
    const copies = store === null ? [...this.stores.values()] : [this._copy(store)];
    return Promise.all(copies.map((c) => c.queue)).then(() => undefined);
  }

  /** The server's version of the copy we hold. */
  version(store) {
    return this._copy(store).version;
  }

  /** Call fn(value) now (if known) and whenever the value at `path` changes; returns off(). */
  subscribe(store, path, fn) {
    const copy = this._copy(store);
    const parts = parsePointer(path);
    const watcher = {
      check(oldDoc, newDoc) {
        const before = oldDoc === undefined ? undefined : tryGet(oldDoc, parts);
        const after = tryGet(newDoc, parts);
        if (before !== after || oldDoc === undefined) fn(after);
      },
    };
    copy.watchers.add(watcher);
    if (copy.value !== undefined) fn(tryGet(copy.value, parts));
    return () => copy.watchers.delete(watcher);
  }

  // ---------------------------------------------------- writing

  async _fetch(path, init, retried = false) {
    const headers = Object.assign({ "X-Statekit": "1" }, init.headers || {});
    if (this.tab) headers["X-Statekit-Tab"] = this.tab;
    const r = await fetch(this.prefix + path, Object.assign({}, init, { headers, credentials: "same-origin" }));
    if (r.status === 401 && this.tab && !retried) {
      await this._tabToken(true); // the token was for another session: get one for ours
      this._open();
      return this._fetch(path, init, true);
    }
    if (!r.ok) {
      let body = {};
      try {
        body = await r.json();
      } catch (e) {
        body = { error: "http_" + r.status, detail: r.statusText };
      }
      throw new StatekitError(r.status, body.error, body.detail);
    }
    return r;
  }

  // One local write: `apply` is its optimistic effect on a document, `send` builds and
  // sends its request against the value it will apply to, and returns the new version.
  _write(store, apply, send, init = null) {
    const copy = this._copy(store);
    const write = { apply, confirmed: undefined };
    if (init) init(write);
    copy.pending.push(write);
    this._recompute(copy);
    const run = async () => {
      try {
        await copy.ready;
        write.sentAt = copy.version;
        const version = await send(copy, write);
        write.confirmed = version;
        if (copy.version !== null && copy.version >= version) {
          copy.pending = copy.pending.filter((w) => w !== write);
        }
        this._recompute(copy);
        return version;
      } catch (err) {
        copy.pending = copy.pending.filter((w) => w !== write);
        this._recompute(copy);
        if (err instanceof StatekitError) err.store = store;
        this._report(err);
        throw err;
      }
    };
    const result = copy.queue.then(run, run);
    copy.queue = result.catch(() => null);
    return result;
  }

  _valueBefore(copy, write) {
    return this._apply(copy, write);
  }

  async _sendPatch(store, ops, ifMatch) {
    const headers = { "Content-Type": "application/json-patch+json" };
    if (ifMatch !== undefined) headers["If-Match"] = `"${ifMatch}"`;
    const r = await this._fetch(`/stores/${encodeURIComponent(store)}`, {
      method: "PATCH",
      headers,
      body: JSON.stringify(ops),
    });
    return (await r.json()).version;
  }

  /** Apply RFC 6902 `ops` to `store` (shown at once; atomic on the server). */
  patch(store, ops) {
    const copy = this._copy(store);
    ops = JSON.parse(JSON.stringify(ops));
    return this._write(
      store,
      (doc) => applyPatch(doc, ops),
      async () => {
        const version = await this._sendPatch(store, ops);
        this._advance(copy, version, ops);
        return version;
      },
    );
  }

  // The server answered `version` for ops we sent: if our copy is right before it,
  // apply them to the base now instead of waiting for the event (which is then skipped).
  _advance(copy, version, ops) {
    if (copy.version === version - 1) {
      try {
        this._setBase(copy, version, applyPatch(copy.base, ops));
      } catch (e) {
        this._resync(copy);
      }
    }
  }

  /** Append `value` to the array at `path`. */
  append(store, path, value) {
    const pointer = formatPointer(parsePointer(path));
    return this.patch(store, [{ op: "add", path: pointer + "/-", value }]);
  }

  /** Set the value at `path` (an existing path, or a new key of an existing object). */
  set(store, path, value) {
    const copy = this._copy(store);
    const parts = parsePointer(path);
    const pointer = formatPointer(parts);
    // Typing makes a set per keystroke: one still waiting for its turn takes the new
    // value instead of queueing another request behind it.
    const last = copy.pending[copy.pending.length - 1];
    if (last && last.setPointer === pointer && last.sentAt === undefined) {
      last.value = value;
      this._recompute(copy);
      return last.promise;
    }
    const opFor = (doc, v) => {
      const parent = parts.length ? tryGet(doc, parts.slice(0, -1)) : undefined;
      const isNewKey = kind(parent) === "object" && !Object.prototype.hasOwnProperty.call(parent, parts[parts.length - 1]);
      return [{ op: isNewKey ? "add" : "replace", path: pointer, value: v }];
    };
    let write = null;
    const promise = this._write(
      store,
      (doc) => applyPatch(doc, opFor(doc, write.value)),
      async (c, w) => {
        const ops = opFor(this._valueBefore(c, w), w.value);
        const version = await this._sendPatch(store, ops);
        this._advance(copy, version, ops);
        return version;
      },
      (w) => {
        write = w;
        w.setPointer = pointer;
        w.value = value;
      },
    );
    write.promise = promise;
    return promise;
  }

  /** Add `delta` to the number at `path`: test + replace, retried when someone else won. */
  update(store, path, delta = 1) {
    const copy = this._copy(store);
    const pointer = formatPointer(parsePointer(path));
    const bump = (doc) => {
      const now = getPointer(doc, pointer);
      if (typeof now !== "number") throw new PatchError(`${pointer} is not a number`, "invalid_patch");
      return applyPatch(doc, [{ op: "replace", path: pointer, value: now + delta }]);
    };
    return this._write(store, bump, async (c, write) => {
      for (let attempt = 0; ; attempt++) {
        const now = getPointer(this._valueBefore(c, write), pointer);
        if (typeof now !== "number") throw new StatekitError(422, "invalid_patch", `${pointer} is not a number`);
        const ops = [
          { op: "test", path: pointer, value: now },
          { op: "replace", path: pointer, value: now + delta },
        ];
        try {
          const version = await this._sendPatch(store, ops);
          this._advance(copy, version, ops.slice(1));
          return version;
        } catch (err) {
          if (!(err instanceof StatekitError) || err.status !== 409 || attempt >= 8) throw err;
          await this._resync(c); // someone else changed it: read it again and retry
        }
      }
    });
  }

  /** Call the store's action `name` with keyword arguments; resolves to its result. */
  async action(store, name, args = {}) {
    const copy = this._copy(store);
    let result;
    await this._write(
      store,
      (doc) => doc,
      async () => {
        const r = await this._fetch(`/stores/${encodeURIComponent(store)}/actions/${encodeURIComponent(name)}`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(args),
        });
        const body = await r.json();
        result = body.result;
        if (copy.version !== null && copy.version < body.version) copy.seen = Math.max(copy.seen, body.version);
        return body.version;
      },
    );
    return result;
  }

  /** A handle on one store: store("todos").set("/filter", "done"). */
  store(name) {
    return {
      get: (path = "") => this.get(name, path),
      set: (path, value) => this.set(name, path, value),
      update: (path, delta) => this.update(name, path, delta),
      patch: (ops) => this.patch(name, ops),
      action: (action, args) => this.action(name, action, args),
      subscribe: (path, fn) => this.subscribe(name, path, fn),
    };
  }

  _report(err) {
    if (typeof document === "undefined") return;
    const detail = { store: err.store, status: err.status, error: err.error, detail: err.detail || err.message };
    document.dispatchEvent(new CustomEvent("statekit:error", { detail }));
    for (const el of document.querySelectorAll("[data-sk-error]")) {
      el.textContent = detail.detail;
      el.hidden = false;
      clearTimeout(el._skTimer);
      el._skTimer = setTimeout(() => {
        el.textContent = "";
        el.hidden = true;
      }, 4000);
    }
  }

  // ---------------------------------------------------- declarative binding

  /** Bind every data-sk-* element under `root` (default: the document's body). */
  bind(root = document.body) {
    const offs = [];
    for (const el of walk(root)) this._bindElement(el, offs, null);
    return () => offs.splice(0).forEach((off) => off());
  }

  _bindElement(el, offs, item) {
    if (this._bound.has(el)) return;
    const attr = (name) => {
      const raw = el.getAttribute(name);
      return raw === null ? null : resolveRef(raw, item);
    };
    const text = attr("data-sk-text");
    const value = attr("data-sk-value");
    const list = attr("data-sk-list");
    const action = attr("data-sk-action");
    const status = el.hasAttribute("data-sk-status");
    if (!text && !value && !list && !action && !status) return;
    this._bound.add(el);
    if (text) {
      offs.push(this.subscribe(text.store, text.path, (v) => (el.textContent = textOf(v))));
    }
    if (value) this._bindValue(el, value, offs);
    if (list) this._bindList(el, list, offs);
    if (action) this._bindAction(el, action, item);
    if (status) {
      const show = (state) => {
        el.textContent = state;
        el.dataset.skState = state;
      };
      show(this.state);
      offs.push(this.onState(show));
    }
  }

  _bindValue(el, ref, offs) {
    const { store, path } = ref;
    const type = (el.type || "").toLowerCase();
    if (type === "checkbox") {
      offs.push(this.subscribe(store, path, (v) => (el.checked = !!v)));
      el.addEventListener("change", () => this.set(store, path, el.checked).catch(() => null));
    } else if (type === "radio") {
      offs.push(this.subscribe(store, path, (v) => (el.checked = textOf(v) === el.value)));
      el.addEventListener("change", () => el.checked && this.set(store, path, el.value).catch(() => null));
    } else {
      const numeric = type === "number" || type === "range";
      offs.push(
        this.subscribe(store, path, (v) => {
          const shown = v === undefined || v === null ? "" : String(v);
          if (el.value !== shown) el.value = shown;
        }),
      );
      const event = el.tagName === "SELECT" ? "change" : "input";
      el.addEventListener(event, () => {
        let v = el.value;
        if (numeric) {
          if (v === "" || Number.isNaN(Number(v))) return;
          v = Number(v);
        }
        this.set(store, path, v).catch(() => null);
      });
    }
  }

  _bindList(el, ref, offs) {
    const template = el.querySelector(":scope > template");
    if (!template) throw new Error(`data-sk-list="${el.getAttribute("data-sk-list")}" needs a <template> child`);
    const rows = []; // [{nodes, offs}]
    const render = (items) => {
      const count = Array.isArray(items) ? items.length : 0;
      while (rows.length > count) {
        const row = rows.pop();
        row.offs.forEach((off) => off());
        row.nodes.forEach((n) => n.remove());
      }
      while (rows.length < count) {
        const index = rows.length;
        const item = { store: ref.store, path: `${ref.path}/${index}`, index };
        const fragment = template.content.cloneNode(true);
        const nodes = [...fragment.childNodes];
        const rowOffs = [];
        for (const node of nodes) {
          if (node.nodeType !== 1) continue;
          for (const child of walk(node)) this._bindElement(child, rowOffs, item);
        }
        el.appendChild(fragment);
        rows.push({ nodes, offs: rowOffs });
      }
      el.dataset.skCount = String(count);
    };
    offs.push(this.subscribe(ref.store, ref.path, render));
    offs.push(() => rows.splice(0).forEach((row) => row.offs.forEach((off) => off())));
  }

  _bindAction(el, ref, item) {
    const isForm = el.tagName === "FORM";
    const run = async (event) => {
      event.preventDefault();
      let args = {};
      const raw = el.getAttribute("data-sk-args");
      if (raw) args = JSON.parse(item ? raw.replace(/\$index/g, String(item.index)) : raw);
      else {
        const form = isForm ? el : el.closest("form");
        if (form) args = formArgs(form);
      }
      // A form is cleared at once (so the next entry can be typed while this one is
      // sent) and its values come back if the server refuses them.
      let restore = null;
      if (isForm && !raw) {
        const fields = [...el.elements].filter((f) => f.name);
        const saved = fields.map((f) => (f.type === "checkbox" || f.type === "radio" ? f.checked : f.value));
        el.reset();
        const cleared = fields.map((f) => (f.type === "checkbox" || f.type === "radio" ? f.checked : f.value));
        restore = () => {
          fields.forEach((f, i) => {
            const now = f.type === "checkbox" || f.type === "radio" ? f.checked : f.value;
            if (now !== cleared[i]) return; // typed over meanwhile: keep that
            if (f.type === "checkbox" || f.type === "radio") f.checked = saved[i];
            else f.value = saved[i];
          });
        };
      }
      el.setAttribute("aria-busy", "true");
      try {
        await this.action(ref.store, ref.path.replace(/^\//, ""), args);
      } catch (err) {
        if (restore) restore(); /* and reported through statekit:error */
      } finally {
        el.removeAttribute("aria-busy");
      }
    };
    el.addEventListener(isForm ? "submit" : "click", run);
  }
}

// "store:/path" -> {store, path}; inside a list item "/title" or "$index" are relative to it.
function resolveRef(raw, item) {
  let text = raw.trim();
  if (item) text = text.replace(/\$index/g, String(item.index));
  const colon = text.indexOf(":");
  if (colon > 0 && !text.slice(0, colon).includes("/")) {
    const path = text.slice(colon + 1);
    return { store: text.slice(0, colon), path: path.startsWith("/") || path === "" ? path : "/" + path };
  }
  if (item) return { store: item.store, path: text === "" || text === "/" ? item.path : item.path + (text.startsWith("/") ? text : "/" + text) };
  throw new Error(`"${raw}" is not "store:/path"`);
}

function formArgs(form) {
  const args = {};
  for (const field of form.elements) {
    if (!field.name || field.disabled) continue;
    if (field.type === "checkbox") args[field.name] = field.checked;
    else if (field.type === "radio") {
      if (field.checked) args[field.name] = field.value;
    } else if (field.type === "number" || field.type === "range") {
      args[field.name] = field.value === "" ? null : Number(field.value);
    } else if (field.type !== "submit" && field.type !== "button") args[field.name] = field.value;
  }
  return args;
}

function* walk(root) {
  if (root.nodeType === 1) yield root;
  const all = root.querySelectorAll("[data-sk-text],[data-sk-value],[data-sk-list],[data-sk-action],[data-sk-status]");
  for (const el of all) {
    if (el.closest("template")) continue;
    // elements inside a list are bound per row by the list
    const list = el.parentElement && el.parentElement.closest("[data-sk-list]");
    if (list && list !== root && root.contains(list)) continue;
    yield el;
  }
}

/** Create a client and start it: connect({prefix, stores}). */
export function connect(options = {}) {
  const client = new Client(options);
  client.start();
  return client;
}

// ---------------------------------------------------------------- the page's client
//
// window.statekit always exists once this module loaded, so onclick code rendered by
// store.do.update(...) works; with <script type="module" src=".../client.js" data-sk-auto>
// it is connected to every store the page's data-sk-* attributes name, and bound.

const ATTRS = ["data-sk-text", "data-sk-value", "data-sk-list", "data-sk-action"];

export function storesOnPage(root) {
  const names = new Set();
  for (const attr of ATTRS) {
    for (const el of root.querySelectorAll(`[${attr}]`)) {
      const raw = el.getAttribute(attr);
      const colon = raw.indexOf(":");
      if (colon > 0) names.add(raw.slice(0, colon).trim());
    }
  }
  for (const template of root.querySelectorAll("template")) {
    for (const name of storesOnPage(template.content)) names.add(name);
  }
  return names;
}

function autoScript() {
  if (typeof document === "undefined") return null;
  const me = new URL(import.meta.url);
  for (const script of document.querySelectorAll("script[data-sk-auto]")) {
    if (script.src && new URL(script.src, document.baseURI).pathname === me.pathname) return script;
  }
  return null;
}

function setup() {
  const script = autoScript();
  const prefix = script?.dataset.skPrefix ?? new URL(import.meta.url).pathname.replace(/\/[^/]*$/, "");
  const client = new Client({ prefix, tab: script?.dataset.skTab === "off" ? false : "auto" });
  if (typeof window !== "undefined" && !window.statekit) window.statekit = client;
  if (!script) return;
  const go = () => {
    const extra = (script.dataset.skStores || "").split(",").map((s) => s.trim()).filter(Boolean);
    for (const name of [...storesOnPage(document), ...extra]) client._copy(name);
    client.bind(document.body);
    client.start().then(() => document.documentElement.setAttribute("data-sk-ready", ""));
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", go, { once: true });
  else go();
}

setup();
