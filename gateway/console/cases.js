// Cases: search by case number, item, bureau, network, state and time
// range; one case's timeline across every network (intake, attempts with
// their class and message, ministry case numbers, back-flow stages,
// chained hand-offs, notices, the deadline light), refreshed while open.
import { t } from "./i18n.js";
import { api, el, table, badge, when, query, poll, failure, fromLocalInput } from "./util.js";

const STATES = ["", "pending", "verify", "in_flight", "delivered", "dead"];

export async function render(root, session, caseNumber) {
  const results = el("div", { testid: "case-results" });
  const detail = el("div", { testid: "case-detail" });
  const form = searchForm(async (fields) => {
    try {
      const found = await api(`/admin/console/cases${query(fields)}`);
      results.replaceChildren(list(found.cases));
    } catch (e) {
      results.replaceChildren(failure(e));
    }
  });
  root.append(el("h2", {}, t("page.cases")), form, el("div", { class: "split" }, results, detail));
  form.requestSubmit();
  // A click on a result opens its timeline (#/cases/<number> links one).
  let stop = caseNumber ? open(detail, caseNumber) : null;
  results.addEventListener("click", (ev) => {
    const row = ev.target.closest("tr[data-case]");
    if (!row) return;
    for (const r of results.querySelectorAll("tr.selected")) r.classList.remove("selected");
    row.classList.add("selected");
    if (stop) stop();
    stop = open(detail, row.dataset.case);
  });
  return () => stop && stop();
}

function searchForm(search) {
  const input = (name, type = "text") => el("label", {}, t(name), el("input", { name, type, testid: `search-${name}` }));
  const state = el("select", { name: "state", testid: "search-state" }, STATES.map((s) => el("option", { value: s }, s ? t(s) : t("any"))));
  const form = el("form", { class: "filters", testid: "case-search" },
    input("case_number"), input("item"), input("bureau"), input("network"),
    el("label", {}, t("state"), state),
    input("since", "datetime-local"), input("until", "datetime-local"),
    el("button", { class: "primary", type: "submit", testid: "search-submit" }, t("search")),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = Object.fromEntries(new FormData(form));
    f.since = fromLocalInput(f.since);
    f.until = fromLocalInput(f.until);
    search(f);
  });
  return form;
}

function list(cases) {
  if (!cases.length) return el("p", { class: "muted", testid: "no-cases" }, t("no_cases"));
  const rows = cases.map((c) =>
    el("tr", { class: "clickable", "data-case": c.case_number, testid: `case-${c.case_number}` },
      el("td", {}, el("b", {}, c.case_number)),
      el("td", {}, c.item),
      el("td", {}, el("code", {}, c.bureau)),
      el("td", {}, badge(c.light)),
      el("td", {}, Object.entries(c.networks).map(([n, s]) => el("div", {}, `${n}: `, badge(s.state)))),
      el("td", {}, when(c.updated_at)),
    ),
  );
  return table(["case_number", "item", "bureau", "light", "networks", "updated"], rows, "cases-table");
}

/** Show one case's timeline and keep it fresh; returns the stop. */
function open(detail, caseNumber) {
  detail.replaceChildren(el("p", { class: "muted" }, t("loading")));
  let last = "";
  return poll(async () => {
    try {
      const c = await api(`/admin/console/cases/${encodeURIComponent(caseNumber)}`);
      // Redraw only what changed (a reader keeps their place).
      const now = JSON.stringify(c);
      if (now === last) return;
      last = now;
      detail.replaceChildren(timeline(c));
    } catch (e) {
      detail.replaceChildren(failure(e));
    }
  }, 4000);
}

function timeline(c) {
  const v = c.case;
  const nets = Object.entries(v.networks).map(([n, s]) =>
    el("tr", {},
      el("td", {}, n),
      el("td", {}, s.delivery ? badge(s.delivery.state) : "—"),
      el("td", { testid: `ministry-number-${n}` }, s.network_case_number || "—"),
      el("td", {}, s.stage_zh || s.stage || "—"),
      el("td", {}, s.certificate_number || (s.decision ? JSON.stringify(s.decision) : "—")),
    ),
  );
  const entries = c.timeline.map((e) =>
    el("li", { "data-kind": e.kind },
      el("time", {}, when(e.at)),
      badge(e.kind), " ",
      e.network ? el("b", {}, e.network, " ") : null,
      e.class ? el("code", {}, e.class, " ") : null,
      e.message,
    ),
  );
  return el("section", { testid: `timeline-${v.case_number}` },
    el("h3", {}, `${v.case_number} · ${v.item}`),
    el("p", {}, t("bureau"), ": ", el("code", {}, c.bureau), " · ", t("deadline"), ": ", badge(v.deadline.light), " ", when(v.deadline.deadline)),
    table(["network", "state", "ministry_case_number", "stage", "result"], nets, "case-networks"),
    el("h3", {}, t("timeline")),
    el("ol", { class: "timeline", testid: "timeline" }, entries),
  );
}
