// Double entry: the report of GET /admin/reports/double-entry — per period
// the keyings saved (cases × fields not keyed again) and the results that
// flowed back instead of being re-keyed — with a bar chart (inline SVG),
// and per item which fields each network would have been keyed with.
import { t } from "./i18n.js";
import { api, el, table, query, failure, fromLocalInput } from "./util.js";

const SVG = "http://www.w3.org/2000/svg";

export async function render(root) {
  const body = el("div", { testid: "report-body" });
  const since = new Date(Date.now() - 30 * 24 * 3600 * 1000);
  const f = el("form", { class: "filters", testid: "report-form" },
    el("label", {}, t("since"), el("input", { name: "since", type: "datetime-local", value: local(since) })),
    el("label", {}, t("bureau"), el("input", { name: "bureau" })),
    el("label", {}, t("period"), el("select", { name: "period" }, ["day", "month", "total"].map((p) => el("option", { value: p }, t(p))))),
    el("button", { type: "submit", class: "primary" }, t("show")),
  );
  const load = async () => {
    const v = Object.fromEntries(new FormData(f));
    v.since = fromLocalInput(v.since);
    try {
      body.replaceChildren(draw(await api(`/admin/reports/double-entry${query(v)}`)));
    } catch (e) {
      body.replaceChildren(failure(e));
    }
  };
  f.addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  root.append(el("h2", {}, t("page.report")), f, body);
  await load();
}

function local(d) {
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function draw(r) {
  const k = r.total;
  const card = (label, value, testid) => el("div", { class: "card" }, t(label), el("b", { testid }, value));
  const rows = r.rows.map((row) =>
    el("tr", {},
      el("td", {}, row.period), el("td", {}, el("code", {}, row.bureau)),
      el("td", { class: "num" }, row.cases), el("td", { class: "num" }, row.keyings_saved),
      el("td", { class: "num" }, row.results_flowed_back)),
  );
  return el("div", {},
    el("div", { class: "cards" },
      card("cases", k.cases, "report-cases"),
      card("keyed_into_networks", k.keyed_into_networks),
      card("keyed_once", k.keyed_once),
      card("keyings_saved", k.keyings_saved, "report-saved"),
      card("results_flowed_back", k.results_flowed_back),
    ),
    chart(r.rows),
    r.rows.length ? table(["period", "bureau", "cases#", "keyings_saved#", "results_flowed_back#"], rows, "report-rows") : el("p", { class: "muted" }, t("none")),
    el("h3", {}, t("per_item")),
    items(r.items),
  );
}

/** Two bars per period (all bureaus added up): keyings saved, results back. */
function chart(rows) {
  const by = new Map();
  for (const row of rows) {
    const p = by.get(row.period) || { saved: 0, back: 0 };
    p.saved += Math.max(0, row.keyings_saved);
    p.back += row.results_flowed_back;
    by.set(row.period, p);
  }
  const periods = [...by.entries()];
  const max = Math.max(1, ...periods.map(([, p]) => Math.max(p.saved, p.back)));
  const W = 900, H = 260, left = 50, bottom = 40, top = 10;
  const slot = periods.length ? (W - left) / periods.length : W - left;
  const bar = Math.min(40, slot / 3);
  const svg = node("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": t("chart"), "data-testid": "report-chart" });
  const y = (v) => H - bottom - (v / max) * (H - bottom - top);
  svg.append(node("line", { x1: left, y1: H - bottom, x2: W, y2: H - bottom, stroke: "#333" }));
  svg.append(text(left - 6, top + 10, String(max), "end"), text(left - 6, H - bottom, "0", "end"));
  periods.forEach(([name, p], i) => {
    const x = left + i * slot + slot / 2 - bar;
    svg.append(node("rect", { x, y: y(p.saved), width: bar, height: H - bottom - y(p.saved), fill: "#0b57d0" }, `${t("keyings_saved")}: ${p.saved}`));
    svg.append(node("rect", { x: x + bar, y: y(p.back), width: bar, height: H - bottom - y(p.back), fill: "#1b7f3b" }, `${t("results_flowed_back")}: ${p.back}`));
    svg.append(text(x + bar, H - bottom + 16, name, "middle"));
  });
  const legend = el("p", { class: "legend" },
    el("span", {}, el("i", { style: null, class: "sw-saved" }), t("keyings_saved")),
    el("span", {}, el("i", { class: "sw-back" }), t("results_flowed_back")));
  return el("figure", {}, svg, legend);
}

function node(tag, attrs, title) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  if (title) {
    const tt = document.createElementNS(SVG, "title");
    tt.textContent = title;
    n.append(tt);
  }
  return n;
}

function text(x, y, s, anchor) {
  const n = node("text", { x, y, "text-anchor": anchor });
  n.textContent = s;
  return n;
}

function items(list) {
  const rows = list.map((it) =>
    el("tr", {},
      el("td", {}, it.item),
      el("td", {}, it.networks.map((n) => el("div", {}, `${n.network}: ${n.keyed} `, n.fields.length ? el("small", { class: "muted" }, n.fields.map((f) => f.ministry).join(", ")) : null))),
      el("td", { class: "num" }, it.keyed_into_networks), el("td", { class: "num" }, it.keyed_once),
      el("td", { class: "num" }, it.passed_along), el("td", { class: "num" }, it.saved_per_case)),
  );
  return rows.length ? table(["item", "networks", "keyed_into_networks#", "keyed_once#", "passed_along#", "saved_per_case#"], rows, "report-items") : el("p", { class: "muted" }, t("none"));
}
