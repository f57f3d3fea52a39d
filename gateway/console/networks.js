// Networks: per network health, breaker, alert and reason, queue depth,
// oldest pending age, delivery calls and failures in the last hour, the
// adapter version and its hot swaps; operators granted `resume` lift an
// alert here (POST /admin/networks/{network}/resume, audited).
import { t } from "./i18n.js";
import { api, el, table, badge, age, when, poll, confirmAction, failure } from "./util.js";

export async function render(root, session) {
  const status = el("p", { class: "muted", testid: "networks-updated" });
  const body = el("div");
  root.append(el("h2", {}, t("page.networks")), status, body);
  const refresh = async () => {
    let data;
    try {
      data = await api("/admin/console/networks");
    } catch (e) {
      body.replaceChildren(failure(e));
      return;
    }
    body.replaceChildren(draw(data.networks, session, refresh));
    status.textContent = `${t("refreshed")} ${when(new Date().toISOString())}`;
  };
  // Live: queue depth and alerts move while the page is open.
  return poll(refresh, 5000);
}

function draw(networks, session, refresh) {
  const rows = networks.map((n) =>
    el("tr", { testid: `network-${n.name}` },
      el("td", {}, el("b", {}, n.name)),
      el("td", {}, badge(n.health)),
      el("td", {}, badge(n.breaker)),
      el("td", {}, n.alert ? el("span", {}, badge("alert"), " ", n.alert.reason, el("br"), el("small", { class: "muted" }, when(n.alert.since))) : "—"),
      el("td", { class: "num", testid: `depth-${n.name}` }, n.pending),
      el("td", { class: "num" }, age(n.oldest_pending_s)),
      el("td", { class: "num" }, n.deliveries_last_hour),
      el("td", { class: "num" }, n.failures_last_hour),
      el("td", {}, adapter(n)),
      el("td", {}, resume(n, session, refresh)),
    ),
  );
  return table(
    ["network", "health", "breaker", "alert", "queue#", "oldest#", "delivered_1h#", "failed_1h#", "adapter", "action"],
    rows,
    "networks-table",
  );
}

function adapter(n) {
  if (!n.adapter) return el("span", { class: "error" }, t("no_adapter"));
  const head = el("span", {}, `${n.adapter.name} ${n.adapter.version} `, el("code", { title: n.adapter.sha256 }, n.adapter.sha256.slice(0, 12)));
  if (!n.swaps.length) return head;
  const items = n.swaps.map((s) =>
    el("li", {}, when(s.at), " · ", s.principal || "?", " · ",
      s.refused ? el("span", { class: "error" }, `${t("refused")}: ${s.refused}`) : el("code", {}, (s.adapter || "").slice(0, 12))),
  );
  return el("div", {}, head, el("details", {}, el("summary", {}, `${t("swaps")} (${n.swaps.length})`), el("ul", {}, items)));
}

function resume(n, session, refresh) {
  if (!n.alert) return "";
  if (!session.may.resume) return el("span", { class: "muted" }, t("read_only"));
  return el("button", {
    class: "primary",
    testid: `resume-${n.name}`,
    onclick: async (ev) => {
      if (!(await confirmAction(`${t("confirm_resume")} ${n.name}`))) return;
      ev.target.disabled = true;
      try {
        await api(`/admin/networks/${encodeURIComponent(n.name)}/resume`, { method: "POST" });
      } catch (e) {
        ev.target.replaceWith(failure(e));
        return;
      }
      await refresh();
    },
  }, t("resume"));
}
