// End-to-end test of Concord's web UI in Debian's Chromium, headless, driven by Playwright
// (`playwright-core`, which never downloads a browser of its own).
//
// Run by `crates/concord/tests/it/ui.rs`, which builds a node with the data these steps look
// for (ICS ATT&CK, `crates/concord/tests/fixtures/ui-bundle.json`, a partner), serves it and
// passes everything in the environment:
//
//   CONCORD_E2E_URL            base URL of `concord serve` (http://127.0.0.1:PORT)
//   CONCORD_E2E_ADMIN_TOKEN    the node's admin token
//   CONCORD_E2E_PARTNER        name of a partner that may read the collection `intel` only
//   CONCORD_E2E_PARTNER_KEY    that partner's API key
//   CONCORD_E2E_ARTIFACTS      directory for screenshots (<nn>-<step>-<lang>.png)
//   CONCORD_E2E_MISP           a MISP event file to upload
//   CONCORD_E2E_IOC            a plain IOC list to upload
//   CONCORD_E2E_NODE_MODULES   the node_modules holding playwright-core (default ./node_modules)
//   CONCORD_E2E_CHROMIUM       the browser (default /usr/bin/chromium)
//   CONCORD_E2E_OIDC_USER      a user the node's OpenID Provider (tests/oidc/provider.mjs) logs in
//                              as; the single sign-on step runs when it is set
//
// The browser starts with a fresh, empty profile (Playwright makes a temporary user-data-dir
// for every launch) and with flags that stop it from calling out to the network.
//
// Exit 0 when every check passed; otherwise exit 1 with the page and step that failed. Any
// console error, page error or failed request of the page's own assets fails the run too,
// except HTTP error statuses a step expects (a wrong token is a 401, a partner on an
// operator page a 403, a broken import a 400).

import { createRequire } from "node:module";
import { mkdirSync, writeFileSync, mkdtempSync, rmSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { tmpdir } from "node:os";

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === "") {
    console.error(`ui.mjs: ${name} is not set`);
    process.exit(2);
  }
  return v;
};
const BASE = env("CONCORD_E2E_URL").replace(/\/$/, "");
const ADMIN = env("CONCORD_E2E_ADMIN_TOKEN");
const PARTNER = env("CONCORD_E2E_PARTNER");
const PARTNER_KEY = env("CONCORD_E2E_PARTNER_KEY");
const ART = resolve(env("CONCORD_E2E_ARTIFACTS"));
const MISP = env("CONCORD_E2E_MISP");
const IOC = env("CONCORD_E2E_IOC");
const MODULES = resolve(env("CONCORD_E2E_NODE_MODULES", new URL("./node_modules", import.meta.url).pathname));
const CHROMIUM = env("CONCORD_E2E_CHROMIUM", "/usr/bin/chromium");
// The user the node's OpenID Provider logs in as (tests/oidc/provider.mjs); empty: no [oidc].
const OIDC_USER = process.env.CONCORD_E2E_OIDC_USER || "";

const require = createRequire(join(MODULES, "noop.js"));
const { chromium } = require("playwright-core");
// axe-core, evaluated in each page (through the DevTools protocol, so the page's strict
// Content-Security-Policy stays on: an injected <script> would be refused).
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

// Objects of crates/concord/tests/fixtures/ui-bundle.json and of ICS ATT&CK.
const INDICATOR = "indicator--7659ff90-84ec-473f-8ba2-e7d6d82b5324";
const ATTACK_PATTERN = "attack-pattern--5b7e3c1a-2d4f-4e6a-9b8c-7d1e2f3a4b5c";
const CAMPAIGN = "campaign--ea6f5d42-963f-45f3-a9e1-4e88a9fbc9d8";
const IDENTITY = "identity--920fc2fb-8890-40cc-966d-2be3537db1d7";
const ASSET = "x-mitre-asset--85f285f9-0a48-4998-921d-8a47d81c0e6d";
const EKANS = "malware--00e7d565-9883-4ee5-b642-8fd17fd6a3f5";

mkdirSync(ART, { recursive: true });
const scratch = mkdtempSync(join(tmpdir(), "concord-e2e-"));

// --- bookkeeping ----------------------------------------------------------------------------

let where = { page: "(start)", step: "(start)" };
let shotNo = 0;
let checks = 0;
const started = Date.now();
// Console messages, page errors and failed requests not yet explained by a step.
const problems = [];
// HTTP statuses the current step expects (Chromium logs each as a console error).
let expected = new Set();

class Failure extends Error {}

function fail(message) {
  throw new Failure(`[${where.page}] ${where.step}: ${message}`);
}

function check(cond, message) {
  checks++;
  if (!cond) fail(message);
}

function log(msg) {
  const s = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  console.log(`${s}s  ${msg}`);
}

function step(page, name) {
  where = { page, step: name };
  log(`${page}: ${name}`);
}

function watch(page) {
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const text = msg.text();
    const status = /status of (\d{3})/.exec(text);
    if (status && expected.has(Number(status[1]))) return;
    problems.push(`console error on ${page.url()}: ${text}`);
  });
  page.on("pageerror", (err) => problems.push(`page error on ${page.url()}: ${err.message}`));
  page.on("requestfailed", (req) => {
    // A load cut short by the next navigation (the test clicks on quickly) is not the page's
    // fault; HTTP error statuses are caught by the response handler below.
    if (req.failure()?.errorText === "net::ERR_ABORTED") return;
    if (req.url().startsWith(BASE)) {
      problems.push(`request failed: ${req.method()} ${req.url()}: ${req.failure()?.errorText}`);
    }
  });
  page.on("response", (resp) => {
    const req = resp.request();
    if (!resp.url().startsWith(BASE) || resp.status() < 400) return;
    if (req.resourceType() === "document" && expected.has(resp.status())) return;
    problems.push(`HTTP ${resp.status()} for ${req.resourceType()} ${resp.url()}`);
  });
}

/// Fails the current step on any console error, page error or failed request so far.
function clean() {
  checks++;
  if (problems.length) fail(`browser reported:\n  ${problems.splice(0).join("\n  ")}`);
}

/// Runs `fn` with HTTP `statuses` expected (their console errors are not failures).
async function expecting(statuses, fn) {
  expected = new Set(statuses);
  try {
    return await fn();
  } finally {
    expected = new Set();
  }
}

async function lang(page) {
  return page.evaluate(() => document.documentElement.lang || "none");
}

async function shot(page, name) {
  shotNo++;
  const file = join(ART, `${String(shotNo).padStart(2, "0")}-${name}-${await lang(page)}.png`);
  await page.screenshot({ path: file, fullPage: true });
}

async function go(page, path, status = 200) {
  const resp = await expecting(status >= 400 ? [status] : [], () => page.goto(BASE + path));
  check(resp, `no response for ${path}`);
  check(resp.status() === status, `GET ${path}: HTTP ${resp.status()}, expected ${status}`);
  await page.waitForLoadState("load");
  return resp;
}

/// Clicks `selector` and waits for the page it leads to.
async function submit(page, selector, statuses = []) {
  await expecting(statuses, async () => {
    await Promise.all([page.waitForNavigation(), page.click(selector)]);
    await page.waitForLoadState("load");
  });
}

async function text(page, selector) {
  const el = await page.$(selector);
  check(el, `${selector} missing`);
  return (await el.innerText()).trim();
}

async function count(page, selector) {
  return (await page.$$(selector)).length;
}

