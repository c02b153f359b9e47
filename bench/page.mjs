// The page column of `sparse-playground bench`: the site's default preset (the quick main
// experiment) computed in the built site (dist/) in headless Chromium by the page's pool of CPU
// workers, timed from Run to the end. Prints one JSON object on stdout:
//   {"secs": ..., "workers": ..., "browser": "<user agent>"}
// Usage: npm run build && node bench/page.mjs
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
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(600_000);
  await page.goto(`http://127.0.0.1:${server.address().port}/#v=2&p=quick&setting=unknown&seed=20240926&backend=cpu`);
  await page.waitForFunction(() => document.body.dataset.state === 'ready');
  const t0 = Date.now();
  await page.click('#play');
  await page.waitForFunction(() => document.body.dataset.state === 'finished');
  const secs = (Date.now() - t0) / 1000;
  const note = await page.textContent('#backend-note');
  const workers = Number((/(\d+) worker/.exec(note) || [0, 0])[1]);
  const browserName = await page.evaluate(() => navigator.userAgent);
  console.error(`  page: ${secs.toFixed(1)} s on ${note}`);
  console.log(JSON.stringify({ secs, workers, browser: browserName }));
} finally {
  await browser.close();
  server.close();
}
