// Deadlines: open cases' lights (green / yellow / red) per item and bureau,
// groups with red cases first, and the red cases, the most overdue first.
import { t } from "./i18n.js";
import { api, el, table, badge, when, poll, failure } from "./util.js";

export async function render(root) {
  const body = el("div");
  root.append(el("h2", {}, t("page.deadlines")), body);
  return poll(async () => {
    let d;
    try {
      d = await api("/admin/console/deadlines");
    } catch (e) {
      body.replaceChildren(failure(e));
      return;
    }
    body.replaceChildren(draw(d));
  }, 15000);
}

function cell(n, colour) {
  return el("td", { class: `num ${n > 0 ? `cell-${colour}` : ""}` }, n);
}

function draw(d) {
  const groups = d.groups.map((g) =>
    el("tr", { testid: `deadline-${g.item}-${g.bureau}` },
      el("td", {}, g.item), el("td", {}, el("code", {}, g.bureau)),
      cell(g.red, "red"), cell(g.yellow, "yellow"), cell(g.green, "green")),
  );
  const red = d.red.map((c) =>
    el("tr", {},
      el("td", {}, el("a", { href: `#/cases/${encodeURIComponent(c.case_number)}` }, c.case_number)),
      el("td", {}, c.item), el("td", {}, el("code", {}, c.bureau)),
      el("td", {}, badge(c.light)), el("td", {}, when(c.deadline))),
  );
  return el("div", {},
    el("div", { class: "cards" },
      el("div", { class: "card" }, t("open_cases"), el("b", { testid: "open-cases" }, d.cases)),
      el("div", { class: "card" }, t("red"), el("b", {}, d.red.length)),
    ),
    d.truncated ? el("p", { class: "muted" }, t("truncated")) : null,
    d.groups.length ? table(["item", "bureau", "red#", "yellow#", "green#"], groups, "deadline-groups") : el("p", { class: "muted" }, t("none")),
    el("h3", {}, t("red_cases")),
    d.red.length ? table(["case_number", "item", "bureau", "light", "deadline"], red, "red-cases") : el("p", { class: "muted" }, t("none")),
  );
}