/// Checks every page should pass: labelled controls, TLP badges readable and untranslated,
/// nothing reported by the browser.
async function basics(page) {
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input, select, textarea")]
      .filter((el) => el.type !== "hidden" && el.getClientRects().length > 0)
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label") &&
        !el.getAttribute("aria-labelledby"))
      .map((el) => el.outerHTML.slice(0, 100)),
  );
  check(unlabelled.length === 0, `controls without a label: ${unlabelled.join(", ")}`);
  const badges = await page.evaluate(() => {
    const rgb = (s) => (s.match(/[\d.]+/g) || []).slice(0, 3).map(Number);
    const lum = ([r, g, b]) => {
      const ch = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * ch(r) + 0.7152 * ch(g) + 0.0722 * ch(b);
    };
    return [...document.querySelectorAll(".tlp")].map((el) => {
      const cs = getComputedStyle(el);
      const a = lum(rgb(cs.color)), b = lum(rgb(cs.backgroundColor));
      return {
        text: el.textContent.trim(),
        color: cs.color,
        background: cs.backgroundColor,
        ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05),
      };
    });
  });
  for (const b of badges) {
    check(/^TLP:(CLEAR|GREEN|AMBER(\+STRICT)?|RED)$/.test(b.text), `TLP badge reads ${JSON.stringify(b.text)}`);
    check(b.ratio >= 4.5, `${b.text}: contrast ${b.ratio.toFixed(2)} (${b.color} on ${b.background}) < 4.5`);
  }
  clean();
  return badges;
}

async function switchLanguage(page, tag) {
  await page.selectOption("#lang-select", tag);
  await submit(page, "#lang-apply");
  const html = await page.evaluate(() => ({ lang: document.documentElement.lang, dir: document.documentElement.dir }));
  check(html.lang === tag, `after switching to ${tag}, <html lang="${html.lang}">`);
  return html;
}

async function filterObjects(page, filters) {
  await page.fill("#f-q", filters.q ?? "");
  await page.selectOption("#f-type", filters.type ?? "");
  await page.selectOption("#f-marking", filters.marking ?? "");
  await submit(page, "#filter-apply");
  const rows = await page.$$eval("#objects tbody tr", (trs) =>
    trs.map((tr) => ({
      name: tr.cells[0].innerText.trim(),
      type: tr.cells[1].innerText.trim(),
      tlp: tr.cells[2].innerText.trim(),
      href: tr.cells[0].querySelector("a").getAttribute("href"),
    })),
  );
  const shown = await text(page, "#result-count");
  // English plurals: "One object", "N objects" (the searches run in English).
  const n = shown === "One object" ? 1 : Number((shown.match(/\d+/) || ["NaN"])[0]);
  return { rows, n, shown };
}

/// Opens the object named `name` in collection `coll` through the text filter.
async function openByName(page, coll, name) {
  await go(page, `/ui/c/${coll}`);
  const { rows } = await filterObjects(page, { q: name });
  const row = rows.find((r) => r.name === name);
  check(row, `no row named ${name} after filtering by its name (rows: ${rows.map((r) => r.name).join(", ")})`);
  await go(page, row.href);
  // The heading is the name, or its translation into the page's language (language-content).
  const heading = await text(page, "#object-name");
  const translated = (await page.locator('.translated[data-field="name"]').count())
    ? await text(page, '.translated[data-field="name"]')
    : null;
  check(heading === name || (translated !== null && heading === translated),
    `object page shows ${heading}`);
}

// --- every page, every language, every width (issue 25, items 1, 6 and 7) -------------------

// THE list of pages that the overflow check, the accessibility check (axe-core) and the
// screenshots walk: one line per page. `anonymous` pages are seen logged out; `status` is the
// HTTP status expected; `ready` a selector to wait for.
const PAGES = [
  { name: "login", path: "/ui/login", anonymous: true },
  { name: "dashboard", path: "/ui/" },
  { name: "collections", path: "/ui/collections" },
  { name: "objects", path: "/ui/c/intel" },
  { name: "object", path: `/ui/c/intel/o/${INDICATOR}` },
  { name: "object-markdown", path: `/ui/c/intel/o/${ATTACK_PATTERN}` },
  { name: "object-attack", path: `/ui/c/ics/o/${EKANS}` },
  { name: "as-partner", path: `/ui/c/intel/o/${IDENTITY}?as=${PARTNER}` },
  { name: "graph", path: `/ui/c/ics/o/${ASSET}/graph`, ready: "svg#graph[data-ready]" },
  { name: "import", path: "/ui/import" },
  { name: "pattern", path: "/ui/pattern" },
  { name: "incidents", path: "/ui/incidents" },
  { name: "approvals", path: "/ui/approvals" },
  { name: "partners", path: "/ui/operator/partners" },
  { name: "partner", path: `/ui/operator/partners/${encodeURIComponent(PARTNER)}` },
  { name: "groups", path: "/ui/operator/groups" },
  { name: "peers", path: "/ui/operator/peers" },
  { name: "policy", path: "/ui/operator/policy" },
  { name: "audit", path: "/ui/operator/audit" },
  { name: "not-found", path: `/ui/c/intel/o/${INDICATOR.replace(/[0-9a-f]{12}$/, "000000000000")}`, status: 404 },
];
const LANGS = ["en", "zh-CN", "ar"];

