// The browser column of `sparse-playground bench`: times the engine compiled to WebAssembly
// (pkg/, built by `npm run build:wasm`) in headless Chromium on one thread, for the items in
// src/core/microbench.rs, and prints one JSON object on stdout:
//   {"browser": "<user agent>", "results": {"sae_train": {"steps_per_sec": ...}, ...}}
// Usage: node bench/browser.mjs [min_secs]
import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(new URL('..', import.meta.url).pathname);
const PKG = join(ROOT, 'pkg');
const minSecs = Number(process.argv[2] || '1');
const ITEMS = ['sae_train', 'ito_step', 'mlp256_train', 'real_sae_train'];

if (!existsSync(join(PKG, 'engine_bg.wasm'))) {
  console.error('pkg/engine_bg.wasm is missing: run `npm run build:wasm` first');
  process.exit(2);
}

const PAGE = `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module">
import init, { benchSteps } from './engine.js';
await init({ module_or_path: './engine_bg.wasm' });
window.benchSteps = benchSteps;
document.body.dataset.ready = '1';
</script>`;

const server = createServer(async (req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (path === '/') {
    res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
    return;
  }
  const name = path.slice(1);
  if (!['engine.js', 'engine_bg.wasm'].includes(name)) {
    res.writeHead(404).end();
    return;
  }
  const type = name.endsWith('.wasm') ? 'application/wasm' : 'text/javascript';
  res.writeHead(200, { 'content-type': type }).end(await readFile(join(PKG, name)));
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(600_000);
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForFunction(() => document.body && document.body.dataset.ready === '1');
  const results = {};
  for (const item of ITEMS) {
    const sps = await page.evaluate(([i, s]) => window.benchSteps(i, s), [item, minSecs]);
    console.error(`  wasm  ${item.padEnd(18)} ${sps.toFixed(2).padStart(12)} steps/s`);
    results[item] = { steps_per_sec: sps };
  }
  const agent = await page.evaluate(() => navigator.userAgent);
  console.log(JSON.stringify({ browser: agent, results }));
} finally {
  await browser.close();
  server.close();
}
