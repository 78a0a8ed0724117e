// hippograph web page: ask, see why each passage came back, walk the graph.
// Talks only to the documented JSON API (GET /stats, POST /retrieve, GET /neighbourhood).
// Every piece of index data reaches the DOM through textContent / text nodes, never as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "hippograph.token";
  const MODES = ["hybrid", "ppr", "dense", "bm25"];
  const MAX_K = 100;
  const MAX_SEEDS_DRAWN = 6;
  const EXPLAIN_NEIGHBOURS = 60;
  const EXPLORE_NEIGHBOURS = 25;
  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- DOM helpers (text only)
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === undefined || child === null) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const fmt = (x, digits = 3) => (typeof x === "number" && isFinite(x) ? x.toFixed(digits) : "–");

  // ---------------------------------------------------------------- API
  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (exc) {
      throw new ApiError(0, "the server cannot be reached (" + exc.message + ")");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (exc) {
      data = null;
    }
    if (!response.ok) {
      let message = response.statusText;
      if (data && data.message) message = data.message;
      else if (data && typeof data.detail === "string") message = data.detail;
      else if (data && data.detail) message = JSON.stringify(data.detail);
      throw new ApiError(response.status, response.status + ": " + message);
    }
    return data;
  }

  function showError(exc) {
    const status = $("status");
    status.className = "error";
    if (exc.status === 401) {
      status.textContent = "This server needs a bearer token: enter it under Token (top right).";
      $("token-box").open = true;
      $("token").focus();
    } else {
      status.textContent = exc.message;
    }
  }

  // ---------------------------------------------------------------- index summary
  async function loadSummary() {
    const box = $("summary");
    try {
      const s = await api("GET", "/stats");
      const emb = s.embedder || {};
      const embedder = [emb.backend, emb.model].filter(Boolean).join(" / ") || "unknown";
      box.textContent =
        `${s.passages ?? "?"} passages · ${s.entities ?? "?"} entities · ${s.facts ?? "?"} facts · ` +
        `${s.synonyms ?? 0} synonym pairs · embedder ${embedder}` + (emb.dim ? ` (${emb.dim}-d)` : "") +
        ` · ${s.generation}`;
      box.title = s.path || "";
    } catch (exc) {
      box.textContent = "index summary unavailable";
      if (exc.status === 401) showError(exc);
    }
  }

  // ---------------------------------------------------------------- URL state
  function readUrl() {
    const params = new URLSearchParams(window.location.search);
    const q = params.get("q") || "";
    const mode = MODES.includes(params.get("mode")) ? params.get("mode") : "hybrid";
    let k = parseInt(params.get("k"), 10);
    if (!(k >= 1 && k <= MAX_K)) k = 10;
    return { q, mode, k };
  }

  function urlFor(state) {
    const params = new URLSearchParams({ q: state.q, mode: state.mode, k: String(state.k) });
    return "/?" + params.toString();
  }

  function fillForm(state) {
    $("q").value = state.q;
    $("mode").value = state.mode;
    $("k").value = String(state.k);
  }

  function formState() {
    let k = parseInt($("k").value, 10);
    if (!(k >= 1 && k <= MAX_K)) k = 10;
    return { q: $("q").value.trim(), mode: $("mode").value, k };
  }

  // ---------------------------------------------------------------- query and hits
  let queryCounter = 0;

  async function runQuery(state) {
    const mine = ++queryCounter;
    const status = $("status");
    status.className = "";
    status.textContent = "Searching…";
    $("hits").replaceChildren();
    document.title = state.q ? `${state.q} – hippograph` : "hippograph";
    let body;
    try {
      body = await api("POST", "/retrieve", { query: state.q, top_k: state.k, mode: state.mode, explain: true });
    } catch (exc) {
      if (mine === queryCounter) showError(exc);
      return;
    }
    if (mine !== queryCounter) return; // a newer query replaced this one
    status.textContent =
      `${body.hits.length} passage${body.hits.length === 1 ? "" : "s"} in ${fmt(body.took_ms, 1)} ms ` +
      `(mode ${body.mode}, top-k ${body.top_k}, ${body.generation})`;
    const maxima = scoreMaxima(body.hits);
    body.hits.forEach((hit, i) => $("hits").append(renderHit(hit, i, maxima)));
    const first = document.querySelector("#hits .hit details.why");
    if (first) first.open = true; // draws the first explanation
  }

  const PARTS = [
    ["dense", "dense"],
    ["bm25", "BM25"],
    ["ppr", "PPR"],
    ["routed", "routed"],
  ];

  function scoreMaxima(hits) {
    const maxima = {};
    for (const [key] of PARTS) {
      maxima[key] = Math.max(1e-12, ...hits.map((h) => (h.explanation && h.explanation.scores[key]) || 0));
    }
    return maxima;
  }

  function renderHit(hit, rank, maxima) {
    const ex = hit.explanation || {};
    const bridge = ex.bridge;
    const head = el("div", { class: "hit-head" },
      el("span", { class: "rank", text: String(rank + 1) }),
      el("span", { class: "title", text: hit.title || hit.doc_id }),
      bridge ? el("span", { class: "badge " + (bridge.role === "first hop" ? "hop1" : "hop2"), text: bridge.role }) : null,
      el("span", { class: "score", title: "final score", text: fmt(hit.score) }));
    const meta = el("div", { class: "meta" },
      el("span", { class: "source", title: "source", text: hit.source }),
      el("span", { class: "span", title: "[start, end) offsets in the document", text: `span [${hit.span[0]}, ${hit.span[1]})` }),
      el("span", { class: "pid", title: "passage id", text: hit.passage_id }));
    const scores = el("table", { class: "parts" });
    if (ex.scores) {
      for (const [key, label] of PARTS) {
        const value = ex.scores[key];
        scores.append(el("tr", {},
          el("th", { scope: "row", text: label }),
          el("td", {}, el("meter", { min: 0, max: maxima[key], value: value || 0 })),
          el("td", { class: "num", text: fmt(value, 4) })));
      }
    }
    const text = el("p", { class: "text", text: hit.text });
    const graph = el("div", { class: "graph explain-graph" });
    const extra = el("div", { class: "explain-extra" });
    const why = el("details", { class: "why" },
      el("summary", { text: "Why this passage? (explanation graph)" }), graph, extra);
    let drawn = false;
    why.addEventListener("toggle", () => {
      if (why.open && !drawn) {
        drawn = true;
        drawExplanation(hit, graph, extra).catch((exc) => {
          extra.prepend(el("p", { class: "error", text: "explanation graph unavailable: " + exc.message }));
          if (exc.status === 401) showError(exc);
        });
      }
    });
    return el("li", { class: "hit", "data-passage-id": hit.passage_id }, head, meta,
      el("div", { class: "body" }, text, scores), why);
  }

  // ---------------------------------------------------------------- graph styling
  const STYLE = [
    { selector: "node", style: {
      label: "data(label)", "font-size": 10, "text-wrap": "wrap", "text-max-width": 110,
      "text-valign": "bottom", "text-margin-y": 3, color: "#223", width: 18, height: 18,
      "background-color": "#8fb8d8", "border-width": 1, "border-color": "#4a6f8f" } },
    { selector: "node.query", style: {
      shape: "diamond", "background-color": "#334", width: 24, height: 24, "font-weight": "bold" } },
    { selector: "node.seed", style: { "background-color": "#e8833a", "border-color": "#a04f12" } },
    { selector: "node.bridge", style: { "border-width": 3, "border-color": "#7b4fb0" } },
    { selector: "node[kind = 'passage']", style: {
      shape: "round-rectangle", "background-color": "#3f9c5a", "border-color": "#25633a", width: 26, height: 18 } },
    { selector: "node.hit", style: { width: 34, height: 24, "font-weight": "bold" } },
    { selector: "node.firsthop", style: { "background-color": "#7b4fb0", "border-color": "#4b2a75" } },
    { selector: "node.centre", style: { "border-width": 3, "border-color": "#111" } },
    { selector: "node.expanded", style: { "border-style": "double", "border-width": 4 } },
    { selector: "edge", style: {
      width: 1.2, "line-color": "#9aa", "curve-style": "bezier", "target-arrow-shape": "triangle",
      "target-arrow-color": "#9aa", "arrow-scale": 0.7, label: "data(label)", "font-size": 8, color: "#556",
      "text-rotation": "autorotate", "text-background-color": "#fff", "text-background-opacity": 0.8,
      "text-background-padding": 1 } },
    { selector: "edge.seedlink", style: { "line-style": "dashed", "line-color": "#e8a870", "target-arrow-color": "#e8a870" } },
    { selector: "edge[kind = 'fact']", style: { "line-color": "#4a90c2", "target-arrow-color": "#4a90c2", width: 1.6 } },
    { selector: "edge[kind = 'mention']", style: { "line-color": "#7fbf8f", "target-arrow-color": "#7fbf8f", label: "" } },
    { selector: "edge[kind = 'synonym']", style: {
      "line-style": "dotted", "line-color": "#c9a13a", "target-arrow-shape": "none", width: 2 } },
    { selector: "edge.hop", style: { "line-color": "#7b4fb0", "target-arrow-color": "#7b4fb0", width: 2.5 } },
  ];

  function newGraph(container, elements, layout) {
    const cy = window.cytoscape({
      container, elements, style: STYLE, layout, minZoom: 0.2, maxZoom: 3,
    });
    container.cy = cy; // for the browser tests
    let width = container.clientWidth;
    new ResizeObserver(() => { // the explorer opening beside the results narrows this graph
      if (container.clientWidth === width || cy.destroyed()) return;
      width = container.clientWidth;
      cy.resize();
      cy.fit(undefined, 18);
    }).observe(container);
    return cy;
  }

  function publishCounts(container, cy) {
    container.dataset.nodes = String(cy.nodes().length);
    container.dataset.edges = String(cy.edges().length);
    container.dataset.seeds = String(cy.nodes(".seed").length);
    container.dataset.passages = String(cy.nodes("[kind = 'passage']").length);
  }

  // ---------------------------------------------------------------- explanation graph
  // query → seed entities → (facts) → entities in the passage → passage; a second-hop passage
  // also shows its first-hop passage and the bridge entities between them.
  async function drawExplanation(hit, container, extra) {
    const ex = hit.explanation || {};
    const hood = await api("GET", "/neighbourhood?" + new URLSearchParams({ passage: hit.passage_id, limit: EXPLAIN_NEIGHBOURS }));
    const hitId = hood.centre;
    const byId = new Map(hood.nodes.map((n) => [n.id, n]));
    const eid = (name) => "entity:" + name;
    const nodes = new Map();
    const edges = new Map();
    const column = new Map(); // node id → column: 0 query, 1 seeds, 2 first hop, 3 linked entities, 4 the hit
    const addNode = (id, data, classes, col) => {
      if (!nodes.has(id)) nodes.set(id, { data: { id, ...data }, classes: classes || "" });
      else if (classes) nodes.get(id).classes += " " + classes;
      if (!column.has(id) || col < column.get(id)) column.set(id, col);
    };
    const addEdge = (edge, classes) => {
      if (!edges.has(edge.id)) edges.set(edge.id, { data: { ...edge }, classes: classes || "" });
    };
    const entityData = (name) => ({ kind: "entity", name, label: name });

    addNode("query", { kind: "query", label: "query" }, "query", 0);
    const seeds = (ex.seeds || []).slice(0, MAX_SEEDS_DRAWN);
    const seedNames = new Set(seeds.map((s) => s.entity));
    for (const seed of seeds) {
      addNode(eid(seed.entity), entityData(seed.entity), "seed", 1);
      addEdge({ id: "seed:" + seed.entity, source: "query", target: eid(seed.entity), kind: "seed",
        label: fmt(seed.weight, 3) }, "seedlink");
    }
    const hitLabel = (hit.title || hit.doc_id) + (ex.bridge ? ` (${ex.bridge.role === "first hop" ? "1st" : "2nd"} hop)` : "");
    addNode(hitId, { kind: "passage", label: hitLabel, passage_id: hit.passage_id }, "hit", 4);

    // facts of this passage that the explanation names as connecting, with their entities
    const connecting = new Set(ex.connecting_facts || []);
    const linked = new Set(ex.seed_entities_in_passage || []);
    for (const edge of hood.edges) {
      if (edge.kind !== "fact" || !connecting.has(edge.text)) continue;
      if (!byId.has(edge.source) || !byId.has(edge.target)) continue;
      for (const end of [edge.source, edge.target]) {
        const n = byId.get(end);
        if (n) {
          addNode(end, entityData(n.name), seedNames.has(n.name) ? "seed" : "", seedNames.has(n.name) ? 1 : 3);
          linked.add(n.name);
        }
      }
      addEdge(edge);
    }
    for (const name of ex.seed_entities_in_passage || []) {
      addNode(eid(name), entityData(name), "seed", 1);
    }
    for (const edge of hood.edges) { // entity → passage mentions of everything drawn
      if (edge.kind === "mention" && edge.target === hitId && nodes.has(edge.source)) addEdge(edge);
    }

    if (ex.bridge && ex.bridge.role === "second hop") {
      const firstId = "passage:" + ex.bridge.first_hop;
      addNode(firstId, { kind: "passage", label: (ex.bridge.first_hop_title || ex.bridge.first_hop) + " (1st hop)",
        passage_id: ex.bridge.first_hop }, "firsthop", 2);
      for (const name of [...(ex.bridge.about || []), ...(ex.bridge.via || [])]) {
        addNode(eid(name), entityData(name), "bridge", 3);
        addEdge({ id: "hop:" + firstId + "|" + name, source: firstId, target: eid(name), kind: "hop", label: "bridge" }, "hop");
        addEdge({ id: "hopto:" + name, source: eid(name), target: hitId, kind: "hop",
          label: (ex.bridge.about || []).includes(name) ? "about" : "via" }, "hop");
      }
    }

    const positions = layeredPositions(column);
    const elements = [...nodes.values()].map((n) => ({ ...n, position: positions.get(n.data.id) }));
    const cy = newGraph(container, [...elements, ...edges.values()], { name: "preset", fit: true, padding: 18 });
    cy.on("tap", "node", (evt) => {
      const d = evt.target.data();
      if (d.kind === "entity") explorer.open({ entity: d.name }, true);
      else if (d.kind === "passage") explorer.open({ passage: d.passage_id }, true);
    });
    publishCounts(container, cy);
    container.dataset.ready = "1";
    renderExplanationText(ex, extra, [...nodes.values()].filter((n) => n.data.kind === "entity").map((n) => n.data.name));
  }

  function layeredPositions(column) {
    const cols = [[], [], [], [], []];
    for (const [id, c] of column) cols[c].push(id);
    const positions = new Map();
    const tallest = Math.max(...cols.map((c) => c.length), 1);
    cols.forEach((ids, c) => {
      ids.forEach((id, i) => {
        positions.set(id, { x: c * 170, y: (i - (ids.length - 1) / 2) * (tallest > 6 ? 36 : 48) });
      });
    });
    return positions;
  }

  function renderExplanationText(ex, extra, entityNames) {
    const legend = el("p", { class: "legend" },
      el("span", { class: "key query" }), "query ",
      el("span", { class: "key seed" }), "query seed ",
      el("span", { class: "key entity" }), "entity ",
      el("span", { class: "key passage" }), "passage ",
      el("span", { class: "key firsthop" }), "first hop ",
      el("span", { class: "key fact" }), "fact (predicate) ",
      el("span", { class: "key hopedge" }), "second-hop bridge");
    extra.append(legend);
    const chips = el("p", { class: "chips" }, "Open an entity: ");
    for (const name of entityNames) {
      chips.append(el("button", { type: "button", class: "chip", text: name,
        onclick: () => explorer.open({ entity: name }, true) }));
    }
    extra.append(chips);
    if ((ex.connecting_facts || []).length) {
      const list = el("ul", { class: "facts" });
      for (const fact of ex.connecting_facts) list.append(el("li", { text: fact }));
      extra.append(el("p", { class: "sub", text: "Connecting facts" }), list);
    }
    if (ex.router && ex.router.weights) {
      const parts = Object.entries(ex.router.weights).map(([k, v]) => `${k} ${fmt(v, 2)}`).join(" · ");
      extra.append(el("p", { class: "router", text: "router weights: " + parts }));
    }
    if (ex.fallback) extra.append(el("p", { class: "router", text: "fallback: " + JSON.stringify(ex.fallback) }));
  }

  // ---------------------------------------------------------------- neighbourhood explorer
  const explorer = {
    cy: null,
    expanded: new Set(),

    async open(target, reset) {
      const aside = $("explorer");
      aside.hidden = false;
      const container = $("explorer-graph");
      if (reset || !this.cy) {
        if (this.cy) this.cy.destroy();
        this.cy = newGraph(container, [], { name: "preset" });
        this.expanded = new Set();
        this.cy.on("tap", "node", (evt) => {
          const d = evt.target.data();
          this.open(d.kind === "entity" ? { entity: d.name } : { passage: d.passage_id }, false);
        });
      }
      const key = target.entity !== undefined ? "entity:" + target.entity : "passage:" + target.passage;
      let hood;
      try {
        hood = await api("GET", "/neighbourhood?" + new URLSearchParams({ ...target, limit: EXPLORE_NEIGHBOURS }));
      } catch (exc) {
        $("explorer-details").replaceChildren(el("p", { class: "error", text: exc.message }));
        if (exc.status === 401) showError(exc);
        return;
      }
      const cy = this.cy;
      const centre = cy.getElementById(hood.centre);
      const origin = centre.nonempty() ? centre.position() : { x: 0, y: 0 };
      const added = [];
      hood.nodes.forEach((n, i) => {
        if (cy.getElementById(n.id).nonempty()) return;
        const angle = (2 * Math.PI * i) / Math.max(1, hood.nodes.length);
        added.push({ group: "nodes", data: { ...n }, position: { x: origin.x + 120 * Math.cos(angle), y: origin.y + 120 * Math.sin(angle) } });
      });
      cy.add(added);
      cy.add(hood.edges.filter((e) => cy.getElementById(e.id).empty()).map((e) => ({ group: "edges", data: { ...e } })));
      cy.nodes().removeClass("centre");
      cy.getElementById(hood.centre).addClass("centre expanded");
      this.expanded.add(key);
      const first = this.expanded.size === 1;
      cy.layout(first // a ring around the first centre, then force-directed as the graph grows
        ? { name: "concentric", fit: true, padding: 24, minNodeSpacing: 18, animate: false,
            concentric: (n) => (n.id() === hood.centre ? 2 : 1), levelWidth: () => 1 }
        : { name: "cose", animate: false, randomize: false, fit: true, padding: 20, nodeRepulsion: () => 20000,
            idealEdgeLength: () => 90, nodeOverlap: 20 }).run();
      $("explorer-count").textContent = `(${cy.nodes().length} nodes, ${cy.edges().length} edges)`;
      publishCounts(container, cy);
      this.details(hood);
    },

    details(hood) {
      const box = $("explorer-details");
      const centre = hood.nodes[0];
      const parts = [el("h3", { text: (centre.kind === "entity" ? "Entity: " : "Passage: ") + centre.label })];
      if (centre.kind === "passage" && centre.text) parts.push(el("p", { class: "text", text: centre.text }));
      const byId = new Map(hood.nodes.map((n) => [n.id, n]));
      const passages = hood.nodes.filter((n) => n.kind === "passage" && n.id !== hood.centre);
      const facts = hood.edges.filter((e) => e.kind === "fact");
      const synonyms = hood.edges.filter((e) => e.kind === "synonym")
        .map((e) => byId.get(e.source === hood.centre ? e.target : e.source)).filter(Boolean);
      const entities = centre.kind === "passage" ? hood.nodes.filter((n) => n.kind === "entity") : [];
      const section = (title, items, render) => {
        if (!items.length) return;
        const list = el("ul", {});
        items.forEach((item) => list.append(el("li", {}, render(item))));
        parts.push(el("p", { class: "sub", text: `${title} (${items.length})` }), list);
      };
      const link = (label, target) => el("button", { type: "button", class: "link", text: label,
        onclick: () => this.open(target, false) });
      section("Passages", passages, (n) => link(n.label, { passage: n.passage_id }));
      section("Entities", entities, (n) => link(n.label, { entity: n.name }));
      section("Facts", facts, (e) => e.text || e.label);
      section("Synonyms", synonyms, (n) => link(`${n.label}`, { entity: n.name }));
      if (hood.truncated) parts.push(el("p", { class: "hint", text: `showing at most ${hood.limit} neighbours` }));
      box.replaceChildren(...parts);
    },
  };

  // ---------------------------------------------------------------- wiring
  function submitQuery(evt) {
    evt.preventDefault();
    const state = formState();
    if (!state.q) return;
    const url = urlFor(state);
    if (window.location.pathname + window.location.search !== url) window.history.pushState(state, "", url);
    runQuery(state);
  }

  function fromUrl() {
    const state = readUrl();
    fillForm(state);
    if (state.q) runQuery(state);
    else {
      $("hits").replaceChildren();
      $("status").textContent = "";
    }
  }

  function setUpToken() {
    $("token").value = sessionStorage.getItem(TOKEN_KEY) || "";
    $("token-form").addEventListener("submit", (evt) => {
      evt.preventDefault();
      const token = $("token").value.trim();
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
      $("token-box").open = false;
      loadSummary();
      fromUrl();
    });
    $("token-forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      $("token").value = "";
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (typeof window.cytoscape !== "function") {
      $("status").textContent = "the graph library did not load (/ui/vendor/cytoscape/cytoscape.min.js)";
      return;
    }
    setUpToken();
    $("query-form").addEventListener("submit", submitQuery);
    window.addEventListener("popstate", fromUrl);
    loadSummary();
    fromUrl();
  });
})();