// The UI's English sentences (issue 25: every text translated): the literal parts of each
// message of en.ftl with a space and at least 10 characters, placeables and `backquoted`
// tokens cut out, less those the Chinese or Arabic file also holds (names of standards and
// formats, kept on purpose). None may be left on a Chinese or Arabic page, in its text
// (isolated <bdi> runs too: an English sentence wrapped as a left-to-right token is still
// English) or in an aria-label, title or placeholder; code, preformatted JSON and the
// producer's Markdown descriptions are data and are not read.
const LOCALES = new URL("../../crates/concord-web/locales/", import.meta.url);
const ftl = (file) => readFileSync(new URL(file, LOCALES), "utf8");
const OTHER_FTL = ftl("zh-CN.ftl") + ftl("ar.ftl");
const ENGLISH_PHRASES = [...new Set(ftl("en.ftl").split("\n")
  .map((line) => /^[a-z0-9-]+ = (.*)$/.exec(line))
  .filter(Boolean)
  .flatMap((m) => m[1].split(/\{[^}]*\}|`[^`]*`/))
  .map((f) => f.trim().replace(/^[\s.,;:()]+|[\s.,;:()]+$/g, ""))
  .filter((f) => f.includes(" ") && f.length >= 10 && !OTHER_FTL.includes(f)))];

/// The English phrases of the UI left on the page (see ENGLISH_PHRASES).
async function englishLeft(page) {
  return page.evaluate((phrases) => {
    const body = document.body.cloneNode(true);
    body.querySelectorAll("code, pre, kbd, samp, script, style, textarea, .md").forEach((e) => e.remove());
    const attrs = [...body.querySelectorAll("[aria-label], [title], [placeholder]")]
      .flatMap((e) => ["aria-label", "title", "placeholder"].map((a) => e.getAttribute(a) || ""));
    const text = [body.textContent, ...attrs].join(" \n ").replace(/\s+/g, " ");
    return phrases.filter((p) => text.includes(p));
  }, ENGLISH_PHRASES);
}
const WIDTHS = [["desktop", 1400], ["phone", 390]];
// Screenshots: every page in every language at both widths, as much as the window shows
// (the committed ones under docs/ui/ are the desktop ones).
const PAGE_SHOTS = join(ART, "pages");

/// What stops a page from fitting the window: the document's scroll width, and the widest
/// elements that stick out past its right (or, right to left, its left) edge.
async function overflow(page) {
  return page.evaluate(() => {
    const se = document.scrollingElement;
    const vw = innerWidth;
    const out = [];
    if (se.scrollWidth > vw) {
      for (const el of document.querySelectorAll("body *")) {
        const r = el.getBoundingClientRect();
        if (r.width && (r.right > vw + 1 || r.left < -1) && !el.closest(".table-scroll, pre, .skip")) {
          out.push(`${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}${el.className && typeof el.className === "string" ? "." + el.className.split(" ").join(".") : ""} [${Math.round(r.left)}, ${Math.round(r.right)}]`);
        }
        if (out.length >= 6) break;
      }
    }
    return { scrollWidth: se.scrollWidth, innerWidth: vw, culprits: out };
  });
}

/// axe-core's serious and critical violations on the page (WCAG 2.x A and AA rules and
/// axe's best practices).
async function axeViolations(page) {
  await page.evaluate(AXE);
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 4).map((n) => n.target.join(" ")) }));
  });
  return found.filter((v) => v.impact === "serious" || v.impact === "critical");
}

/// From the top of the page, Tab through the first `max` stops: each focused element must
/// show where the focus is (an outline), and focus must never land on nothing.
async function focusVisible(page, max = 40) {
  await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
  const bad = [];
  let stops = 0;
  for (let i = 0; i < max; i++) {
    await page.keyboard.press("Tab");
    const f = await page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return null;
      const cs = getComputedStyle(el);
      const visible = (cs.outlineStyle !== "none" && parseFloat(cs.outlineWidth) > 0) || cs.boxShadow !== "none";
      return { what: `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""} ${(el.textContent || "").trim().slice(0, 30)}`, visible };
    });
    if (!f) break;
    stops++;
    if (!f.visible) bad.push(f.what);
  }
  return { stops, bad };
}

async function walkPages(browser) {
  mkdirSync(PAGE_SHOTS, { recursive: true });
  // Every page is checked even after one fails: the failures are listed together at the end.
  const failures = [];
  const soft = (cond, message) => {
    checks++;
    if (!cond) failures.push(`[${where.page}] ${where.step}: ${message}`);
  };
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 }, locale: "en-US" });
  const page = await ctx.newPage();
  watch(page);
  await login(page, ADMIN);
  const anonCtx = await browser.newContext({ viewport: { width: 1400, height: 900 }, locale: "en-US" });
  const anon = await anonCtx.newPage();
  watch(anon);
  let shots = 0;
  for (const tag of LANGS) {
    for (const p of [page, anon]) {
      await go(p, `/ui/lang?set=${encodeURIComponent(tag)}&back=/ui/login`);
    }
    for (const [label, width] of WIDTHS) {
      for (const p of [page, anon]) await p.setViewportSize({ width, height: 900 });
      for (const entry of PAGES) {
        const pg = entry.anonymous ? anon : page;
        step(`page ${entry.name}`, `${tag}, ${width} px`);
        try {
          await go(pg, entry.path, entry.status ?? 200);
          if (entry.ready) await pg.waitForSelector(entry.ready, { timeout: 30000 });
          soft((await lang(pg)) === tag, `<html lang="${await lang(pg)}">, expected ${tag}`);
          const o = await overflow(pg);
          soft(o.scrollWidth <= o.innerWidth, `wider than the window: scrollWidth ${o.scrollWidth} > ${o.innerWidth}; sticking out: ${o.culprits.join(", ")}`);
          // Photographed first, at the top, before the Tab walk scrolls and focuses.
          await pg.screenshot({ path: join(PAGE_SHOTS, `${entry.name}-${tag}-${label}.png`) });
          shots++;
          if (label === "desktop" && tag !== "en") {
            const left = await englishLeft(pg);
            soft(left.length === 0, `English left in ${tag}: ${left.slice(0, 8).map((x) => JSON.stringify(x)).join(", ")}`);
          }
          if (label === "desktop") {
            const v = await axeViolations(pg);
            soft(v.length === 0, `axe-core: ${v.map((x) => `${x.impact} ${x.id} (${x.help}) at ${x.nodes.join(" | ")}`).join("; ")}`);
            const f = await focusVisible(pg);
            soft(f.stops > 0 && f.bad.length === 0, `focus not visible on: ${f.bad.join(", ")} (${f.stops} Tab stops)`);
          }
          soft(problems.length === 0, `browser reported:\n  ${problems.splice(0).join("\n  ")}`);
        } catch (e) {
          failures.push(e instanceof Failure ? e.message : `[${where.page}] ${where.step}: ${e.stack || e}`);
        }
      }
    }
  }
  await ctx.close();
  await anonCtx.close();
  if (failures.length) fail(`${failures.length} problems over the pages:\n  ${failures.join("\n  ")}`);
  log(`${PAGES.length} pages × ${LANGS.length} languages × ${WIDTHS.length} widths: no overflow, no serious or critical axe-core violation, focus visible, none of ${ENGLISH_PHRASES.length} English phrases in zh or ar; ${shots} screenshots in ${PAGE_SHOTS}`);
}

// --- dashboard and graph (issue 25, items 3 and 5) -------------------------------------------

/// The home page: its sections, each chart an SVG drawn by the server with a table as its
/// text alternative, no inline style; a partner's without the operator's sections.
async function dashboardChecks(page, who) {
  step("dashboard", `the home page of the ${who}`);
  check(await page.$("header nav a[href='/ui/'][aria-current='page']"), "Home is not the current navigation entry");
  for (const id of ["new", "sightings-received", "this-week"]) {
    check(await page.$(`#${id}`), `no #${id} on the dashboard`);
  }
  const admin = who === "admin";
  check(!!(await page.$("#waiting")) === admin && !!(await page.$("#sync-health")) === admin,
    `requests and sync health are the admin's only (${who})`);
  check((await count(page, "#new-objects tbody tr")) > 0, "nothing new on a first visit after the imports");
  const charts = await page.$$eval("figure.chart", (fs) => fs.map((f) => ({
    id: f.id,
    svg: !!f.querySelector("svg.bars[role='img'][aria-label]"),
    bars: f.querySelectorAll("svg.bars rect.bar").length,
    table: !!f.querySelector(`details table#${f.id}-table`),
    rows: f.querySelectorAll(`table#${f.id}-table tbody tr`).length,
  })));
  check(charts.length >= 1, "no chart on the dashboard");
  for (const c of charts) {
    check(c.svg && c.table && c.rows > 0, `chart ${JSON.stringify(c)}: an SVG and its table`);
  }
  if (admin) {
    // The sighting of the fixture's indicator, received on import today.
    const s = charts.find((c) => c.id === "sightings-by-indicator");
    check(s && s.bars > 0, `no bars in the sightings chart: ${JSON.stringify(charts)}`);
  }
  const inline = await page.evaluate(() => document.querySelectorAll("[style]").length);
  check(inline === 0, `${inline} elements with a style attribute`);
  await page.click("figure.chart details summary");
  check(await page.$eval("figure.chart details", (d) => d.open), "the chart's table does not open");
  await shot(page, `dashboard-${who}`);
  await basics(page);
}

