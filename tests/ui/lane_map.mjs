// The lane map in a real browser (Debian's chromium, driven by playwright-core).
//
//   node lane_map.mjs demo URL SCREENSHOT   the sandbox's map: what the page draws, a click on
//                                           the escape edge, the tenant filter; a screenshot
//   node lane_map.mjs big URL N_SERVICES N_WORKLOADS
//                                           a synthetic map that size: how long it takes to draw
//
// Prints one JSON object; tests/tests/lane_map.rs asserts on it.
import { chromium } from "playwright-core";

const [mode, url, ...rest] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const out = { errors: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1500, height: 900 } });
  page.on("pageerror", (e) => out.errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") out.errors.push(m.text()); });
  if (mode === "big") await big(page, Number(rest[0]), Number(rest[1]));
  else await demo(page, rest[0]);
} catch (e) {
  out.errors.push(String(e && e.stack || e));
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));

async function ready(page) {
  await page.waitForFunction(() => document.body.dataset.ready === "1" && document.body.dataset.renderMs !== undefined, null, { timeout: 20000 });
}

// What the page drew: nodes and edges as cytoscape holds them.
function drawn(page) {
  return page.evaluate(() => ({
    nodes: state.cy.nodes().map((n) => ({ id: n.id(), colour: n.data("colour"), tenant: n.data("tenant"), kind: n.data("kind") })),
    edges: state.cy.edges().map((e) => ({
      id: e.id(), source: e.data("source"), target: e.data("target"), colour: e.data("colour"),
      escape: e.data("escape"), label: e.data("label"), kernel: e.data("kernel"),
    })),
  }));
}

async function demo(page, shot) {
  const response = await page.goto(url, { waitUntil: "load" });
  out.csp = response.headers()["content-security-policy"] || "";
  await ready(page);
  out.render_ms = Number(await page.evaluate(() => document.body.dataset.renderMs));
  out.before = await drawn(page);
  // Click the escape edge (red): its flows and why appear in the panel.
  const escape = out.before.edges.find((e) => e.escape === 1);
  if (escape) {
    const at = await page.evaluate((id) => {
      const e = state.cy.getElementById(id);
      const p = e.renderedMidpoint();
      const box = document.getElementById("graph").getBoundingClientRect();
      return { x: box.left + p.x, y: box.top + p.y };
    }, escape.id);
    await page.mouse.click(at.x, at.y);
    await page.waitForSelector("#edge-flows tr + tr", { timeout: 5000 }).catch(() => {});
    out.clicked = await page.evaluate(() => ({
      title: document.getElementById("panel-title").textContent,
      rows: [...document.querySelectorAll("#edge-flows tr")].slice(1).map((r) => r.textContent),
    }));
  }
  await page.screenshot({ path: shot });
  // The tenant filter: only acme's workloads (and shared ones) stay.
  await page.selectOption("#tenant", "acme");
  await page.waitForTimeout(300);
  out.acme = await drawn(page);
  await page.selectOption("#tenant", "");
  // The lane selector: only the stress lane's edges stay.
  await page.selectOption("#lane", "stress");
  await page.waitForTimeout(300);
  out.stress = await drawn(page);
}

async function big(page, services, workloads) {
  const per = Math.max(1, Math.floor(workloads / services));
  const map = { source: "synthetic", lanes: ["gray", "stress"], tenants: ["acme", "globex"], nodes: [], services: [], edges: [] };
  for (let s = 0; s < services; s++) {
    const svc = `ns${s % 50}/svc-${s}`;
    map.services.push({ id: svc, subsets: [], routes: [], data_lanes: [], fallback: "base" });
    for (let w = 0; w < per; w++) {
      const tag = w === 1 ? "gray" : null;
      map.nodes.push({ id: `${svc}-w${w}@${tag || "base"}`, label: `svc-${s}-w${w}`, kind: "workload", service: svc, tag, tenant: s % 7 === 0 ? "acme" : null });
    }
  }
  const ids = map.nodes.map((n) => n.id);
  for (let i = 0; i < ids.length; i++) {
    const to = ids[(i * 7919 + 13) % ids.length];
    if (to === ids[i]) continue;
    const escape = i % 97 === 0;
    map.edges.push({ id: `e${i}`, from: ids[i], to, service: null, tag: i % 3 === 0 ? "gray" : null, tenant: null, path: "proxy",
      requests: 1 + (i % 50), connections: 0, escapes: escape ? 1 : 0, reasons: escape ? { fallback_base: 1 } : {}, refused: 0, data: [], flows: [] });
  }
  const body = JSON.stringify(map);
  await page.route("**/map", (r) => r.fulfill({ status: 200, contentType: "application/json", body }));
  const started = Date.now();
  await page.goto(url, { waitUntil: "load" });
  await ready(page);
  out.wall_ms = Date.now() - started;
  out.render_ms = Number(await page.evaluate(() => document.body.dataset.renderMs));
  out.nodes = Number(await page.evaluate(() => document.body.dataset.nodes));
  out.edges = Number(await page.evaluate(() => document.body.dataset.edges));
  out.add_ms = Number(await page.evaluate(() => document.body.dataset.addMs));
  out.layout_ms = Number(await page.evaluate(() => document.body.dataset.layoutMs));
}
