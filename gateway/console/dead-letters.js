// Dead letters: filter by network and case, inspect each one's reason and
// attempts, and (operators granted `replay`) replay one or a selection
// after a confirmation. Each replay is POST /admin/replay: the admin API's
// own route, spaced to its rate, rate-limited per principal and audited
// with the operator's name. Auditors see the list; the button is disabled.
import { t } from "./i18n.js";
import { api, el, table, badge, when, query, failure, confirmAction } from "./util.js";

export async function render(root, session) {
  const list = el("div", { testid: "dead-letter-list" });
  const note = el("p", { testid: "replay-result", "aria-live": "polite" });
  const filters = { network: "", case_number: "" };
  const load = async () => {
    try {
      const d = await api(`/admin/console/dead-letters${query(filters)}`);
      list.replaceChildren(draw(d.dead_letters));
    } catch (e) {
      list.replaceChildren(failure(e));
    }
  };
  const form = el("form", { class: "filters", testid: "dlq-filter" },
    el("label", {}, t("network"), el("input", { name: "network", testid: "dlq-network" })),
    el("label", {}, t("case_number"), el("input", { name: "case_number", testid: "dlq-case" })),
    el("button", { type: "submit", class: "primary" }, t("filter")),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    Object.assign(filters, Object.fromEntries(new FormData(form)));
    load();
  });
  const replay = el("button", {
    class: "danger",
    testid: "replay-selected",
    disabled: !session.may.replay,
    title: session.may.replay ? null : t("needs_replay"),
    onclick: () => replaySelected(list, note, load),
  }, t("replay_selected"));
  root.append(
    el("h2", {}, t("page.dead-letters")), form,
    el("div", { class: "toolbar" }, replay, session.may.replay ? null : el("span", { class: "muted", testid: "read-only" }, t("read_only")), note),
    list,
  );
  await load();
}

function draw(letters) {
  if (!letters.length) return el("p", { class: "muted", testid: "no-dead-letters" }, t("no_dead_letters"));
  const rows = letters.map((d) => {
    const attempts = d.attempt_log.map((a) =>
      el("li", {}, when(a.at), " ", badge(a.outcome), " ", a.kind ? el("code", {}, a.kind, " ") : null, a.message),
    );
    return el("tr", { testid: `dead-${d.case_number}-${d.job}` },
      el("td", {}, el("input", { type: "checkbox", "data-case": d.case_number, "data-job": d.job, testid: `select-${d.case_number}-${d.job}`, "aria-label": t("select") })),
      el("td", {}, el("a", { href: `#/cases/${encodeURIComponent(d.case_number)}` }, d.case_number)),
      el("td", {}, d.destination),
      el("td", {}, d.item),
      el("td", {}, d.reason || "—"),
      el("td", {}, when(d.dead_at)),
      el("td", {}, el("details", {}, el("summary", {}, `${t("attempts")} (${d.attempt_log.length})`), el("ol", {}, attempts))),
    );
  });
  return table(["", "case_number", "network", "item", "reason", "dead_at", "attempts"], rows, "dead-letters-table");
}

async function replaySelected(list, note, reload) {
  const chosen = [...list.querySelectorAll("input[type=checkbox]:checked")].map((c) => ({
    case_number: c.dataset.case,
    job: Number(c.dataset.job),
  }));
  if (!chosen.length) {
    note.textContent = t("select_first");
    return;
  }
  const names = chosen.map((c) => `${c.case_number} #${c.job}`).join(", ");
  if (!(await confirmAction(`${t("confirm_replay")} ${names}`))) return;
  let replayed = 0;
  try {
    for (const c of chosen) {
      const out = await api("/admin/replay", { method: "POST", body: c });
      replayed += out.replayed.length;
    }
    note.textContent = `${t("replayed")}: ${replayed}`;
    note.className = "";
  } catch (e) {
    note.textContent = `${t("failed")}: ${e.message}`;
    note.className = "error";
  }
  await reload();
}
