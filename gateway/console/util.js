// Helpers every page uses: the admin API over fetch (the browser presents
// the client certificate), DOM building without innerHTML (data is never
// parsed as HTML), times, badges, polling and the confirmation dialog.
import { t } from "./i18n.js";

/** A refusal from the API: its status and the problem's title and detail. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(`${status} ${problem.title || ""}: ${problem.detail || ""}`);
    this.status = status;
    this.problem = problem;
  }
}

/** GET (or `opts.method`) a path of the admin listener; JSON in and out. */
export async function api(path, opts = {}) {
  const init = { method: opts.method || "GET", headers: { Accept: "application/json" } };
  if (opts.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(opts.body);
  }
  const res = await fetch(path, init);
  const type = res.headers.get("Content-Type") || "";
  if (!res.ok) {
    const problem = type.includes("json") ? await res.json() : { title: await res.text() };
    throw new ApiError(res.status, problem);
  }
  if (opts.text || !type.includes("json")) return res.text();
  return res.json();
}

/** A query string from the non-empty fields of an object. */
export function query(fields) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** An element: `el("td", {class: "num"}, "3")`; children are nodes or text. */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "testid") e.dataset.testid = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/** A table from headers (keys of the dictionary) and rows of cells. */
export function table(headers, rows, testid) {
  const head = el("tr", {}, headers.map((h) => el("th", { class: h.endsWith("#") ? "num" : null }, t(h.replace(/#$/, "")))));
  return el("table", { testid }, el("thead", {}, head), el("tbody", {}, rows));
}

/** A time as local date and time (what the API gives is RFC 3339). */
export function when(s) {
  if (!s) return "—";
  const d = new Date(s);
  return isNaN(d) ? s : d.toLocaleString(document.documentElement.lang, { hour12: false });
}

/** Seconds as "3m 20s". */
export function age(s) {
  if (s === null || s === undefined) return "—";
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

/** A coloured word: a light, a health, a state. */
export function badge(word) {
  return el("span", { class: `badge ${word}` }, t(word));
}

/** An error where a page's content would be. */
export function failure(e) {
  return el("p", { class: "error", role: "alert" }, `${t("failed")}: ${e.message || e}`);
}

/** Run `f` now and every `ms` until the returned stop is called. */
export function poll(f, ms) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    try { await f(); } catch (e) { console.warn("refresh failed", e); }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

/** Ask before acting; resolves true on "confirm". */
export function confirmAction(text) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

/** An RFC 3339 time from a datetime-local input's value, or "". */
export function fromLocalInput(v) {
  return v ? new Date(v).toISOString() : "";
}
