// The harness the end-to-end tests share: dist/ served from a sub-path (as GitHub Pages would),
// the system Chromium driven by playwright-core, a test runner that prints one line per test
// and a closing "test result" line, and helpers to open pages and wait for the page's states.
// Every page's console errors and warnings, and every failed request, are collected.
import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { extname, join, normalize, resolve } from 'node:path';

export const ROOT = resolve(new URL('../..', import.meta.url).pathname);
export const DIST = join(ROOT, 'dist');
export const ARTIFACTS = join(ROOT, 'target', 'e2e');
export const BASE = '/sparse-playground/'; // served from a sub-path on purpose
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const TIMEOUT = 120_000;

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.css': 'text/css',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

function serve() {
  const requests = [];
  const server = createServer(async (req, res) => {
    requests.push(req.url);
    const url = new URL(req.url, 'http://x');
    if (!url.pathname.startsWith(BASE)) {
      res.writeHead(404).end();
      return;
    }
    let rel = normalize(decodeURIComponent(url.pathname.slice(BASE.length)));
    if (rel === '.' || rel === '') rel = 'index.html';
    const file = join(DIST, rel);
    if (!file.startsWith(DIST) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    const body = await readFile(file);
    res.writeHead(200, { 'content-type': MIME[extname(file)] || 'application/octet-stream' });
    res.end(body);
  });
  return new Promise((ok) => {
    server.listen(0, '127.0.0.1', () => ok({ server, requests, port: server.address().port }));
  });
}

export const results = [];
/** Run one test and record it; with E2E_ONLY set (a regular expression), only matching names. */
export async function test(name, fn) {
  if (process.env.E2E_ONLY && !new RegExp(process.env.E2E_ONLY).test(name)) return;
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`test ${name} ... ok (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    results.push({ name, ok: false });
    console.log(`test ${name} ... FAILED\n${e.stack || e}`);
  }
}

export const { server, port } = await serve();
export const origin = `http://127.0.0.1:${port}`;
export const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ],
});

/**
 * A second Chromium with WebGPU on SwiftShader (Vulkan in software), for the GPU paths; the
 * caller closes it. Tests skip what needs an adapter when this Chromium offers none, unless
 * SPARSE_PLAYGROUND_REQUIRE_GPU=1.
 */
export function launchGpuBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-dev-shm-usage',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--enable-unsafe-webgpu',
      '--use-angle=vulkan',
      '--enable-features=Vulkan',
      '--use-vulkan=swiftshader',
    ],
  });
}

export const consoleProblems = [];
export async function newPage(context) {
  const ctx = context || (await browser.newContext({ acceptDownloads: true }));
  const page = await ctx.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') consoleProblems.push(`${msg.type()}: ${msg.text()} ${msg.location().url || ''}`);
  });
  page.on('pageerror', (err) => consoleProblems.push(`page error: ${err.message}`));
  page.on('response', (r) => {
    if (r.status() >= 400) consoleProblems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  return { ctx, page };
}

export const waitState = (page, value) =>
  page.waitForFunction((v) => document.body.dataset.state === v, value, { timeout: TIMEOUT });

export async function summary(page) {
  return page.$$eval('#summary tbody tr', (rows) => rows.map((r) => Array.from(r.cells).map((c) => c.textContent)));
}


/** Close the browser and server; print the closing line; exit with the result. */
export async function finish(label) {
  await browser.close();
  server.close();
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  console.log(`\ntest result: ${failed ? 'FAILED' : 'ok'}. ${passed} passed; ${failed} failed; (${label})`);
  process.exit(failed ? 1 : 0);
}
