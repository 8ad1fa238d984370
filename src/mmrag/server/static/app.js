// mmrag web page: search, streamed answers with clickable citations, drag-and-drop upload.
// Plain DOM code; every text from the server is inserted with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "mmrag_key";
let apiKey = localStorage.getItem(KEY_STORE) || "";

function setKey(key) {
  apiKey = key;
  localStorage.setItem(KEY_STORE, key);
  // <img>, <audio> and <video> cannot send headers; the media routes also read this cookie.
  document.cookie = `mmrag_key=${encodeURIComponent(key)}; path=/api/; SameSite=Strict`;
}
if (apiKey) setKey(apiKey);

function headers(extra = {}) {
  return apiKey ? { ...extra, Authorization: `Bearer ${apiKey}` } : extra;
}

function status(text) { $("status").textContent = text; }

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers || {}) });
  if (response.status === 401) {
    $("key-form").hidden = false;
    throw new Error("this server needs an API key");
  }
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) throw new Error(detail(body) || `HTTP ${response.status}`);
  return body;
}

function detail(body) {
  if (!body) return "";
  if (typeof body.detail === "string") return body.detail;
  if (Array.isArray(body.detail)) return body.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  return JSON.stringify(body);
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) if (child != null) node.append(child);
  return node;
}

// ---- results ------------------------------------------------------------------

function mediaUrl(kind, id) { return `/api/${kind}/${encodeURIComponent(id)}`; }

function preview(p) {
  const start = p.span && p.span.t_start != null ? `#t=${p.span.t_start}` : "";
  if (p.modality === "audio" && p.has_media) return el("audio", { controls: true, preload: "metadata", src: mediaUrl("media", p.id) + start });
  if (p.modality === "video" && p.has_media) return el("video", { controls: true, preload: "metadata", src: mediaUrl("media", p.id) + start });
  const isPdf = (p.source || "").toLowerCase().endsWith(".pdf");
  if (p.modality === "image" || p.modality === "page" || (isPdf && p.uploaded)) {
    return el("img", { className: "thumb", loading: "lazy", alt: p.citation, src: mediaUrl("thumbnail", p.id) + "?size=256" });
  }
  return null;
}

// "ocean-tides.html · p. 3 · 12.0 s": short enough to scan; the full citation is the tooltip.
function label(p) {
  const name = (p.source || p.source_id || p.id).split("/").pop();
  const parts = [name];
  if (p.span && p.span.page != null) parts.push(`p. ${p.span.page}`);
  if (p.span && p.span.t_start != null) parts.push(`${p.span.t_start.toFixed(1)} s`);
  return parts.join(" · ");
}

function renderResults(passages, title) {
  $("results-title").textContent = title;
  const list = $("results");
  list.replaceChildren();
  for (const p of passages) {
    const text = p.text.length > 700 ? p.text.slice(0, 699) + "…" : p.text;
    const item = el("li", { id: `p-${p.number}`, value: p.number },
      preview(p),
      el("div", { className: "where", title: p.citation, textContent: `${label(p)} · ${p.modality} · score ${Number(p.score).toFixed(3)}` }),
      el("div", { className: "text", textContent: text }),
      el("div", { className: "clear" }));
    item.dataset.id = p.id;
    list.append(item);
  }
  $("results-box").hidden = passages.length === 0 && !title.startsWith("No");
}

function markUploaded(passages) {
  for (const p of passages) p.uploaded = uploadedSources.has(p.source_id);
  return passages;
}

// ---- answers ------------------------------------------------------------------

const MARKER = /\[(\d+(?:\s*[-–,;]\s*\d+)*)\]/g;

// The answer text with each [n] turned into a link to passage n.
function renderAnswer(text, count) {
  const box = $("answer");
  box.classList.remove("error");
  box.replaceChildren();
  appendMarked(box, text, count);
}

// Checked sentences: each marked supported or not by the passages it cites.
function renderSentences(sentences, count) {
  const box = $("answer");
  box.classList.remove("error");
  box.replaceChildren();
  for (const s of sentences) {
    const how = s.supported
      ? (s.inferred ? "supported (citation inferred by the checker)" : "supported by the cited passage")
      : (s.citations.length ? "not supported by the passage it cites" : "cites no passage: unsupported");
    const span = el("span", { className: `sentence ${s.supported ? "supported" : "unsupported"}`, title: how });
    appendMarked(span, s.text, count);
    box.append(span, " ");
  }
}

function appendMarked(box, text, count) {
  let last = 0;
  for (const m of text.matchAll(MARKER)) {
    box.append(text.slice(last, m.index));
    const numbers = m[1].split(/\s*[,;]\s*/).flatMap((part) => {
      const [a, b] = part.split(/\s*[-–]\s*/).map(Number);
      return b ? Array.from({ length: Math.max(0, Math.min(b - a + 1, 50)) }, (_, i) => a + i) : [a];
    });
    for (const n of numbers) {
      if (n >= 1 && n <= count) {
        box.append(el("a", { className: "citation", href: `#p-${n}`, textContent: `[${n}]`, title: `passage ${n}`, onclick: (e) => { e.preventDefault(); focusPassage(n); } }));
      }
    }
    last = m.index + m[0].length;
  }
  box.append(text.slice(last));
}

function focusPassage(n) {
  for (const li of document.querySelectorAll(".results li.highlight")) li.classList.remove("highlight");
  const item = $(`p-${n}`);
  if (item) { item.classList.add("highlight"); item.scrollIntoView({ behavior: "smooth", block: "center" }); }
}

