// The page columns of `sparse-playground bench`, in the built site (dist/) in headless
// Chromium on the page's pool of CPU workers, timed from Run to the end:
// - by default the site's default preset (the quick main experiment);
// - with `--sweep NAME` a sweep preset (e.g. phase: the 20 x 20 phase diagram);
// - with `--real-memory` the page's peak memory with a 200 MB activation file (float32,
//   86,800 tokens x 576, written to a temporary file): loaded into the real-activation mode,
//   timed on its trial, and an SAE trained on it for 20 steps, while the resident memory of
//   every Chromium process is summed every 100 ms (Linux `ps`); reported over the browser's
//   own before the file is chosen.
// Prints one JSON object on stdout:
//   {"secs": ..., "workers": ..., "browser": "<user agent>"} (and "cells" for a sweep;
//   {"file_mb", "tokens", "baseline_mib", "loading_mib", "peak_mib", ...} for the memory)
// Usage: npm run build && node bench/page.mjs [--sweep phase | --real-memory]
import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { execSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { npyHeader } from './npy.mjs';
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

/** A .npy file of `tokens` x `dim` float32 values (seeded pseudo-random), written in chunks. */
async function writeNpy(path, tokens, dim) {
  const f = await open(path, 'w');
  await f.write(npyHeader(tokens, dim));
  let x = 12345;
  const rows = 1024;
  for (let t = 0; t < tokens; t += rows) {
    const n = Math.min(rows, tokens - t) * dim;
    const chunk = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      chunk[i] = x / 2 ** 31 - 1;
    }
    await f.write(new Uint8Array(chunk.buffer));
  }
  await f.close();
}

/** Resident memory of every Chromium process, in bytes (Linux). */
function chromiumRss() {
  const out = execSync('ps -eo rss=,comm=').toString();
  return out
    .split('\n')
    .filter((l) => /chrom/i.test(l))
    .reduce((sum, l) => sum + Number(l.trim().split(/\s+/)[0]) * 1024, 0);
}

/** The real-activation mode's peak memory with a 200 MB file. */
async function realMemory(page) {
  const [tokens, dim] = [86_800, 576];
  const dir = await mkdtemp(join(tmpdir(), 'sparse-playground-memory-'));
  const path = join(dir, 'activations-200mb.npy');
  try {
    await writeNpy(path, tokens, dim);
    await page.goto(`${origin}#real=file&N=576&steps=20&gap=32&methods=sae&resample=0`);
    await page.waitForFunction(() => document.body.dataset.realState === 'empty');
    await page.waitForTimeout(1000);
    const baseline = chromiumRss();
    let peak = baseline;
    const timer = setInterval(() => {
      peak = Math.max(peak, chromiumRss());
    }, 100);
    const t0 = Date.now();
    await page.setInputFiles('#real-file', path);
    await page.waitForFunction(() => document.body.dataset.realState === 'ready');
    const loading = peak;
    const loadSecs = (Date.now() - t0) / 1000;
    await page.waitForFunction(() => document.body.dataset.realEstimate);
    await page.click('#real-run');
    if (await page.isVisible('#real-long-run')) await page.click('#real-long-run-yes');
    await page.waitForFunction(() => document.body.dataset.realState === 'finished');
    clearInterval(timer);
    const mib = (b) => b / 2 ** 20;
    const result = {
      file_mb: (10 + 118 + tokens * dim * 4) / 1e6,
      tokens,
      dim,
      baseline_mib: mib(baseline),
      loading_mib: mib(loading - baseline),
      peak_mib: mib(peak - baseline),
      load_secs: loadSecs,
    };
    console.error(`  page: a ${result.file_mb.toFixed(0)} MB file: ${result.peak_mib.toFixed(0)} MiB at the peak over the browser's ${result.baseline_mib.toFixed(0)} MiB (${result.loading_mib.toFixed(0)} MiB while loading)`);
    return result;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const at = process.argv.indexOf('--sweep');
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(600_000);
  const result = process.argv.includes('--real-memory')
    ? await realMemory(page)
    : at > 0
      ? await sweep(page, process.argv[at + 1])
      : await experiment(page);
  result.browser = await page.evaluate(() => navigator.userAgent);
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
  server.close();
}