/// The graph reads: no two node labels overlap, every node lies inside the viewBox, edges
/// carry labels, the legend shows without scrolling, groups expand from the keyboard.
async function graphChecks(page) {
  step(where.page, "labels, bounds, edge labels, legend");
  await page.evaluate(() => window.scrollTo(0, 0));
  const g = await page.evaluate(() => {
    const svg = document.getElementById("graph");
    const vb = svg.viewBox.baseVal;
    const nodes = [...svg.querySelectorAll("a.node")];
    const boxes = nodes.map((a) => a.querySelector("text").getBoundingClientRect())
      .map((r) => ({ l: r.left, r: r.right, t: r.top, b: r.bottom }));
    const overlaps = [];
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i], b = boxes[j];
        if (a.l < b.r - 0.5 && b.l < a.r - 0.5 && a.t < b.b - 0.5 && b.t < a.b - 0.5) {
          overlaps.push([nodes[i].dataset.id, nodes[j].dataset.id]);
        }
      }
    }
    const outside = nodes.filter((a) => {
      const c = a.querySelector("circle").getBBox();
      const t = a.querySelector("text").getBBox();
      return c.x < vb.x || c.y < vb.y || c.x + c.width > vb.x + vb.width || c.y + c.height > vb.y + vb.height ||
        t.x + t.width > vb.x + vb.width;
    }).map((a) => a.dataset.id);
    const legend = document.getElementById("graph-legend").getBoundingClientRect();
    const top = svg.getBoundingClientRect();
    return {
      n: nodes.length, overlaps, outside,
      edges: svg.querySelectorAll("path.edge").length,
      edgeLabels: [...svg.querySelectorAll("text.edge-label")].map((t) => t.textContent),
      groups: [...svg.querySelectorAll("a.node.group")].map((a) => a.getAttribute("href")),
      legendBottom: legend.bottom, svgTop: top.top, vh: innerHeight,
      minFont: Math.min(...nodes.map((a) => a.querySelector("text").getBoundingClientRect().height)),
      // Each label's font size on screen: its computed size (user units) times the scale of
      // its CTM (the viewBox's and the pan/zoom transform's), and the smallest of them.
      labelPx: [...svg.querySelectorAll("text.label, text.edge-label")].map((t) => ({
        text: t.textContent,
        px: parseFloat(getComputedStyle(t).fontSize) * Math.hypot(t.getScreenCTM().a, t.getScreenCTM().b),
      })).sort((a, b) => a.px - b.px).slice(0, 3),
      pageOverflow: document.scrollingElement.scrollWidth - innerWidth,
    };
  });
  check(g.labelPx.length > 0 && g.labelPx[0].px >= 11 - 0.01,
    `graph labels drawn under 11 px: ${JSON.stringify(g.labelPx)} (${g.n} nodes)`);
  check(g.pageOverflow <= 0, `the graph widens the page by ${g.pageOverflow} px (it must scroll in its box)`);
  check(g.overlaps.length === 0, `${g.overlaps.length} pairs of node labels overlap: ${JSON.stringify(g.overlaps.slice(0, 5))}`);
  check(g.outside.length === 0, `nodes outside the viewBox: ${g.outside.slice(0, 5)}`);
  check(g.edges > 0 && g.edgeLabels.length > 0 && g.edgeLabels.every((t) => t.trim().length > 0), `edge labels: ${g.edgeLabels.slice(0, 5)}`);
  check(g.legendBottom <= g.vh && g.svgTop >= 0 && g.svgTop < g.vh, `legend or graph below the fold: ${JSON.stringify(g)}`);
  check(g.groups.length > 0, "no fan-out of ATT&CK for ICS is grouped");
  // A group expands with the keyboard: Tab to it, Enter.
  const before = g.n;
  await page.focus("svg#graph a.node.group");
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  await page.waitForSelector("svg#graph[data-ready]");
  check(page.url().includes("expand="), `Enter on a group led to ${page.url()}`);
  const after = await count(page, "svg#graph a.node");
  check(after > before, `expanding a group drew ${after} nodes (was ${before})`);
  const overlapsAfter = await page.evaluate(() => {
    const boxes = [...document.querySelectorAll("svg#graph a.node text")].map((t) => t.getBoundingClientRect());
    let n = 0;
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i], b = boxes[j];
        if (a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5) n++;
      }
    }
    return n;
  });
  check(overlapsAfter === 0, `${overlapsAfter} label overlaps after expanding a group`);
  await page.goBack();
  await page.waitForSelector("svg#graph[data-ready]");
  clean();
}

// --- the run --------------------------------------------------------------------------------

async function login(page, token) {
  await go(page, "/ui/login");
  await page.fill("#token", token);
  await submit(page, "#login-submit");
}

