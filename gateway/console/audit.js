// Audit (auditors; read-only): the trail's verify status (records, the last
// signed checkpoint, any break), and a query over a time range shown as a
// table and exported as JSON lines. Both reads are the admin API's audited
// routes (GET /admin/audit/verify, GET /admin/audit).
import { t } from "./i18n.js";
import { api, el, table, badge, when, query, failure, fromLocalInput } from "./util.js";

const KINDS = ["", "intake", "change", "read", "callback", "adapter-call", "outbound", "backflow", "admin", "denial", "tls-refused", "limit", "alert", "checkpoint"];
const SHOWN = 200;

export async function render(root, session) {
  root.append(el("h2", {}, t("page.audit")));
  if (!session.may.audit) {
    root.append(el("p", { class: "muted", testid: "audit-auditors-only" }, t("auditors_only")));
    return;
  }
  const status = el("div", { testid: "audit-status" });
  const results = el("div", { testid: "audit-results" });
  root.append(status, el("h3", {}, t("audit_query")), form(results), results);
  try {
    status.replaceChildren(verified(await api("/admin/audit/verify")));
  } catch (e) {
    status.replaceChildren(failure(e));
  }
}

function verified(v) {
  const card = (label, value, testid) => el("div", { class: "card" }, t(label), el("b", { testid }, value ?? "—"));
  return el("div", {},
    el("div", { class: "cards" },
      el("div", { class: "card" }, t("chain"), el("b", { testid: "audit-intact" }, badge(v.intact ? "intact" : "broken"))),
      card("records", v.records, "audit-records"),
      card("checkpoints", v.checkpoints),
      card("last_checkpoint", v.last_checkpoint_seq),
      card("after_checkpoint", v.records_after_last_checkpoint),
      card("hash", v.hash),
    ),
    el("p", {}, t("last_checkpoint_at"), ": ", when(v.last_checkpoint_at)),
    v.broken ? el("pre", { class: "error", testid: "audit-break" }, JSON.stringify(v.broken, null, 2)) : null,
  );
}

function form(results) {
  const input = (name, type = "text") => el("label", {}, t(name), el("input", { name, type }));
  const kind = el("select", { name: "kind" }, KINDS.map((k) => el("option", { value: k }, k || t("any"))));
  const f = el("form", { class: "filters", testid: "audit-query" },
    input("since", "datetime-local"), input("until", "datetime-local"),
    el("label", {}, t("kind"), kind), input("case"), input("principal"), input("network"),
    el("button", { type: "submit", class: "primary", testid: "audit-run" }, t("search")),
    el("button", { type: "button", testid: "audit-export", onclick: () => exportLines(f) }, t("export")),
  );
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const lines = await api(`/admin/audit${query({ ...fields(f), limit: SHOWN })}`, { text: true });
      results.replaceChildren(draw(parse(lines)));
    } catch (e) {
      results.replaceChildren(failure(e));
    }
  });
  return f;
}

function fields(f) {
  const v = Object.fromEntries(new FormData(f));
  v.since = fromLocalInput(v.since);
  v.until = fromLocalInput(v.until);
  return v;
}

function parse(text) {
  return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
}

function draw(records) {
  if (!records.length) return el("p", { class: "muted" }, t("none"));
  const rows = records.map((r) =>
    el("tr", {},
      el("td", { class: "num" }, r.seq), el("td", {}, when(r.at)), el("td", {}, r.kind),
      el("td", {}, r.principal || "—"), el("td", {}, r.case || "—"), el("td", {}, r.network || "—"),
      el("td", {}, el("code", {}, JSON.stringify(r.detail).slice(0, 160))),
    ),
  );
  return el("div", {},
    records.length >= SHOWN ? el("p", { class: "muted" }, t("first_n"), ` ${SHOWN}`) : null,
    table(["seq#", "at", "kind", "principal", "case", "network", "detail"], rows, "audit-table"),
  );
}

/** The whole range as a .jsonl download (the trail's own record format). */
async function exportLines(f) {
  const text = await api(`/admin/audit${query({ ...fields(f), limit: 1000000 })}`, { text: true });
  const url = URL.createObjectURL(new Blob([text], { type: "application/x-ndjson" }));
  const a = el("a", { href: url, download: `yiwang-audit-${new Date().toISOString()}.jsonl` });
  document.body.append(a);
  a.click();
  a.remove();
  URL.revokeObjectURL(url);
}
