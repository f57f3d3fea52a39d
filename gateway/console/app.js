// The console's shell: who is signed in (the client certificate's
// principal), the page links, the language toggle, and the page router
// (#/networks, #/cases, …). Each page module exports `render(root, session)`
// and may return a function that stops its refresh.
import { t, lang, setLang, translate } from "./i18n.js";
import { api, el, failure } from "./util.js";
import * as networks from "./networks.js";
import * as cases from "./cases.js";
import * as deadLetters from "./dead-letters.js";
import * as deadlines from "./deadlines.js";
import * as audit from "./audit.js";
import * as report from "./report.js";

const PAGES = [
  ["networks", networks],
  ["cases", cases],
  ["dead-letters", deadLetters],
  ["deadlines", deadlines],
  ["audit", audit],
  ["report", report],
];

let session = null;
let stop = null;

function current() {
  const [name, arg] = location.hash.replace(/^#\/?/, "").split("/");
  const page = PAGES.find(([n]) => n === name) ? name : "networks";
  return { page, arg: arg ? decodeURIComponent(arg) : undefined };
}

function drawNav() {
  const nav = document.getElementById("nav");
  const { page } = current();
  nav.replaceChildren(
    ...PAGES.map(([name]) =>
      el("a", { href: `#/${name}`, testid: `nav-${name}`, "aria-current": name === page ? "page" : null }, t(`page.${name}`)),
    ),
  );
}

async function show() {
  if (stop) { stop(); stop = null; }
  drawNav();
  const root = document.getElementById("page");
  const { page, arg } = current();
  root.replaceChildren();
  root.dataset.page = page;
  const module = PAGES.find(([n]) => n === page)[1];
  try {
    stop = (await module.render(root, session, arg)) || null;
  } catch (e) {
    root.append(failure(e));
  }
}

function drawChrome() {
  document.documentElement.lang = lang() === "zh" ? "zh-CN" : "en";
  document.getElementById("lang").textContent = lang() === "zh" ? "English" : "中文";
  translate(document.body);
  const role = t(`role.${session.role}`);
  document.getElementById("who").textContent = `${session.principal} · ${role}`;
}

async function main() {
  try {
    session = await api("/admin/console/session");
  } catch (e) {
    document.getElementById("page").append(failure(e));
    return;
  }
  document.body.dataset.role = session.role;
  drawChrome();
  document.getElementById("lang").addEventListener("click", () => {
    setLang(lang() === "zh" ? "en" : "zh");
    drawChrome();
    show();
  });
  window.addEventListener("hashchange", show);
  await show();
}

main();