function renderStages(stages) {
  const table = $("stages");
  table.replaceChildren(el("tr", {}, ...["stage", "name", "seconds", "in", "out", "tokens", "budget"].map((h) => el("th", { textContent: h }))));
  for (const s of stages) {
    const budget = s.extra.budget ?? s.extra.max_tokens ?? s.extra.k ?? "";
    table.append(el("tr", {}, ...[s.stage, s.name, s.seconds.toFixed(3), s.n_in, s.n_out, s.tokens, budget].map((v) => el("td", { textContent: String(v) }))));
  }
}

function showError(message, passages) {
  $("answer-box").hidden = false;
  const box = $("answer");
  box.classList.add("error");
  box.textContent = message;
  if (passages && passages.length) renderResults(markUploaded(passages), "Retrieved passages");
}

// Server-sent events from a fetch() body: POST with headers, which EventSource cannot do.
async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

let running = null;

async function ask(question) {
  running?.abort();
  running = new AbortController();
  $("answer-box").hidden = false;
  renderAnswer("", 0);
  $("stages").replaceChildren();
  status("retrieving…");
  const response = await fetch("/api/ask", {
    method: "POST",
    headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify({ question, stream: true }),
    signal: running.signal,
  });
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    if (response.status === 401) $("key-form").hidden = false;
    throw new Error(detail(body) || `HTTP ${response.status}`);
  }
  let text = "";
  let count = 0;
  for await (const { event, data } of readEvents(response)) {
    if (event === "passages") {
      count = data.passages.length;
      renderResults(markUploaded(data.passages), count ? "Sources" : "No passage matches");
      status("generating…");
    } else if (event === "token") {
      text += data.text;
      renderAnswer(text, count);
    } else if (event === "answer") {
      // the answer's own numbering is authoritative for its citations
      renderResults(markUploaded(data.passages), data.passages.length ? "Sources" : "No passage matches");
      if (data.sentences && data.sentences.length) renderSentences(data.sentences, data.passages.length);
      else renderAnswer(data.answer, data.passages.length);
      renderStages(data.stages);
      const dropped = data.dropped_citations.length ? ` · dropped citations: ${data.dropped_citations.join(", ")}` : "";
      const g = data.grounding || {};
      const checked = g.verified ? ` · ${g.supported} of ${g.sentences} sentence(s) supported` : "";
      status(data.not_found ? "not found in the indexed material: the closest passages are listed" : `${data.citations.length} citation(s)${checked}${dropped}`);
    } else if (event === "error") {
      showError(data.detail, data.passages);
      status("failed");
    }
  }
}

async function search(query) {
  status("searching…");
  const body = await api("/api/search", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ query, k: 10 }),
  });
  $("answer-box").hidden = true;
  renderResults(markUploaded(body.hits), body.hits.length ? `Results (${body.retriever}, ${body.seconds.toFixed(3)} s)` : "No results");
  status(`${body.hits.length} result(s)`);
}

// ---- documents ----------------------------------------------------------------

let uploadedSources = new Set();

async function refreshDocuments() {
  const body = await api("/api/documents");
  uploadedSources = new Set(body.documents.filter((d) => d.uploaded).map((d) => d.source_id));
  $("supported").textContent = `accepted: ${body.supported.join(" ")}`;
  const list = $("documents");
  list.replaceChildren();
  for (const d of body.documents) {
    const remove = el("button", { className: "plain", textContent: "delete", title: `delete ${d.name}` });
    remove.onclick = async () => {
      await api(`/api/documents?source_id=${encodeURIComponent(d.source_id)}`, { method: "DELETE" });
      await refreshDocuments();
    };
    list.append(el("li", {}, el("span", { textContent: `${d.name} (${d.chunks})`, title: d.source_id }), remove));
  }
  const info = await api("/api/info");
  $("store-info").textContent = `${info.store.sources} sources · ${info.store.chunks} chunks`;
}

function upload(files) {
  const form = new FormData();
  for (const f of files) form.append("files", f, f.name);
  const bar = el("progress", { max: 100, value: 0 });
  const label = el("span", { textContent: [...files].map((f) => f.name).join(", ") });
  const row = el("li", { className: "upload" }, bar, label);
  $("uploads").prepend(row);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/documents");
  if (apiKey) xhr.setRequestHeader("Authorization", `Bearer ${apiKey}`);
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total; };
  xhr.onload = async () => {
    bar.value = 100;
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
    if (xhr.status === 201) {
      row.classList.add("done");
      label.textContent += ` — indexed (${body.documents.map((d) => d.chunks).reduce((a, b) => a + b, 0)} chunks)`;
      await refreshDocuments();
    } else {
      row.classList.add("failed");
      label.textContent += ` — ${detail(body) || `HTTP ${xhr.status}`}`;
      if (xhr.status === 401) $("key-form").hidden = false;
    }
  };
  xhr.onerror = () => { row.classList.add("failed"); label.textContent += " — network error"; };
  xhr.send(form);
}

// ---- wiring -------------------------------------------------------------------

function wire() {
  $("query-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const action = e.submitter?.value || "search";
    const text = $("query").value.trim();
    if (!text) return;
    try {
      await (action === "ask" ? ask(text) : search(text));
    } catch (err) {
      if (err.name !== "AbortError") { showError(err.message); status("failed"); }
    }
  });
  $("key-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    setKey($("key").value);
    $("key-form").hidden = true;
    refreshDocuments().catch((err) => status(err.message));
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) upload(e.dataTransfer.files);
  });
  $("file-input").addEventListener("change", (e) => {
    if (e.target.files.length) upload(e.target.files);
    e.target.value = "";
  });
  refreshDocuments().catch((err) => status(err.message));
}

wire();
