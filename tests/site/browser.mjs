// Drives headless Chromium over the built site and writes what it finds as JSON.
//
//   node tests/site/browser.mjs check  <html-dir> <report.json> [screenshot-dir] -- page.html ...
//   node tests/site/browser.mjs pdf    <html-dir> <page.html> <out.pdf>
//
// `check` serves <html-dir> on 127.0.0.1 (nothing else is reachable), opens every page in a
// fresh browser context (an empty cache, so the bytes counted are a cold load), waits until
// MathJax has typeset the page, and records per page: console errors and failed requests, the
// bytes of every response, code boxes that scroll sideways at 1280 px, images with their alt
// text, caption and display scale, elements that stick out of a 400 px viewport, and the
// serious or critical violations of an axe-core audit (light and dark mode). The Python tests
// in tests/site/test_browser.py read the report and turn each finding into a failing test.
// `pdf` prints one page (the single-page build of the book) to PDF after MathJax has typeset.

import { createServer } from "node:http";
import { readFile, writeFile, mkdir, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");
const AXE_SOURCE = await readFile(require.resolve("axe-core/axe.min.js"), "utf8");

const EXECUTABLE = process.env.CHROMIUM || "/usr/bin/chromium";
const LAUNCH = {
  executablePath: EXECUTABLE,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
};
const TYPES = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript",
  ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg",
  ".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf", ".json": "application/json",
  ".inv": "application/octet-stream", ".txt": "text/plain", ".ico": "image/x-icon",
};

