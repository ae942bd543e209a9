// The bastion dashboard: polls /dashboard/data and draws with the DOM and SVG only.
// Every value from the server goes into textContent or an SVG attribute, never into HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const CLASSES = ["2xx", "3xx", "4xx", "5xx"];
const POLL_MS = 2000;

function el(tag, attrs, text) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
function text(id, value) { document.getElementById(id).textContent = String(value); }
function show(id, visible) { document.getElementById(id).classList.toggle("hidden", !visible); }
function time(stamp) { return stamp ? String(stamp).replace("T", " ").replace(/\.\d+Z$|Z$/, "") : "–"; }

function rateChart(points) {
  const svg = document.getElementById("rate-chart");
  clear(svg);
  const W = 1000, H = 160, top = 8, bottom = 18, left = 34;
  const totals = points.map(p => CLASSES.reduce((sum, c) => sum + p[c], 0));
  const max = Math.max(1, ...totals);
  const x = i => left + (points.length < 2 ? 0 : (i * (W - left - 4)) / (points.length - 1));
  const y = v => H - bottom - (v / max) * (H - top - bottom);
  svg.appendChild(el("svg:line", {x1: left, y1: H - bottom, x2: W, y2: H - bottom, class: "axis"}));
  svg.appendChild(el("svg:text", {x: 2, y: top + 8, class: "label"}, max.toFixed(max < 10 ? 1 : 0)));
  svg.appendChild(el("svg:text", {x: 2, y: H - bottom, class: "label"}, "0"));
  svg.appendChild(el("svg:text", {x: left, y: H - 3, class: "label"}, points.length + " s"));
  if (points.length < 2) return;
  const base = points.map(() => 0);
  for (const c of CLASSES) {
    const upper = points.map((p, i) => base[i] + p[c]);
    let d = "M" + x(0) + "," + y(upper[0]);
    for (let i = 1; i < points.length; i++) d += " L" + x(i).toFixed(1) + "," + y(upper[i]).toFixed(1);
    for (let i = points.length - 1; i >= 0; i--) d += " L" + x(i).toFixed(1) + "," + y(base[i]).toFixed(1);
    svg.appendChild(el("svg:path", {d: d + " Z", class: "area s" + c, "data-class": c}));
    for (let i = 0; i < points.length; i++) base[i] = upper[i];
  }
}

function latencyChart(points) {
  const svg = document.getElementById("latency-chart");
  clear(svg);
  const W = 1000, H = 120, top = 8, bottom = 18, left = 34;
  const values = points.flatMap(p => [p.p50_ms, p.p95_ms]).filter(v => v !== null && v !== undefined);
  const max = Math.max(1, ...values);
  const x = i => left + (points.length < 2 ? 0 : (i * (W - left - 4)) / (points.length - 1));
  const y = v => H - bottom - (v / max) * (H - top - bottom);
  svg.appendChild(el("svg:line", {x1: left, y1: H - bottom, x2: W, y2: H - bottom, class: "axis"}));
  svg.appendChild(el("svg:text", {x: 2, y: top + 8, class: "label"}, max < 10 ? max.toFixed(1) : max.toFixed(0)));
  svg.appendChild(el("svg:text", {x: 2, y: H - bottom, class: "label"}, "0"));
  for (const q of ["p50", "p95"]) {
    let d = "";
    const dots = [];
    points.forEach((p, i) => {
      const v = p[q + "_ms"];
      if (v === null || v === undefined) return;
      d += (d ? " L" : "M") + x(i).toFixed(1) + "," + y(v).toFixed(1);
      dots.push(el("svg:circle", {cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 3, class: "dot " + q}));
    });
    if (d) svg.appendChild(el("svg:path", {d: d, class: "line " + q}));
    for (const dot of dots) svg.appendChild(dot);
  }
  const answered = points.filter(p => p.p95_ms !== null && p.p95_ms !== undefined);
  const last = answered.length ? answered[answered.length - 1] : null;
  text("p50-now", last ? last.p50_ms : "–");
  text("p95-now", last ? last.p95_ms : "–");
}

