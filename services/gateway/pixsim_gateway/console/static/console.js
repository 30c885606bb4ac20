// PixSim console: progressive enhancement of the server-rendered pages. No dependencies, no inline
// script (the Content-Security-Policy allows scripts from this origin only); text from the API is
// always set with textContent, never as HTML.
"use strict";

const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
const TERMINAL = ["completed", "failed", "filtered", "cancelled"];
const EVENTS = ["requested", "submitted", "progressed", "completed", "failed", "filtered", "cancel_requested", "cancelled"];

async function fetchText(url) {
  const resp = await fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "console" } });
  if (!resp.ok || resp.redirected) throw new Error(`${url}: ${resp.status}`);
  return resp.text();
}

// Server-rendered (escaped) fragments of our own origin replace a node's content.
function swap(node, html) {
  const doc = new DOMParser().parseFromString(`<template>${html}</template>`, "text/html");
  node.replaceChildren(doc.querySelector("template").content.cloneNode(true));
}

function liveRows(tbody) {
  const tick = async () => {
    if (!document.hidden) {
      try { swap(tbody, await fetchText(tbody.dataset.live)); } catch (e) { /* next tick */ }
    }
    setTimeout(tick, 2000);
  };
  setTimeout(tick, 2000);
}

function autosubmit(select) {
  select.addEventListener("change", () => {
    const form = select.form;
    if (select.name === "provider") {
      const op = form.querySelector('select[name="operation"]');
      if (op) op.disabled = true; // a new provider starts at its first operation
    }
    form.submit();
  });
}

function estimates(form) {
  const out = document.getElementById("estimate");
  let timer = null;
  const run = async () => {
    const body = new FormData(form);
    for (const [name, value] of [...body.entries()]) if (value instanceof File) body.delete(name);
    try {
      const resp = await fetch(form.dataset.estimate, { method: "POST", body, credentials: "same-origin",
                                                       headers: { "X-CSRF-Token": csrf() } });
      if (resp.ok) out.textContent = (await resp.json()).text || "";
    } catch (e) { /* keep the last estimate */ }
  };
  const later = () => { clearTimeout(timer); timer = setTimeout(run, 300); };
  form.addEventListener("input", later);
  form.addEventListener("change", later);
}

function preview(input) {
  const box = document.getElementById(input.dataset.preview);
  input.addEventListener("change", () => {
    box.replaceChildren();
    for (const file of input.files) {
      const url = URL.createObjectURL(file);
      let el;
      if (file.type.startsWith("image/")) {
        el = document.createElement("img");
        el.alt = `Preview of ${file.name}`;
      } else if (file.type.startsWith("video/")) {
        el = document.createElement("video");
        el.controls = true; el.muted = true;
        el.setAttribute("aria-label", `Preview of ${file.name}`);
      } else {
        el = document.createElement("span");
        el.textContent = file.name;
      }
      if (el.tagName !== "SPAN") el.src = url;
      el.className = "preview-item";
      box.appendChild(el);
    }
  });
}

function setStatus(status) {
  const dd = document.getElementById("status");
  const span = document.createElement("span");
  span.className = `status status-${status}`;
  span.textContent = status;
  dd.replaceChildren(span);
  document.getElementById("generation").dataset.status = status;
  if (TERMINAL.includes(status)) {
    const cancel = document.getElementById("cancel-form");
    if (cancel) cancel.remove();
  }
}

function setProgress(percent) {
  const bar = document.getElementById("progress");
  const value = Math.max(Number(bar.value) || 0, Math.min(100, Math.round(percent)));
  bar.value = value;
  bar.textContent = `${value}%`;
  document.getElementById("progress-text").textContent = `${value}%`;
}

function pollResult(node) {
  const tick = async () => {
    try {
      const html = await fetchText(node.dataset.poll);
      swap(node, html);
      const fresh = node.querySelector("#result");
      if (fresh) { node.replaceWith(fresh); node = fresh; }
      if (!node.dataset.poll || node.hasAttribute("data-ready")) return;
    } catch (e) { /* try again */ }
    setTimeout(tick, 700);
  };
  setTimeout(tick, 300);
}

function refreshResult(box) {
  const node = document.getElementById("result");
  node.dataset.poll = box.dataset.result;
  pollResult(node);
}

function events(box) {
  const timeline = document.getElementById("timeline");
  const source = new EventSource(box.dataset.events);
  const statusOf = { submitted: "submitted", progressed: "processing", completed: "completed", failed: "failed",
                     filtered: "filtered", cancelled: "cancelled" };
  const wasTerminal = TERMINAL.includes(box.dataset.status);
  for (const name of EVENTS) {
    source.addEventListener(`generation.${name}`, (msg) => {
      let data = {};
      try { data = JSON.parse(msg.data); } catch (e) { return; }
      const item = document.createElement("li");
      const when = document.createElement("time");
      when.dateTime = data.occurred_at || "";
      when.textContent = (data.occurred_at || "").slice(11, 19);
      item.append(when, ` ${name}`);
      if (typeof data.progress === "number") item.append(` ${Math.round(100 * data.progress)}%`);
      if (data.error) item.append(` ${data.error.code}: ${data.error.message}`);
      item.dataset.event = name;
      timeline.appendChild(item);
      if (typeof data.progress === "number") setProgress(100 * data.progress);
      if (name === "completed") setProgress(100);
      if (statusOf[name] && !TERMINAL.includes(box.dataset.status)) setStatus(statusOf[name]);
      if (data.error) {
        document.getElementById("error-code").textContent = data.error.code || "";
        document.getElementById("error-message").textContent = data.error.message || "";
        document.getElementById("failure").hidden = false;
      }
      if (TERMINAL.includes(name)) {
        source.close(); // the stream ends here; EventSource would otherwise reconnect and replay it
        setStatus(name);
        if (!wasTerminal) refreshResult(box);
      }
    });
  }
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) { /* gone for good */ } };
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("tbody[data-live]").forEach(liveRows);
  document.querySelectorAll("select[data-autosubmit]").forEach(autosubmit);
  document.querySelectorAll("form[data-estimate]").forEach(estimates);
  document.querySelectorAll("input[type=file][data-preview]").forEach(preview);
  document.querySelectorAll("[data-events]").forEach(events);
  document.querySelectorAll("#result[data-poll]").forEach(pollResult);
});
