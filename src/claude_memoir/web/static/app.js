// claude-memoir viewer. Everything shown came from tool output or an agent:
// this script builds elements with textContent only (never innerHTML), so
// stored markup stays text.
"use strict";
(function () {
  const token = document.querySelector('meta[name="memoir-token"]').content;
  const lastSeen = Number(document.querySelector('meta[name="memoir-last-observation"]').content) || 0;
  const sessionId = document.body.dataset.session || "";

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  async function send(method, url, body) {
    const response = await fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: Object.assign({"X-Memoir-Token": token},
                             body === undefined ? {} : {"Content-Type": "application/json"}),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    if (!response.ok) throw new Error(data.error || ("HTTP " + response.status));
    return data;
  }

  // -- delete buttons ---------------------------------------------------------
  document.addEventListener("click", async function (event) {
    const button = event.target.closest("[data-delete]");
    if (!button) return;
    if (!window.confirm(button.dataset.confirm || "Delete?")) return;
    button.disabled = true;
    try {
      await send("DELETE", button.dataset.delete);
      if (button.dataset.after) { window.location.assign(button.dataset.after); return; }
      const item = button.closest("[data-item]");
      if (item) item.remove();
    } catch (e) {
      button.disabled = false;
      window.alert("Could not delete: " + e.message);
    }
  });

  // -- edit forms -------------------------------------------------------------
  document.addEventListener("click", function (event) {
    const toggle = event.target.closest("[data-edit-toggle]");
    if (!toggle) return;
    const form = toggle.closest("article").querySelector("form.edit");
    form.hidden = !form.hidden;
  });
  document.addEventListener("submit", async function (event) {
    const form = event.target.closest("form[data-edit]");
    if (!form) return;
    event.preventDefault();
    const facts = form.elements.facts.value.split("\n").map(function (f) { return f.trim(); })
      .filter(function (f) { return f.length > 0; });
    const errorBox = form.querySelector(".form-error");
    try {
      await send("POST", form.dataset.edit, {
        title: form.elements.title.value, facts: facts, narrative: form.elements.narrative.value,
      });
      window.location.reload();
    } catch (e) {
      errorBox.textContent = e.message;
      errorBox.hidden = false;
    }
  });

  // -- live updates (server-sent events) ------------------------------------------
  function renderObservation(o) {
    const article = el("article", "observation live-new");
    article.dataset.observation = o.id;
    article.id = "obs-" + o.id;
    const header = el("header");
    header.append(el("span", "type " + o.type, o.type), el("h3", "title", o.title),
                  el("span", "obs-id", "#" + o.id));
    article.append(header);
    if (o.subtitle) article.append(el("p", "subtitle", o.subtitle));
    if (o.facts && o.facts.length) {
      const list = el("ul", "facts");
      o.facts.forEach(function (f) { list.append(el("li", null, f)); });
      article.append(list);
    }
    if (o.narrative) article.append(el("p", "narrative", o.narrative));
    const files = (o.files_modified || []).concat(o.files_read || []);
    if (files.length) {
      const p = el("p", "files");
      files.forEach(function (f) { p.append(el("code", "file", f), " "); });
      article.append(p);
    }
    return article;
  }

  function onObservation(o) {
    if (sessionId && o.session === sessionId) {
      document.getElementById("new-observations").append(renderObservation(o));
      const count = document.getElementById("observation-count");
      if (count) count.textContent = String(Number(count.textContent) + 1);
      return;
    }
    const row = document.querySelector('[data-session-row="' + CSS.escape(o.session) + '"] .obs-count');
    if (row) row.textContent = String(Number(row.textContent) + 1);
    const panel = document.getElementById("live");
    const list = document.getElementById("live-list");
    const item = el("li", "live-item");
    const link = el("a", null, o.title);
    link.href = "/session/" + encodeURIComponent(o.session) + "#obs-" + o.id;
    item.append(el("span", "type " + o.type, o.type), " ", link, " ",
                el("span", "muted", o.project));
    list.prepend(item);
    while (list.children.length > 20) list.lastElementChild.remove();
    panel.hidden = false;
  }

  if (window.EventSource) {
    const source = new EventSource("/live?after=" + lastSeen);
    source.addEventListener("observation", function (event) {
      try { onObservation(JSON.parse(event.data)); } catch (e) { /* a bad event is skipped */ }
    });
    document.documentElement.dataset.live = "connecting";
    source.addEventListener("open", function () { document.documentElement.dataset.live = "open"; });
  }
})();
