// The page columns of `sparse-playground bench`, in the built site (dist/) in headless
// Chromium on the page's pool of CPU workers, timed from Run to the end:
// - by default the site's default preset (the quick main experiment);
// - with `--sweep NAME` a sweep preset (e.g. phase: the 20 x 20 phase diagram).
// Prints one JSON object on stdout:
//   {"secs": ..., "workers": ..., "browser": "<user agent>"} (and "cells" for a sweep)
// Usage: npm run build && node bench/page.mjs [--sweep phase]
import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { extname, join, normalize, resolve } from 'node:path';

const DIST = resolve(new URL('../dist', import.meta.url).pathname);
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };
const server = createServer(async (req, res) => {
  let rel = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^\/+/, '');
  if (rel === '' || rel === '.') rel = 'index.html';
  const file = join(DIST, rel);
  if (!file.startsWith(DIST) || !existsSync(file)) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': TYPES[extname(file)] || 'application/octet-stream' });
  res.end(await readFile(file));
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const origin = `http://127.0.0.1:${server.address().port}/`;

/** The quick main experiment, from Run to the end. */
async function experiment(page) {
  await page.goto(`${origin}#v=2&p=quick&setting=unknown&seed=20240926&backend=cpu`);
  await page.waitForFunction(() => document.body.dataset.state === 'ready');
  const t0 = Date.now();
  await page.click('#play');
  await page.waitForFunction(() => document.body.dataset.state === 'finished');
  const secs = (Date.now() - t0) / 1000;
  const note = await page.textContent('#backend-note');
  const workers = Number((/(\d+) worker/.exec(note) || [0, 0])[1]);
  console.error(`  page: ${secs.toFixed(1)} s on ${note}`);
  return { secs, workers };
}

/** Sweep preset `name`, from Run sweep to the last cell (a fresh context stores no cells). */
async function sweep(page, name) {
  await page.goto(`${origin}#v=2&sweep=${encodeURIComponent(name)}&seed=0`);
  await page.waitForFunction(() => document.body.dataset.sweepState === 'ready');
  const t0 = Date.now();
  await page.click('#sweep-play');
  await page.waitForFunction(() => document.body.dataset.sweepState === 'finished');
  const secs = (Date.now() - t0) / 1000;
  const cells = Number(await page.evaluate(() => document.body.dataset.sweepCells));
  const workers = await page.evaluate(() => navigator.hardwareConcurrency);
  console.error(`  page: sweep ${name}, ${cells} cells in ${secs.toFixed(1)} s`);
  return { secs, cells, workers };
}

const at = process.argv.indexOf('--sweep');
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(600_000);
  const result = at > 0 ? await sweep(page, process.argv[at + 1]) : await experiment(page);
  result.browser = await page.evaluate(() => navigator.userAgent);
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
  server.close();
}