function mixChart(mix) {
  const svg = document.getElementById("mix-chart");
  clear(svg);
  const total = CLASSES.reduce((sum, c) => sum + mix[c], 0);
  let x = 0;
  for (const c of CLASSES) {
    const w = total ? (mix[c] / total) * 300 : 0;
    if (w > 0) svg.appendChild(el("svg:rect", {x: x, y: 4, width: w, height: 32, class: "bar s" + c}));
    x += w;
  }
  const body = document.querySelector("#mix-table tbody");
  clear(body);
  for (const c of CLASSES) {
    const share = total ? ((mix[c] / total) * 100).toFixed(1) + " %" : "–";
    const row = el("tr");
    row.append(el("td", {}, c), el("td", {}, mix[c]), el("td", {}, share));
    body.appendChild(row);
  }
}

function refusalsChart(top) {
  const svg = document.getElementById("refusals-chart");
  clear(svg);
  show("refusals-empty", top.length === 0);
  const max = Math.max(1, ...top.map(t => t.count));
  top.slice(0, 8).forEach((t, i) => {
    const y = i * 24 + 2;
    svg.appendChild(el("svg:text", {x: 0, y: y + 14, class: "label"}, t.ip));
    svg.appendChild(el("svg:rect", {x: 120, y: y + 3, width: Math.max(2, (t.count / max) * 140), height: 14, class: "refusal"}));
    svg.appendChild(el("svg:text", {x: 266, y: y + 14, class: "label"}, t.count));
  });
}

function rows(id, items, cells, emptyId) {
  const body = document.querySelector("#" + id + " tbody");
  clear(body);
  for (const item of items) {
    const row = el("tr");
    for (const cell of cells(item)) row.appendChild(el("td", {}, cell));
    if (item.event && item.event.outcome === "failure") row.classList.add("failure");
    body.appendChild(row);
  }
  if (emptyId) show(emptyId, items.length === 0);
}

function eventCells(e) {
  const ev = e.event || {};
  return [time(e["@timestamp"]), ev.action, ev.outcome, (e.http && e.http.response) ? e.http.response.status_code : "",
    e.source ? e.source.ip : "", e.user ? e.user.id : "", e.url ? e.url.path : ""];
}

function alertCells(e) {
  const fields = (e.bastion && e.bastion.fields) ? e.bastion.fields : {};
  const details = Object.entries(fields).slice(0, 4).map(([k, v]) => k + "=" + (typeof v === "object" ? JSON.stringify(v) : v)).join(" ");
  return [time(e["@timestamp"]), (e.event || {}).action, e.source ? e.source.ip : "", details || (e.bastion || {}).reason || ""];
}

function expiring(found) {
  const items = [];
  for (const k of found.keys) items.push({kind: "API key", name: k.id + " (" + k.consumer + ")", state: k.status, until: k.expires_at});
  for (const c of found.certificates) items.push({kind: "certificate", name: c.role + " " + c.file, state: c.warning ? "expiring: " + c.days_left + " days" : c.days_left + " days left", until: c.not_after, warning: c.warning});
  for (const s of found.signing_keys) items.push({kind: "signing key", name: s.kid + " " + s.alg, state: s.state, until: s.published_until || ""});
  for (const e of found.errors) items.push({kind: "unavailable", name: e, state: "", until: ""});
  const body = document.querySelector("#expiring tbody");
  clear(body);
  for (const item of items) {
    const row = el("tr");
    row.append(el("td", {}, item.kind), el("td", {}, item.name), el("td", {}, item.state), el("td", {}, time(item.until)));
    if (item.warning || item.state === "expiring" || item.state === "grace") row.classList.add("warning");
    body.appendChild(row);
  }
  show("expiring-empty", items.length === 0);
}

function render(data) {
  const points = data.traffic.history;
  const last = points.length ? points[points.length - 1] : null;
  text("rate-now", last ? CLASSES.reduce((sum, c) => sum + last[c], 0).toFixed(1) : "0.0");
  text("total", data.traffic.total);
  text("in-flight", data.traffic.in_flight);
  rateChart(points);
  latencyChart(points);
  mixChart(data.traffic.status_mix);
  refusalsChart(data.top_refusals);
  rows("alerts", data.alerts, alertCells, "alerts-empty");
  rows("events", data.events, eventCells);
  expiring(data.expiring);
  text("version", data.version);
  text("generation", data.config.generation);
  text("updated", time(data.generated_at));
  text("state", "live");
  document.body.dataset.loaded = "true";
}

async function poll() {
  try {
    const response = await fetch("/dashboard/data", {credentials: "same-origin", cache: "no-store"});
    if (response.status === 401) { window.location.reload(); return; }
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
  } catch (error) {
    text("state", "connection lost, retrying…");
  }
  setTimeout(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", poll);
