// htealeaf.js: the page client of statekit.compat.htealeaf (docs/htealeaf.md).
//
// SuperStore serves this module next to the sync server's client.js and adds it to
// every page an App renders:
//
//   <script type="module" src="/_statekit/htealeaf.js" data-api="/api/_store"></script>
//
// It connects statekit's Client to the stores the page's data-sk-* attributes name, so
// the elements store.react() rendered follow every change over Server-Sent Events,
// and it makes window.statekit a client whose writes (the onclick code of store.do.*
// and store.js.*) go through the façade's routes, under the façade's write policy:
// each write is one atomic JSON Patch, PATCH <api>/<store>.

import { Client, StatekitError, storesOnPage } from "./client.js";

export class SeedClient extends Client {
  constructor(options = {}) {
    super(options);
    this.api = (options.api || "/api/_store").replace(/\/$/, "");
    this.streamed = new Set(); // the stores the page shows: on the event stream
    this.autostart = false;
  }

  // A store first named by a click (the store.do.* code of a store no element shows)
  // is not added to the event stream: for an AuthStore and an anonymous visitor the
  // sync server would refuse the whole stream, and the page would stop following the
  // stores it does show. Its writes start from a snapshot (409s re-read it), and a
  // store this visitor has no copy of has its writes refused by the server.
  _copy(name) {
    if (this.stores.has(name) || !this.autostart) return super._copy(name);
    const source = this.source;
    this.source = null; // so that Client._copy does not reopen the stream with it
    const copy = super._copy(name);
    this.source = source;
    this._firstValue(copy);
    return copy;
  }

  async _firstValue(copy) {
    try {
      const r = await this._fetch(`/stores/${encodeURIComponent(copy.name)}`, {});
      const data = await r.json();
      this._setBase(copy, data.version, data.value);
    } catch (err) {
      copy.markReady(); // no copy for this visitor: its writes go out and are refused
    }
  }

  _streamUrl() {
    const url = new URL(super._streamUrl(), window.location.href);
    url.searchParams.delete("store");
    for (const name of this.streamed) url.searchParams.append("store", name);
    return url.pathname + url.search;
  }

  // The Client's only way out for ops; the answer's version reconciles them as usual.
  async _sendPatch(store, ops) {
    const r = await fetch(`${this.api}/${encodeURIComponent(store)}`, {
      method: "PATCH",
      credentials: "same-origin",
      headers: { "X-Statekit": "1", "Content-Type": "application/json-patch+json" },
      body: JSON.stringify(ops),
    });
    let body = {};
    try {
      body = await r.json();
    } catch (e) {
      body = { error: "http_" + r.status, detail: r.statusText };
    }
    if (!r.ok) throw new StatekitError(r.status, body.error, body.detail, store);
    return body.version;
  }
}

function setup() {
  const me = new URL(import.meta.url);
  const script = [...document.querySelectorAll("script[src]")].find(
    (s) => new URL(s.src, document.baseURI).pathname === me.pathname,
  );
  const prefix = me.pathname.replace(/\/[^/]*$/, "");
  const client = new SeedClient({ prefix, api: script?.dataset.api, tab: false });
  window.statekit = client; // replaces client.js's unconnected default
  const go = () => {
    for (const name of storesOnPage(document)) {
      client.streamed.add(name);
      client._copy(name);
    }
    client.bind(document.body);
    client.autostart = true;
    const ready = client.streamed.size ? client.start() : Promise.resolve();
    ready.then(() => document.documentElement.setAttribute("data-sk-ready", ""));
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", go, { once: true });
  else go();
}

setup();