async function main() {
  let stepsFailed = null;
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  try {
    const admin = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-US" });
    const page = await admin.newPage();
    watch(page);

    // Login.
    step("login", "a wrong token is refused");
    await go(page, "/ui/");
    check(page.url().startsWith(BASE + "/ui/login"), `an anonymous visit of /ui/ lands on ${page.url()}`);
    await basics(page);
    await page.fill("#token", "not-the-token");
    await submit(page, "#login-submit", [401]);
    check(await page.$("#login-error"), "no #login-error after a wrong token");
    await shot(page, "login-refused");
    await basics(page);

    step("login", "the admin token opens the collections");
    await page.fill("#token", ADMIN);
    await submit(page, "#login-submit");
    check(new URL(page.url()).pathname === "/ui/", `after login at ${page.url()}`);
    check(await page.$("#dashboard"), "no #dashboard after login");
    await dashboardChecks(page, "admin");
    await go(page, "/ui/collections");
    check(await page.$("#collections"), "no #collections at /ui/collections");
    const colls = await page.$$eval("#collections tbody tr td:first-child a", (as) => as.map((a) => a.textContent.trim()));
    check(colls.includes("intel") && colls.includes("ics"), `collections listed: ${colls}`);
    await shot(page, "collections");
    await basics(page);

    // Keyboard: from the top, Tab reaches the skip link, then the navigation links in order.
    step("collections", "keyboard navigation");
    await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
    await page.keyboard.press("Tab");
    let focused = await page.evaluate(() => document.activeElement.className + "|" + document.activeElement.getAttribute("href"));
    check(focused === "skip|#main", `first Tab focuses ${focused}, not the skip link`);
    const skipBox = await page.evaluate(() => {
      const r = document.activeElement.getBoundingClientRect();
      return { x: r.x, y: r.y, w: r.width, vw: innerWidth };
    });
    check(skipBox.x >= 0 && skipBox.x + skipBox.w <= skipBox.vw, `focused skip link is off screen: ${JSON.stringify(skipBox)}`);
    const navHrefs = await page.$$eval("header nav a", (as) => as.map((a) => a.getAttribute("href")));
    check(navHrefs.length >= 8, `admin navigation has ${navHrefs.length} links`);
    const reached = [];
    for (let i = 0; i < navHrefs.length + 2; i++) {
      await page.keyboard.press("Tab");
      reached.push(await page.evaluate(() => document.activeElement.closest("header nav") ? document.activeElement.getAttribute("href") : null));
    }
    const navOrder = reached.filter((h) => h !== null);
    check(JSON.stringify(navOrder) === JSON.stringify(navHrefs), `Tab order through the navigation: ${navOrder}, links: ${navHrefs}`);
    await go(page, "/ui/");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Enter");
    check(await page.evaluate(() => document.activeElement.id === "main"), "the skip link does not move focus to <main>");

    // Search.
    step("search", "text in English");
    await go(page, "/ui/c/intel");
    let r = await filterObjects(page, { q: "dropper" });
    check(r.n === r.rows.length && r.n >= 2, `"dropper": ${r.shown}, ${r.rows.length} rows`);
    check(r.rows.some((x) => x.name === "Night Harbour dropper hash" && x.type === "indicator"), `"dropper" rows: ${JSON.stringify(r.rows)}`);
    await shot(page, "search-english");
    await basics(page);

    step("search", "text in Chinese");
    r = await filterObjects(page, { q: "蠕虫" });
    check(r.n === 1 && r.rows[0]?.name === "暗影蠕虫", `"蠕虫": ${r.shown}: ${JSON.stringify(r.rows)}`);
    await shot(page, "search-chinese");
    await basics(page);

    step("search", "text in Arabic");
    r = await filterObjects(page, { q: "الطاقة" });
    check(r.n === 1 && r.rows[0]?.name === "عاصفة الصحراء", `"الطاقة": ${r.shown}: ${JSON.stringify(r.rows)}`);
    check(r.rows[0].tlp === "TLP:AMBER", `the Arabic intrusion set's TLP cell reads ${r.rows[0].tlp}`);
    await shot(page, "search-arabic");
    await basics(page);

    step("search", "by type");
    r = await filterObjects(page, { type: "indicator" });
    check(r.n === 1 && r.rows.every((x) => x.type === "indicator"), `type=indicator: ${r.shown}: ${JSON.stringify(r.rows)}`);
    r = await filterObjects(page, { type: "relationship" });
    check(r.n === 4, `type=relationship: ${r.shown}`);
    await basics(page);

    step("search", "by TLP marking");
    r = await filterObjects(page, { marking: "TLP:AMBER" });
    check(r.n === 2 && r.rows.every((x) => x.tlp === "TLP:AMBER"), `marking=TLP:AMBER: ${r.shown}: ${JSON.stringify(r.rows)}`);
    r = await filterObjects(page, { marking: "TLP:GREEN", type: "malware" });
    check(r.n === 1 && r.rows[0].name === "暗影蠕虫" && r.rows[0].tlp === "TLP:GREEN", `GREEN malware: ${JSON.stringify(r.rows)}`);
    await shot(page, "search-tlp");
    await basics(page);

    // Object page.
    step("object", "versions, markings, references, sightings of the indicator");
    await openByName(page, "intel", "Night Harbour dropper hash");
    check((await count(page, "#versions tbody tr")) === 2, `#versions has ${await count(page, "#versions tbody tr")} rows`);
    check(await page.$("#versions a"), "the older version is not a link");
    check((await text(page, "#markings")).includes("TLP:GREEN"), `#markings: ${await text(page, "#markings")}`);
    check(await page.$("#object-id"), "no #object-id");
    check((await page.$$eval(".meta .tlp", (b) => b.map((x) => x.textContent.trim()))).includes("TLP:GREEN"), "no TLP:GREEN badge");
    // Markings are listed in their own section, not as references.
    const marks = await text(page, "#markings");
    check(marks.includes("TLP:GREEN"), `#markings: ${marks}`);
    // References name the object at the other end, grouped by relationship type: the
    // identity that sighted the indicator, the malware it indicates.
    const groups = async (sel) => page.$$eval(`${sel} .ref-group`, (gs) => Object.fromEntries(gs.map((g) =>
      [g.dataset.label, [...g.querySelectorAll(".ref-list > li > a:first-child bdi")].map((b) => b.textContent.trim())])));
    const inn = await groups("#refs-in");
    check(JSON.stringify(inn.sighted) === JSON.stringify(["Harbour City CERT"]), `#refs-in groups: ${JSON.stringify(inn)}`);
    check(!("sighting_of_ref" in inn) && !("target_ref" in inn), `#refs-in lists the sighting or relationship objects themselves: ${JSON.stringify(inn)}`);
    const out = await groups("#refs-out");
    check(JSON.stringify(out.indicates) === JSON.stringify(["暗影蠕虫"]), `#refs-out groups: ${JSON.stringify(out)}`);
    check((await text(page, "#refs-out .ref-group[data-label=indicates] h3")).includes("indicates"), "the group heading does not name the relationship");
    check((await count(page, "#sightings tbody tr")) === 1, "#sightings should have one row");
    const sightingRow = await text(page, "#sightings tbody tr");
    check(sightingRow.includes("3") && sightingRow.includes("Harbour City CERT"), `sighting row: ${sightingRow}`);
    await shot(page, "object-indicator");
    await basics(page);
    step("object", "the older version");
    await Promise.all([page.waitForNavigation(), page.click("#versions a")]);
    check(page.url().includes("version="), `older version link led to ${page.url()}`);
    check(!(await page.$eval("#raw-json", (e) => e.textContent)).includes("confidence"), "the older version shows the newer body");
    await basics(page);

    step("object", "as partner: a TLP:AMBER object is withheld");
    await openByName(page, "intel", "عاصفة الصحراء");
    await page.selectOption("select#as", PARTNER);
    await submit(page, "#as-apply");
    check(await page.$("#egress-decision.decision-withheld"), `decision: ${await text(page, "#egress-decision")}`);
    const steps = await page.$$eval("#egress-steps tbody tr [data-rule]", (tds) => tds.map((t) => t.textContent.trim()));
    check(steps.includes("tlp"), `#egress-steps rules: ${steps}`);
    await shot(page, "as-partner-withheld");
    await basics(page);

    step("object", "as partner: an e-mail address is rewritten");
    await openByName(page, "intel", "Harbour City CERT");
    await page.selectOption("select#as", PARTNER);
    await submit(page, "#as-apply");
    check(await page.$("#egress-decision.decision-rewritten"), `decision: ${await text(page, "#egress-decision")}`);
    const rules = await page.$$eval("#egress-steps tbody tr [data-rule]", (tds) => tds.map((t) => t.textContent.trim()));
    check(rules.includes("personal-data"), `#egress-steps rules: ${rules}`);
    const copy = await text(page, "#egress-copy");
    check(!copy.includes("duty-officer@harbour-cert.example.org"), "the partner's copy still holds the e-mail address");
    check(copy.includes("Harbour City CERT"), "the partner's copy lost the name");
    await shot(page, "as-partner-rewritten");
    await basics(page);

    // Issue 25, item 2: Markdown rendered safely, citations as footnotes, references as links.
    step("object", "Markdown, citations and external references");
    await go(page, `/ui/c/intel/o/${ATTACK_PATTERN}`);
    check((await page.title()) !== "pwned", "a script in the description ran");
    const md = await page.$eval("#properties .md", (d) => ({
      strong: [...d.querySelectorAll("strong")].map((x) => x.textContent),
      code: [...d.querySelectorAll("code")].map((x) => x.textContent),
      links: [...d.querySelectorAll("a")].map((a) => [a.getAttribute("href"), a.textContent]),
      unsafe: d.querySelectorAll("script, img, [onerror], [style]").length,
      text: d.textContent,
    }));
    check(md.strong.includes("spear-phishing") && md.code.includes("loader.dll"), `Markdown not rendered: ${JSON.stringify(md)}`);
    // The javascript: link keeps its text and loses its href.
    check(md.unsafe === 0 && md.links.every(([h]) => h === null || /^(https:|#xref-)/.test(h)), `unsafe markup kept: ${JSON.stringify(md)}`);
    check(md.links.some(([h, t]) => h === null && t === "a trap"), `the javascript: link: ${JSON.stringify(md.links)}`);
    check(!md.text.includes("(Citation:") && !md.text.includes("**"), `raw Markdown or citations left: ${md.text}`);
    // Two sources cited, numbered in order, each linking to its entry; cited twice, one number.
    const cites = md.links.filter(([h]) => h?.startsWith("#xref-"));
    check(JSON.stringify(cites) === JSON.stringify([["#xref-2", "[1]"], ["#xref-3", "[2]"], ["#xref-2", "[1]"]]), `citations: ${JSON.stringify(cites)}`);
    const xrefs = await page.$$eval("#external-refs > li", (lis) => lis.map((li) => ({
      id: li.id, cite: li.dataset.cite ?? null, href: li.querySelector("a.url")?.getAttribute("href") ?? null,
      text: li.querySelector("code.url")?.textContent ?? null, extId: li.querySelector("code.copy")?.textContent ?? null,
    })));
    check(xrefs.length === 4 && xrefs[0].extId === "T0865" && xrefs[0].href === "https://attack.mitre.org/techniques/T0865", `external references: ${JSON.stringify(xrefs)}`);
    check(xrefs[1].cite === "1" && xrefs[2].cite === "2", `footnote numbers: ${JSON.stringify(xrefs)}`);
    check(xrefs[3].href === null && xrefs[3].text === "javascript:alert(1)", `a javascript: URL is a link: ${JSON.stringify(xrefs[3])}`);
    await Promise.all([page.waitForURL(/#xref-2$/), page.click("sup.cite a[href='#xref-2']")]);
    check(await page.$eval("#xref-2", (li) => li.matches(":target")), "the footnote link does not reach its reference");
    // Issue 25, item 4: an unmarked object shows the collection's default TLP, said so.
    const tlp = await text(page, "#object-tlp");
    check(tlp === "TLP:AMBER" && (await page.$("#tlp-default")), `unmarked object's badge: ${tlp}`);
    check(await page.$eval("#object-id", (c) => getComputedStyle(c).userSelect === "all"), "the object id is not selectable in one click");
    await basics(page);

    step("object", "references name the object at the other end, grouped");
    await go(page, `/ui/c/intel/o/${CAMPAIGN}`);
    const campaignOut = await page.$$eval("#refs-out .ref-group[data-label=uses] .ref-list > li > a:first-child", (as) => as.map((a) => a.textContent.trim()));
    check(JSON.stringify(campaignOut.sort()) === JSON.stringify(["Harbour spear-phishing attachment", "暗影蠕虫"].sort()), `the campaign uses: ${campaignOut}`);
    check((await count(page, "#refs-out .ref-group[data-label=uses]")) === 1, "two relationships of one type are not one group");

    step("object", "an error page keeps the header and the navigation");
    await go(page, "/ui/c/intel/o/indicator--00000000-0000-4000-8000-000000000000", 404);
    check((await count(page, "header nav a")) >= 8 && (await page.$("#lang-select")), "the 404 page has no navigation or language switch");
    check((await text(page, "#error-message")).includes("indicator--00000000"), `404 message: ${await text(page, "#error-message")}`);
    clean();

    // language-content, in Chinese.
    step("language-content", "switch to Chinese");
    await openByName(page, "intel", "Operation Night Harbour");
    check(!(await page.$(".translated")), "a translation is shown in English");
    const zh = await switchLanguage(page, "zh-CN");
    check(zh.dir === "ltr", `Chinese page dir=${zh.dir}`);
    step("language-content", "translated fields with the original one click away");
    const translated = await page.$$eval(".translated", (ds) => ds.map((d) => [d.dataset.field, d.innerText.trim()]));
    const byField = Object.fromEntries(translated);
    check(byField.name === "夜港行动", `translated name: ${JSON.stringify(translated)}`);
    check((byField.description || "").includes("鱼叉式网络钓鱼"), `translated description: ${JSON.stringify(translated)}`);
    const orig = page.locator("details.original").first();
    check(!(await orig.evaluate((d) => d.open)), "the original is open before a click");
    await orig.locator("summary").click();
    check(await orig.evaluate((d) => d.open), "one click does not open the original");
    const originalText = (await orig.innerText()).trim();
    check(originalText.includes("Operation Night Harbour") || originalText.includes("spear-phishing"), `original: ${originalText}`);
    await shot(page, "translated");
    await basics(page);

    // Graph.
    step("graph", "laid out to read");
    await go(page, "/ui/c/ics/o/x-mitre-asset--85f285f9-0a48-4998-921d-8a47d81c0e6d/graph?depth=2");
    await page.waitForSelector("svg#graph[data-ready]", { timeout: 30000 });
    const ready = Number(await page.getAttribute("svg#graph", "data-ready"));
    const drawn = await count(page, "svg#graph a.node");
    check(ready >= 20 && ready <= 200 && drawn === ready, `data-ready=${ready}, a.node=${drawn}`);
    const hrefs = await page.$$eval("svg#graph a.node:not(.group)", (as) => as.map((a) => a.getAttribute("href")));
    check(hrefs.every((h) => h && h.startsWith("/ui/c/ics/o/")), `node links: ${hrefs.slice(0, 3)}`);
    await graphChecks(page);
    await shot(page, "graph");
    await basics(page);

    step("graph", "drag on the background pans");
    const transform = () => page.$eval("svg#graph > g", (g) => g.getAttribute("transform"));
    const spot = await page.evaluate(() => {
      const svg = document.getElementById("graph");
      const b = svg.getBoundingClientRect();
      for (let y = b.top + 10; y < b.bottom - 60; y += 15) {
        for (let x = b.left + 10; x < b.right - 110; x += 15) {
          if (y > innerHeight - 60) continue;
          const el = document.elementFromPoint(x, y);
          if (el === svg) return { x, y };
        }
      }
      return null;
    });
    check(spot, "no empty background point in the graph");
    const before = await transform();
    await page.mouse.move(spot.x, spot.y);
    await page.mouse.down();
    await page.mouse.move(spot.x + 60, spot.y + 40, { steps: 5 });
    await page.mouse.up();
    const panned = await transform();
    check(panned !== before, `transform unchanged by a drag: ${before}`);
    // The transform is in user units of the viewBox: times the screen scale, the drag.
    const [ptx, pty] = (before.match(/-?[\d.]+/g) || []).map(Number);
    const [qtx, qty] = (panned.match(/-?[\d.]+/g) || []).map(Number);
    const k = await page.evaluate(() => document.getElementById("graph").getScreenCTM().a);
    check(Math.abs((qtx - ptx) * k - 60) < 1 && Math.abs((qty - pty) * k - 40) < 1, `drag by (60, 40) moved ${before} -> ${panned} at scale ${k}`);

    step("graph", "Ctrl + wheel zooms in, never below the drawn size");
    const scaleOf = (t) => Number(/scale\(([-\d.e]+)/.exec(t)[1]);
    await page.mouse.move(spot.x, spot.y);
    await page.keyboard.down("Control");
    await page.mouse.wheel(0, -400);
    await page.keyboard.up("Control");
    await page.waitForFunction((t) => document.querySelector("svg#graph > g").getAttribute("transform") !== t, panned);
    const zoomed = await transform();
    check(scaleOf(zoomed) > scaleOf(panned), `wheel up: scale ${scaleOf(panned)} -> ${scaleOf(zoomed)}`);
    await page.focus("svg#graph");
    for (let i = 0; i < 12; i++) await page.keyboard.press("-");
    const outmost = await transform();
    check(scaleOf(outmost) >= 1, `zoomed out below the drawn size: ${outmost}`);
    const smallest = await page.evaluate(() => Math.min(...[...document.querySelectorAll("#graph text.label, #graph text.edge-label")]
      .map((t) => parseFloat(getComputedStyle(t).fontSize) * Math.hypot(t.getScreenCTM().a, t.getScreenCTM().b))));
    check(smallest >= 11 - 0.01, `zoomed out, a label is drawn at ${smallest} px`);
    // Back where the drag left it, for the screenshot.
    await page.mouse.move(spot.x, spot.y);
    await page.keyboard.down("Control");
    await page.mouse.wheel(0, -400);
    await page.keyboard.up("Control");
    await shot(page, "graph-zoomed");
    await basics(page);

    step("graph", "Tab from the drawing reaches a node");
    await page.focus("svg#graph");
    await page.keyboard.press("Tab");
    const tabbed = await page.evaluate(() => document.activeElement.matches("svg#graph a.node"));
    check(tabbed, "Tab from the graph does not reach a node link");

    step("graph", "a node is a link to its object");
    const target = hrefs.find((h) => !h.includes("85f285f9"));
    // By the keyboard: a pointer click at the node's centre may land on a neighbour drawn
    // over it in the dense middle of the drawing.
    await page.focus(`svg#graph a.node[href="${target}"]`);
    await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
    check(new URL(page.url()).pathname === target, `clicking a node led to ${page.url()}, not ${target}`);
    await basics(page);

    // Import.
    await switchLanguage(page, "en");
    const smallBundle = join(scratch, "small-bundle.json");
    writeFileSync(smallBundle, JSON.stringify({
      type: "bundle",
      id: "bundle--9e1f7a52-0c43-4f0b-9d1e-5b2f8c7a6d31",
      objects: [{
        type: "indicator", spec_version: "2.1", id: "indicator--0f5e2d6c-8b1a-4c3e-9a7d-2e4f6b8c0a13",
        created: "2024-05-01T00:00:00.000Z", modified: "2024-05-01T00:00:00.000Z",
        name: "مؤشر اختبار الاستيراد", pattern_type: "stix", valid_from: "2024-05-01T00:00:00Z",
        pattern: "[domain-name:value = 'import-check.example.net']",
      }],
    }));
    const broken = join(scratch, "broken.json");
    writeFileSync(broken, '{"type": "bundle", "id": "bundle--9e1f7a52-0c43-4f0b-9d1e-5b2f8c7a6d31", "objects": [{"type": "indicator",');
    const versionsOf = async (coll) => {
      await go(page, "/ui/collections");
      return page.$$eval("#collections tbody tr", (trs, c) => {
        const tr = trs.find((t) => t.cells[1].textContent.trim() === c);
        return tr ? Number(tr.cells[2].textContent.trim()) : -1;
      }, coll);
    };
    const upload = async (file, format, coll, statuses = []) => {
      await go(page, "/ui/import");
      await basics(page);
      await page.selectOption("#i-collection", coll);
      await page.selectOption("#i-format", format);
      await page.setInputFiles("#i-file", file);
      await submit(page, "#import-submit", statuses);
    };
    const report = async () => {
      check(await page.$("#import-report"), `no #import-report${(await page.$("#import-error")) ? ": " + (await text(page, "#import-error")) : ""}`);
      const n = async (id) => Number(await text(page, id));
      return { total: await n("#import-total"), added: await n("#import-added"), present: await n("#import-present"), problems: await n("#import-problems") };
    };
    let stored = await versionsOf("intel");

    step("import", "a STIX bundle");
    await upload(smallBundle, "auto", "intel");
    let rep = await report();
    check(rep.total === 1 && rep.added === 1 && rep.problems === 0, `STIX report: ${JSON.stringify(rep)}`);
    await shot(page, "import-stix");
    await basics(page);
    check((await versionsOf("intel")) === stored + 1, "the bundle's object is not counted in the collection");
    stored += 1;

    step("import", "the same bundle again adds nothing");
    await upload(smallBundle, "stix", "intel");
    rep = await report();
    check(rep.added === 0 && rep.present === 1, `second upload: ${JSON.stringify(rep)}`);

    step("import", "a MISP event");
    await upload(MISP, "auto", "intel");
    rep = await report();
    check(rep.added > 0 && rep.total >= rep.added, `MISP report: ${JSON.stringify(rep)}`);
    check((await text(page, "#import-report")).includes("MISP"), "the MISP report does not say MISP");
    await shot(page, "import-misp");
    await basics(page);
    stored += rep.added;

    step("import", "an IOC list");
    await upload(IOC, "ioc-list", "intel");
    rep = await report();
    check(rep.added > 0, `IOC report: ${JSON.stringify(rep)}`);
    await shot(page, "import-ioc");
    await basics(page);
    stored += rep.added;
    check((await versionsOf("intel")) === stored, "the collection's count does not add up after the imports");

    step("import", "a broken file stores nothing");
    await upload(broken, "auto", "intel", [400, 422]);
    check(await page.$("#import-error"), "no #import-error for a broken file");
    check(!(await page.$("#import-report")), "a report is shown for a broken file");
    await shot(page, "import-broken");
    await basics(page);
    check((await versionsOf("intel")) === stored, "the broken file changed the collection");

    // Pattern check.
    step("pattern", "a valid pattern");
    await go(page, "/ui/pattern");
    await page.fill("#pattern", "[ipv4-addr:value = '198.51.100.7'] AND [domain-name:value = 'evil.example']");
    await submit(page, "#pattern-submit");
    check(await page.$("#pattern-result.ok"), `valid pattern: ${await text(page, "#pattern-result")}`);
    check((await text(page, "#pattern-result")).includes("2"), `valid pattern result: ${await text(page, "#pattern-result")}`);
    await shot(page, "pattern-valid");
    await basics(page);
    step("pattern", "an invalid pattern");
    await page.fill("#pattern", "[ipv4-addr:value = ]");
    await submit(page, "#pattern-submit", [400, 422]);
    check(await page.$("#pattern-result.error"), `invalid pattern: ${await text(page, "#pattern-result")}`);
    await shot(page, "pattern-invalid");
    await basics(page);

    // Operator pages.
    step("operator", "partners");
    await go(page, "/ui/operator/partners");
    check((await text(page, "#partners")).includes(PARTNER), `#partners lacks ${PARTNER}`);
    check(!(await page.content()).includes(PARTNER_KEY), "the partners page shows an API key");
    await shot(page, "operator-partners");
    await basics(page);
    step("operator", "groups");
    await go(page, "/ui/operator/groups");
    check(await page.$("#sharing"), "no #sharing");
    await basics(page);
    step("operator", "peers");
    await go(page, "/ui/operator/peers");
    check((await page.$("#peers")) || (await page.$("#no-peers")), "neither #peers nor #no-peers");
    await basics(page);
    step("operator", "policy");
    await go(page, "/ui/operator/policy");
    check((await text(page, "#policy-version")).length > 0, "empty #policy-version");
    await basics(page);
    step("operator", "audit");
    await go(page, "/ui/operator/audit");
    check(await page.$("#audit-status.ok"), `#audit-status: ${await text(page, "#audit-status")}`);
    check((await count(page, "#audit tbody tr")) > 0, "the audit table is empty after egress explains and imports");
    await shot(page, "operator-audit");
    await basics(page);

    // Arabic: right to left, layout mirrored.
    step("arabic", "switch to Arabic");
    await go(page, "/ui/collections");
    const ar = await switchLanguage(page, "ar");
    check(ar.dir === "rtl", `<html dir="${ar.dir}"> in Arabic`);
    const layout = async () => page.evaluate(() => {
      const box = (el) => { const r = el.getBoundingClientRect(); return { l: r.left, r: r.right }; };
      const header = document.querySelector("header.top");
      return { header: box(header), brand: box(document.querySelector(".brand")), nav: box(document.querySelector("header nav")), tools: box(document.querySelector(".tools")) };
    });
    let L = await layout();
    check(L.header.r - L.brand.r < 40, `the brand is not at the right of the header: ${JSON.stringify(L)}`);
    check(L.nav.r <= L.brand.l + 1, `the navigation is not left of the brand: ${JSON.stringify(L)}`);
    check(L.tools.l - L.header.l < 40, `the tools are not at the left of the header: ${JSON.stringify(L)}`);
    const headerAlign = async (table) => page.$$eval(`${table} thead th`, (ths) => ths.map((th) => {
      const range = document.createRange();
      range.selectNodeContents(th);
      const t = range.getBoundingClientRect();
      const b = th.getBoundingClientRect();
      const pad = parseFloat(getComputedStyle(th).paddingRight);
      return { text: th.textContent.trim(), right: Math.abs(b.right - pad - t.right) < 2, left: Math.abs(t.left - b.left - parseFloat(getComputedStyle(th).paddingLeft)) < 2 };
    }));
    let ths = await headerAlign("#collections");
    check(ths.length > 0 && ths.every((t) => t.right), `table headers not right-aligned: ${JSON.stringify(ths)}`);
    await shot(page, "collections");
    await basics(page);

    step("arabic", "objects list");
    await go(page, "/ui/c/intel");
    ths = await headerAlign("#objects");
    check(ths.every((t) => t.right), `object table headers not right-aligned: ${JSON.stringify(ths)}`);
    const badgeTexts = await page.$$eval("#objects .tlp", (b) => b.map((x) => x.textContent.trim()));
    check(badgeTexts.includes("TLP:AMBER") && badgeTexts.includes("TLP:GREEN"), `TLP badges in Arabic: ${badgeTexts}`);
    const markingOptions = await page.$$eval("#f-marking option", (os) => os.map((o) => o.textContent.trim()));
    check(markingOptions.includes("TLP:AMBER"), `marking filter options in Arabic: ${markingOptions}`);
    await shot(page, "objects");
    await basics(page);

    step("arabic", "object page");
    await openByName(page, "intel", "Operation Night Harbour");
    const arName = await page.$eval('.translated[data-field="name"]', (d) => d.innerText.trim());
    check(arName === "عملية ميناء الليل", `Arabic translation of the name: ${arName}`);
    L = await layout();
    check(L.header.r - L.brand.r < 40, `object page: the brand is not at the right: ${JSON.stringify(L)}`);
    const th = await page.$eval("#properties th", (t) => { const r = t.getBoundingClientRect(); const td = t.nextElementSibling.getBoundingClientRect(); return { th: r.left, td: td.right }; });
    check(th.th >= th.td - 1, `property names are not right of their values: ${JSON.stringify(th)}`);
    await shot(page, "object");
    await basics(page);

    step("arabic", "graph");
    await go(page, "/ui/c/ics/o/x-mitre-asset--85f285f9-0a48-4998-921d-8a47d81c0e6d/graph");
    await page.waitForSelector("svg#graph[data-ready]");
    check(Number(await page.getAttribute("svg#graph", "data-ready")) > 10, "Arabic graph has few nodes");
    await graphChecks(page);
    await shot(page, "graph");
    await basics(page);

    step("arabic", "keyboard navigation");
    await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
    await page.keyboard.press("Tab");
    focused = await page.evaluate(() => document.activeElement.className);
    check(focused === "skip", `first Tab in Arabic focuses ${focused}`);
    const arSkip = await page.evaluate(() => { const r = document.activeElement.getBoundingClientRect(); return { l: r.left, r: r.right, vw: innerWidth }; });
    check(arSkip.l >= 0 && arSkip.r <= arSkip.vw, `focused skip link off screen in Arabic: ${JSON.stringify(arSkip)}`);
    check(arSkip.r > arSkip.vw / 2, `focused skip link not on the right in Arabic: ${JSON.stringify(arSkip)}`);
    await switchLanguage(page, "en");
    await admin.close();

    // The language of a first visit comes from Accept-Language.
    for (const [locale, tag, dir] of [["zh-CN", "zh-CN", "ltr"], ["ar-SA", "ar", "rtl"]]) {
      step("accept-language", `a browser in ${locale}`);
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale });
      const lp = await ctx.newPage();
      watch(lp);
      await go(lp, "/ui/login");
      const h = await lp.evaluate(() => ({ lang: document.documentElement.lang, dir: document.documentElement.dir }));
      check(h.lang === tag && h.dir === dir, `login page for Accept-Language ${locale}: ${JSON.stringify(h)}`);
      await shot(lp, "login");
      await basics(lp);
      await ctx.close();
    }

    // A partner: its own collections only, no operator pages.
    const partner = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-US" });
    const pp = await partner.newPage();
    watch(pp);
    step("partner", "login with the API key");
    await login(pp, PARTNER_KEY);
    check(new URL(pp.url()).pathname === "/ui/", `partner login landed on ${pp.url()}`);
    await dashboardChecks(pp, "partner");
    await go(pp, "/ui/collections");
    const seen = await pp.$$eval("#collections tbody tr td:first-child a", (as) => as.map((a) => a.textContent.trim()));
    check(JSON.stringify(seen) === JSON.stringify(["intel"]), `the partner sees collections ${seen}`);
    const partnerNav = await pp.$$eval("header nav a", (as) => as.map((a) => a.getAttribute("href")));
    check(!partnerNav.some((h) => h.startsWith("/ui/operator")), `operator links for a partner: ${partnerNav}`);
    await shot(pp, "partner-collections");
    await basics(pp);
    step("partner", "TLP:AMBER objects are not listed");
    await go(pp, "/ui/c/intel");
    const pr = await filterObjects(pp, { q: "" });
    check(!pr.rows.some((x) => x.tlp === "TLP:AMBER"), `the partner is shown AMBER objects: ${JSON.stringify(pr.rows)}`);
    check(pr.rows.some((x) => x.name === "暗影蠕虫"), "the partner does not see the GREEN malware");
    await basics(pp);
    step("partner", "operator pages are forbidden");
    for (const p of ["partners", "groups", "peers", "policy", "audit"]) {
      await go(pp, `/ui/operator/${p}`, 403);
    }
    step("partner", "a refusal in Arabic is right to left");
    await go(pp, "/ui/");
    await switchLanguage(pp, "ar");
    await go(pp, "/ui/operator/audit", 403);
    const refusal = await pp.evaluate(() => ({
      dir: getComputedStyle(document.body).direction,
      text: document.getElementById("error-message")?.textContent.trim() ?? "",
    }));
    check(refusal.dir === "rtl" && /[\u0600-\u06ff]/.test(refusal.text), `403 page in Arabic: ${JSON.stringify(refusal)}`);
    await shot(pp, "partner-forbidden");
    step("partner", "an unreadable collection is refused");
    const resp = await expecting([403, 404], () => pp.goto(BASE + "/ui/c/ics"));
    check([403, 404].includes(resp.status()), `partner GET /ui/c/ics: HTTP ${resp.status()}`);
    clean();
    await partner.close();

    // Single sign-on through the node's OpenID Provider: the button, the provider's login
    // form and consent, the callback, and the page asked for, in the session the callback
    // made (its cookie is SameSite=Strict: the callback's page moves on by itself, a
    // same-site navigation, so that the browser sends it).
    if (OIDC_USER) {
      const sso = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-US" });
      const sp = await sso.newPage();
      watch(sp);
      step("oidc", "single sign-on through the OpenID Provider");
      await go(sp, "/ui/login?next=%2Fui%2Fcollections");
      check(await sp.$("#login-oidc"), "no #login-oidc on the login page");
      await shot(sp, "login-oidc");
      await basics(sp);
      await submit(sp, "#login-oidc");
      await sp.fill("input[name=login]", OIDC_USER);
      await sp.fill("input[name=password]", "any");
      await submit(sp, "button");
      await Promise.all([sp.waitForURL(BASE + "/ui/collections"), sp.click("button")]);
      await sp.waitForLoadState("load");
      check(await sp.$("#collections"), `single sign-on landed on ${sp.url()}`);
      const who = await text(sp, "header");
      check(who.includes(OIDC_USER), `the header after single sign-on: ${who}`);
      await shot(sp, "oidc-collections");
      await basics(sp);
      await sso.close();
    }
  } catch (e) {
    // The walk over every page runs all the same, so that one run reports everything.
    stepsFailed = e;
  }
  try {
    await walkPages(browser);
  } catch (e) {
    if (stepsFailed) console.error(`FAILED ${stepsFailed.message ?? stepsFailed}`);
    throw e;
  } finally {
    await browser.close();
  }
  return stepsFailed;
}

try {
  const stepsFailed = await main();
  if (stepsFailed) throw stepsFailed;
  clean();
  log(`all ${checks} checks passed; ${shotNo} screenshots in ${ART}`);
  rmSync(scratch, { recursive: true, force: true });
  process.exit(0);
} catch (e) {
  console.error(e instanceof Failure ? `FAILED ${e.message}` : `FAILED [${where.page}] ${where.step}: ${e.stack || e}`);
  if (problems.length) console.error(`browser also reported:\n  ${problems.join("\n  ")}`);
  rmSync(scratch, { recursive: true, force: true });
  process.exit(1);
}