function serve(dir) {
  const root = path.resolve(dir);
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    let file = path.join(root, decodeURIComponent(url.pathname));
    if (!file.startsWith(root)) { res.writeHead(403).end(); return; }
    try {
      if ((await stat(file)).isDirectory()) file = path.join(file, "index.html");
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[path.extname(file)] || "application/octet-stream",
        "content-length": body.length });
      res.end(body);
    } catch {
      if (process.env.SITECHECK_DEBUG) process.stderr.write(`404 ${req.url} from ${req.headers.referer}\n`);
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

async function typeset(page) {
  // Wait for MathJax (when the page loads it) and for every image, then for fonts.
  await page.waitForLoadState("load");
  await page.evaluate(async () => {
    const deadline = Date.now() + 20000;
    while (Date.now() < deadline) {
      const mj = window.MathJax;
      if (!document.querySelector(".math") || (mj && mj.startup && mj.startup.promise)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (window.MathJax && window.MathJax.startup && window.MathJax.startup.promise) {
      await window.MathJax.startup.promise;
    }
    await document.fonts.ready;
  });
  await page.waitForLoadState("networkidle");
}

// Everything measured inside the page at 1280 px.
function measureWide() {
  const main = document.querySelector("article.bd-article") || document.body;
  const codeBoxes = [];
  for (const pre of main.querySelectorAll("div.highlight pre")) {
    if (pre.closest(".cell_output, .output")) continue; // printed output, not code
    if (!pre.offsetParent) continue; // hidden (e.g. a collapsed hide-input cell)
    const overflow = pre.scrollWidth - pre.clientWidth;
    if (overflow > 1) {
      const longest = pre.textContent.split("\n").reduce((a, b) => (b.length > a.length ? b : a), "");
      codeBoxes.push({ overflow_px: overflow, longest_line: longest.slice(0, 120),
        columns: longest.length });
    }
  }
  // How many monospace columns a code box shows.
  let columns = null;
  const sample = main.querySelector("div.cell_input div.highlight pre, div.highlight pre");
  if (sample) {
    const probe = document.createElement("span");
    probe.textContent = "0".repeat(100);
    probe.style.whiteSpace = "pre";
    sample.appendChild(probe);
    const charWidth = probe.getBoundingClientRect().width / 100;
    probe.remove();
    const cs = getComputedStyle(sample);
    const inner = sample.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    columns = Math.floor(inner / charWidth + 1e-6);
  }
  const images = [];
  for (const img of main.querySelectorAll("img")) {
    const figure = img.closest("figure");
    const caption = figure ? figure.querySelector("figcaption") : null;
    const number = caption ? caption.querySelector(".caption-number") : null;
    const declared = parseFloat(img.getAttribute("width")) || null;
    const intrinsic = declared || img.naturalWidth;
    images.push({
      src: img.getAttribute("src"),
      alt: img.getAttribute("alt"),
      caption: caption ? caption.innerText.trim().slice(0, 160) : null,
      number: number ? number.innerText.trim() : null,
      shown_px: Math.round(img.getBoundingClientRect().width),
      natural_px: img.naturalWidth,
      intrinsic_px: intrinsic,
      scale: intrinsic ? img.getBoundingClientRect().width / intrinsic : null,
      loaded: img.complete && img.naturalWidth > 0,
    });
  }
  const solutions = [...document.querySelectorAll(".solution.dropdown > .admonition-title a")]
    .map((a) => a.closest(".solution").id);
  return { codeBoxes, columns, images, solutions,
    mathErrors: document.querySelectorAll("mjx-merror").length,
    typeset: document.querySelectorAll("mjx-container").length };
}

// Elements of the page body that end right of a narrow viewport without a scroller of their own.
function measureNarrow() {
  const width = document.documentElement.clientWidth;
  const scrollsX = (el) => ["auto", "scroll"].includes(getComputedStyle(el).overflowX);
  const out = [];
  const main = document.querySelector("main") || document.body;
  for (const el of main.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || r.right <= width + 1) continue;
    const st = getComputedStyle(el);
    if (st.visibility === "hidden" || st.position === "fixed") continue;
    // Clipped to nothing, itself or by an ancestor (MathJax's copy of a formula for screen
    // readers): not seen; the page-width check (document_width) still catches any scrolling.
    const clipped = (node) => {
      const cs = getComputedStyle(node);
      return cs.position === "absolute" && cs.clip && cs.clip !== "auto";
    };
    let hidden = clipped(el);
    for (let p = el.parentElement; p && !hidden && p !== document.body; p = p.parentElement) {
      hidden = clipped(p);
    }
    if (hidden) continue;
    let contained = false;
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      if (scrollsX(p) && p.getBoundingClientRect().right <= width + 1) { contained = true; break; }
      const ps = getComputedStyle(p);
      if (ps.display === "none") { contained = true; break; }
    }
    if (contained) continue;
    // Report the outermost offender only.
    if (out.some((o) => o.el.contains(el))) continue;
    out.push({ el, right: Math.round(r.right) });
  }
  return {
    viewport: width,
    document_width: document.documentElement.scrollWidth,
    overflowing: out.slice(0, 20).map(({ el, right }) => ({
      right, tag: el.tagName.toLowerCase(), cls: String(el.className).slice(0, 80),
      text: (el.innerText || "").trim().slice(0, 80),
    })),
  };
}

async function axe(page) {
  await page.addScriptTag({ content: AXE_SOURCE });
  const result = await page.evaluate(async () =>
    await window.axe.run(document, { resultTypes: ["violations"], preload: false }));
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")), count: v.nodes.length }));
}

async function openPage(browser, url, options) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  const log = { console_errors: [], failed_requests: [], bytes: 0, requests: [] };
  page.on("console", (m) => { if (m.type() === "error") log.console_errors.push(m.text()); });
  page.on("pageerror", (e) => log.console_errors.push(`uncaught: ${e.message}`));
  page.on("requestfailed", (r) => log.failed_requests.push(`${r.url()} ${r.failure()?.errorText}`));
  page.on("response", async (resp) => {
    if (resp.status() >= 400) log.failed_requests.push(`${resp.url()} HTTP ${resp.status()}`);
    try {
      const body = await resp.body();
      log.bytes += body.length;
      log.requests.push([resp.url().replace(/^http:\/\/127\.0\.0\.1:\d+\//, ""), body.length]);
    } catch { /* a redirect has no body */ }
  });
  await page.goto(url, { waitUntil: "load" });
  await typeset(page);
  return { context, page, log };
}

async function checkSolutionLinks(page) {
  // Clicking the exercise link in a solution's header must open that solution.
  const results = [];
  const ids = await page.evaluate(() =>
    [...document.querySelectorAll(".solution.dropdown > .admonition-title a")]
      .map((a) => a.closest(".solution").id));
  for (const id of ids) {
    const link = page.locator(`[id="${id}"] > .admonition-title a`).first();
    await link.scrollIntoViewIfNeeded();
    await link.click();
    const open = await page.evaluate((sid) => {
      const sol = document.getElementById(sid);
      const body = sol.querySelector("section, .admonition-title ~ *");
      return !sol.classList.contains("toggle-hidden") && !!body && body.offsetHeight > 0;
    }, id);
    results.push({ id, opens: open });
  }
  return results;
}

async function check(root, reportPath, shotDir, pages) {
  const server = await serve(root);
  const base = `http://127.0.0.1:${server.address().port}/`;
  const browser = await chromium.launch(LAUNCH);
  const report = {};
  try {
    for (const rel of pages) {
      const url = base + rel;
      const entry = {};
      // 1280 px, light mode: console, weight, code boxes, images, axe.
      let { context, page, log } = await openPage(browser, url,
        { viewport: { width: 1280, height: 900 }, colorScheme: "light" });
      Object.assign(entry, measureWideResult(await page.evaluate(measureWide)));
      entry.cold_load_bytes = log.bytes;
      entry.largest_requests = log.requests.sort((a, b) => b[1] - a[1]);
      entry.axe_light = await axe(page);
      entry.print_code_overflow = await printOverflow(page);
      entry.solution_links = await checkSolutionLinks(page);
      entry.console_errors = [...log.console_errors];
      entry.failed_requests = [...log.failed_requests];
      if (shotDir) await page.screenshot({ path: shot(shotDir, rel, "1280"), fullPage: true });
      await context.close();
      // Dark mode: console and axe again (colours differ).
      ({ context, page, log } = await openPage(browser, url,
        { viewport: { width: 1280, height: 900 }, colorScheme: "dark" }));
      entry.axe_dark = await axe(page);
      entry.console_errors.push(...log.console_errors);
      if (shotDir) await page.screenshot({ path: shot(shotDir, rel, "dark"), fullPage: true });
      await context.close();
      // 400 px: what sticks out.
      ({ context, page, log } = await openPage(browser, url,
        { viewport: { width: 400, height: 800 }, colorScheme: "light" }));
      entry.narrow = await page.evaluate(measureNarrow);
      entry.console_errors.push(...log.console_errors);
      if (shotDir) await page.screenshot({ path: shot(shotDir, rel, "400"), fullPage: true });
      await context.close();
      entry.console_errors = [...new Set(entry.console_errors)];
      report[rel] = entry;
      process.stderr.write(`checked ${rel}\n`);
    }
  } finally {
    await browser.close();
    server.close();
  }
  await writeFile(reportPath, JSON.stringify(report, null, 1));
}

function measureWideResult(r) {
  return { code_boxes_scrolling: r.codeBoxes, code_columns: r.columns, images: r.images,
    math_errors: r.mathErrors, math_typeset: r.typeset };
}

async function printOverflow(page) {
  await page.emulateMedia({ media: "print" });
  const n = await page.evaluate(() => [...document.querySelectorAll("div.highlight pre")]
    .filter((p) => p.offsetParent && p.scrollWidth - p.clientWidth > 1).length);
  await page.emulateMedia({ media: "screen" });
  return n;
}

function shot(dir, rel, tag) {
  return path.join(dir, `${rel.replace(/\//g, "_").replace(/\.html$/, "")}-${tag}.png`);
}

async function pdf(root, rel, outFile) {
  const server = await serve(root);
  const url = `http://127.0.0.1:${server.address().port}/${rel}`;
  const browser = await chromium.launch(LAUNCH);
  try {
    const { context, page, log } = await openPage(browser, url,
      { viewport: { width: 1280, height: 900 }, colorScheme: "light" });
    await page.emulateMedia({ media: "print" });
    // Open every collapsed block (hidden code, solutions) so the PDF holds all of it.
    await page.evaluate(() => {
      document.querySelectorAll("details").forEach((d) => { d.open = true; });
      document.querySelectorAll(".toggle-hidden").forEach((e) => e.classList.remove("toggle-hidden"));
    });
    await page.evaluate(() => window.MathJax?.typesetPromise?.());
    await page.evaluate(async () => {
      await Promise.all([...document.images].map((img) => img.decode().catch(() => null)));
    });
    await page.pdf({ path: outFile, format: "A4", printBackground: true,
      margin: { top: "18mm", bottom: "18mm", left: "16mm", right: "16mm" },
      displayHeaderFooter: true, headerTemplate: "<span></span>",
      footerTemplate: '<div style="font-size:8px;width:100%;text-align:center">' +
        '<span class="pageNumber"></span> / <span class="totalPages"></span></div>' });
    if (log.console_errors.length) process.stderr.write(`console: ${log.console_errors.join("\n")}\n`);
    await context.close();
  } finally {
    await browser.close();
    server.close();
  }
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === "check") {
  const sep = rest.indexOf("--");
  const [root, reportPath, shotDir] = rest.slice(0, sep);
  if (shotDir) await mkdir(shotDir, { recursive: true });
  await check(root, reportPath, shotDir, rest.slice(sep + 1));
} else if (mode === "pdf") {
  await pdf(rest[0], rest[1], rest[2]);
} else {
  process.stderr.write("usage: browser.mjs check|pdf ...\n");
  process.exit(2);
}
