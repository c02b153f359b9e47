// End-to-end test of the built site (dist/) in the system Chromium, driven by playwright-core.
// It serves dist/ on 127.0.0.1 from a sub-path (as GitHub Pages would), runs a short experiment,
// checks the charts, table and dictionary views, shares the link and reopens it in a fresh
// browser context (same config, same numbers), exports the results JSON and loads it back,
// checks that a finished run survives a reload and that a malformed link shows an error and the
// defaults, and fails on any console error. A screenshot goes to target/e2e/playground.png.
//
// Run: `npm run build && node tests/e2e/playground.mjs` (scripts/test.sh does both).
import { readFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import {
  ARTIFACTS,
  BASE,
  DIST,
  browser,
  consoleProblems,
  finish,
  launchGpuBrowser,
  newPage,
  origin,
  server,
  summary,
  test,
  waitState,
} from './harness.mjs';

// A short experiment: three methods, two seeds, 300 steps, evaluated every 100.
const LINK = 'v=1&setting=unknown&methods=sae,sc:fista:s100,mlp:h32&steps=300&log=100&runs=2&seed=11';

let first; // {page, ctx, table, link, checksum}

await test('page loads from a sub-path and becomes ready', async () => {
  const { ctx, page } = await newPage();
  const t0 = Date.now();
  await page.goto(`${origin}${BASE}#${LINK}`);
  await waitState(page, 'ready');
  console.log(`  ready ${Date.now() - t0} ms after navigation`);
  assert.equal(await page.inputValue('#steps'), '300');
  assert.equal(await page.inputValue('#runs'), '2');
  assert.equal(await page.$$eval('#methods .method', (m) => m.length), 3);
  const checksum = await page.textContent('#checksum');
  assert.match(checksum, /^[0-9a-f]{16}$/);
  assert.ok(await page.isEnabled('#play'));
  first = { ctx, page, checksum };
});

await test('a short experiment runs and the charts, table and views update', async () => {
  const { page } = first;
  await page.click('#play');
  await waitState(page, 'finished');
  const table = await summary(page);
  assert.equal(table.length, 3);
  for (const row of table) {
    const mcc = parseFloat(row[1]);
    assert.ok(mcc > 0 && mcc <= 1, `code MCC of ${row[0]}: ${row[1]}`);
    assert.match(row[1], /±/, 'two seeds give a spread');
  }
  const points = await page.$eval('#chart-code_mcc', (c) => c.querySelector('[data-points]').dataset.points);
  assert.equal(points, '4', 'evaluations at steps 1, 100, 200, 300');
  assert.equal(await page.$$eval('#chart-code_mcc canvas', (c) => c.length), 1);
  await page.waitForFunction(() => document.getElementById('heat-learned').dataset.drawn === '8x16');
  assert.equal(await page.$eval('#heat-true', (c) => c.dataset.drawn), '8x16');
  assert.equal(await page.$eval('#heat-gram', (c) => c.dataset.drawn), '16x16');
  assert.match(await page.textContent('#status'), /^100\.0% · 1,800 \/ 1,800 training steps · done$/);
  // Every heat map reads out the cell under the pointer, and by keyboard once focused.
  const readout = (id) => page.$eval(`#${id}`, (c) => c.closest('figure').querySelector('.readout')?.textContent ?? '');
  const box = await page.$eval('#heat-learned', (c) => {
    c.scrollIntoView({ block: 'center' });
    const r = c.getBoundingClientRect();
    const g = c.heatGrid;
    const s = r.width / c.width;
    // The centre of cell (row 2, column 3), in CSS pixels.
    return { x: r.left + (g.left + 3.5 * g.cell) * s, y: r.top + (g.top + 2.5 * g.cell) * s };
  });
  await page.mouse.move(box.x, box.y);
  assert.match(await readout('heat-learned'), /^Learned atoms, matched: coordinate 2, true atom 3: -?\d[\d.e+-]*; \|corr\| \d/);
  await page.focus('#heat-gram');
  assert.match(await readout('heat-gram'), /^Learned Gram matrix: learned atom 0, learned atom 0: 1\.0/);
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('ArrowDown');
  assert.match(await readout('heat-gram'), /learned atom 1, learned atom 1: 1\.0/);
  await page.keyboard.press('End');
  assert.match(await readout('heat-gram'), /learned atom 1, learned atom 15: /);
  assert.match(await page.getAttribute('#heat-gram', 'aria-label'), /16 × 16.*arrow keys/);
  // The x axis switches to FLOPs (log) without losing points.
  await page.selectOption('#x-axis', 'flops');
  // Methods spend different FLOPs per step, so their points interleave on the shared axis.
  await page.waitForFunction(() => Number(document.querySelector('#chart-code_mcc [data-points]').dataset.points) > 4);
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'playground.png'), fullPage: true });
  first.table = table;
});

await test('the share link reopens the same experiment with the same numbers', async () => {
  const { page, ctx } = first;
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
  await page.click('#copy-link');
  const link = await page.inputValue('#share-link');
  assert.ok(link.startsWith(`${origin}${BASE}#v=2&`), link);
  assert.ok(link.includes('run=1'), 'the link starts the run');
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(copied, link);
  const fresh = await newPage();
  await fresh.page.goto(link);
  await waitState(fresh.page, 'finished');
  assert.equal(await fresh.page.textContent('#checksum'), first.checksum);
  assert.deepEqual(
    (await summary(fresh.page)).map((r) => r.slice(0, 6)),
    first.table.map((r) => r.slice(0, 6)),
    'same MCCs, MSE, L0 and dead latents',
  );
  await fresh.ctx.close();
});

await test('results export as JSON in the CLI schema and load back', async () => {
  const { page } = first;
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-json')]);
  const path = join(ARTIFACTS, 'results.json');
  await download.saveAs(path);
  const json = JSON.parse(await readFile(path, 'utf8'));
  assert.equal(json.config.train.steps, 300);
  assert.equal(json.methods.length, 3);
  assert.equal(json.methods[0].runs.length, 2);
  const rec = json.methods[0].runs[0].log.at(-1);
  for (const key of ['step', 'code_mcc', 'dict_mcc', 'test_mse', 'l0', 'train_flops', 'infer_flops', 'wall_s']) {
    assert.ok(key in rec, `log records have ${key}`);
  }
  assert.ok('mean' in json.methods[0].final.code_mcc);
  const [csv] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
  const csvPath = join(ARTIFACTS, 'curves.csv');
  await csv.saveAs(csvPath);
  const lines = (await readFile(csvPath, 'utf8')).trim().split('\n');
  assert.equal(lines.length, 1 + 3 * 2 * 4, 'a header plus 3 methods x 2 seeds x 4 evaluations');
  const [svg] = await Promise.all([page.waitForEvent('download'), page.click('#chart-code_mcc button:has-text("SVG")')]);
  await svg.saveAs(join(ARTIFACTS, 'code-mcc.svg'));
  assert.match(await readFile(join(ARTIFACTS, 'code-mcc.svg'), 'utf8'), /^<svg[^]*<polyline[^]*<\/svg>$/);
  const [png] = await Promise.all([page.waitForEvent('download'), page.click('#chart-code_mcc button:has-text("PNG")')]);
  await png.saveAs(join(ARTIFACTS, 'code-mcc.png'));

  const other = await newPage();
  await other.page.goto(`${origin}${BASE}`);
  await waitState(other.page, 'ready');
  await other.page.setInputFiles('#load-json', path);
  await other.page.waitForFunction(() => /loaded from a file/.test(document.getElementById('status').textContent));
  assert.deepEqual(await summary(other.page), first.table, 'the loaded file shows the same table');
  assert.equal(await other.page.inputValue('#steps'), '300');
  // A file that is not a results file is refused with a message, and nothing is lost.
  const bogus = join(ARTIFACTS, 'bogus.json');
  await writeFile(bogus, '{"config": 3}');
  await other.page.setInputFiles('#load-json', bogus);
  await other.page.waitForSelector('.banner.error');
  assert.deepEqual(await summary(other.page), first.table);
  await other.ctx.close();
});

await test('a finished run survives a reload', async () => {
  const { page } = first;
  await page.reload();
  // Described as what it is: kept by this browser, not loaded from a file.
  await page.waitForFunction(() => /your last finished run, kept by this browser/.test(document.getElementById('status').textContent));
  assert.match(await page.textContent('#banners'), /Restored your last finished run/);
  assert.deepEqual(await summary(page), first.table);
});

await test('a malformed link shows what was wrong and the defaults', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#v=1&N=abc&steps=5`);
  await waitState(page, 'ready');
  const error = await page.textContent('.banner.error');
  assert.match(error, /N=abc/);
  assert.equal(await page.inputValue('#num_atoms'), '16');
  assert.equal(await page.inputValue('#steps'), '3000', 'the quick known-dictionary experiment is the default');
  // An invalid edit in the form is refused with a message at the field, in the form's words.
  await page.fill('#sparsity_k', '99');
  await page.dispatchEvent('#sparsity_k', 'change');
  await page.waitForSelector('#config-error:not([hidden])');
  assert.match(await page.textContent('#config-error'), /^Not applied: Active per sample K: K must be between 1 and N = 16/);
  assert.equal(await page.getAttribute('#sparsity_k', 'aria-invalid'), 'true');
  assert.ok(await page.isDisabled('#play'), 'nothing runs that the form does not show');
  await ctx.close();
});

await test('the site keeps working offline after one visit', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#v=1&steps=20&log=10&runs=1&methods=sae&seed=3`);
  await waitState(page, 'ready');
  // The service worker has cached the whole build once it is active.
  await page.evaluate(async () => {
    const reg = await navigator.serviceWorker.ready;
    if (reg.active.state !== 'activated') {
      await new Promise((ok) => reg.active.addEventListener('statechange', () => reg.active.state === 'activated' && ok()));
    }
  });
  await ctx.setOffline(true);
  server.closeAllConnections();
  await page.reload();
  await waitState(page, 'ready');
  await page.click('#play');
  await waitState(page, 'finished');
  assert.equal((await summary(page)).length, 1);
  await ctx.close();
});

await test("an added method gets the engine's solver defaults and the link carries it", async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#${LINK}`);
  await waitState(page, 'ready');
  const methods = page.locator('#methods .method');
  const before = await methods.count();
  await page.selectOption('#add-method', 'sae_ito');
  await page.waitForFunction((n) => document.querySelectorAll('#methods .method').length === n + 1, before);
  const added = methods.last();
  // Adam as in the paper: 10,000 steps at 0.003, from Rust's defaults.
  assert.equal(await added.locator('[data-field="solver-steps"]').inputValue(), '10000');
  assert.equal(await added.locator('[data-field="solver-lr"]').inputValue(), '0.003');
  await added.locator('[data-field="solver"]').selectOption('fista');
  await page.waitForFunction(() => decodeURIComponent(location.hash).includes('ito:fista'));
  assert.equal(await methods.last().locator('[data-field="solver-steps"]').inputValue(), '500');
  assert.ok(!decodeURIComponent(await page.evaluate(() => location.hash)).includes('ito:fista:s500'),
    'default steps are omitted from the link');
  await ctx.close();
});

await test('LISTA trains in the setting with both unknown, from a link or the form, and is refused elsewhere', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#v=2&setting=unknown&methods=sae,lista:t2&steps=200&log=100&runs=1&seed=3`);
  await waitState(page, 'ready');
  const lista = page.locator('#methods .method').last();
  assert.equal(await lista.getAttribute('data-kind'), 'lista');
  assert.equal(await lista.locator('[data-field="iterations"]').inputValue(), '2');
  await lista.locator('[data-field="iterations"]').fill('3');
  await lista.locator('[data-field="iterations"]').dispatchEvent('change');
  await page.waitForFunction(() => decodeURIComponent(location.hash).includes('lista:t3'));
  await waitState(page, 'ready');
  await page.click('#play');
  await waitState(page, 'finished');
  const table = await summary(page);
  assert.equal(table.length, 2);
  assert.match(table[1][0], /LISTA \(T=3\)/);
  const mcc = parseFloat(table[1][1]);
  assert.ok(mcc > 0 && mcc <= 1, `code MCC of LISTA: ${table[1][1]}`);
  // With the true dictionary given, LISTA (which learns its own) is refused at its editor.
  await page.selectOption('#setting', 'known_dictionary');
  await page.waitForFunction(() => document.querySelector('#methods .method:last-child [data-field="iterations"]')?.getAttribute('aria-invalid') === 'true');
  assert.match(await page.textContent('#config'), /setting with both codes and dictionary unknown/);
  await ctx.close();
});

await test('a lesson link hides the controls it names and keeps them hidden in its links', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#${LINK}&steps_hide=1&methods_hide=1&presets_hide=1&bogus_hide=1`);
  await waitState(page, 'ready');
  assert.equal(await page.inputValue('#steps'), '300', 'a hidden control still applies its value');
  assert.ok(!(await page.isVisible('#steps')));
  assert.ok(!(await page.isVisible('#methods')));
  assert.ok(!(await page.isVisible('.presets')));
  for (const id of ['#lr', '#runs', '#num_atoms', '#setting']) assert.ok(await page.isVisible(id), id);
  const hash = await page.evaluate(() => location.hash);
  for (const key of ['steps_hide=1', 'methods_hide=1', 'presets_hide=1']) {
    assert.ok(hash.includes(key), `${key} in ${hash}`);
  }
  assert.ok(!hash.includes('bogus_hide'), 'unknown controls are ignored');
  // Hiding every control of a fieldset hides the fieldset; a plain link shows everything again.
  await page.goto(`${origin}${BASE}#${LINK}&setting_hide=1`);
  await page.waitForFunction(() => document.getElementById('setting').closest('fieldset').hidden);
  await page.goto(`${origin}${BASE}#${LINK}`);
  await page.waitForFunction(() => !document.querySelector('[data-lesson-hidden]'));
  assert.ok(await page.isVisible('#steps'));
  assert.ok(await page.isVisible('#methods'));
  await ctx.close();
});

await test("a pause lands inside an evaluation of the paper's inference", async () => {
  // Sparse coding evaluates by 10,000 Adam steps on the test codes (seconds in wasm at n=1024);
  // the worker runs them in the same short slices as training, so the bar moves and Pause
  // takes effect while the codes of the first evaluation are still being inferred.
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#v=1&setting=unknown&methods=sc&steps=20&log=10&runs=1&seed=5`);
  await waitState(page, 'ready');
  await page.click('#play');
  await page.waitForFunction(() => /inferring test codes/.test(document.getElementById('status').textContent));
  await page.click('#play'); // Pause
  await waitState(page, 'paused');
  const status = await page.textContent('#status');
  assert.match(status, /0 \/ 20 training steps · paused while inferring test codes$/, status);
  const pct = parseFloat(status);
  assert.ok(pct > 0 && pct < 33.4, `the bar is part-way through the first of three evaluations: ${status}`);
  assert.equal((await summary(page))[0][1], '–', 'no evaluation has finished');
  await page.click('#play'); // Resume
  await waitState(page, 'finished');
  const mcc = parseFloat((await summary(page))[0][1]);
  assert.ok(mcc > 0 && mcc <= 1, `code MCC after the run: ${mcc}`);
  await ctx.close();
});

await test('Step takes every run to its next evaluation, inference included', async () => {
  // Sparse coding's evaluation is 10,000 inference steps: one press must still end with every
  // run trained to step 10 and scored there.
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#v=1&setting=unknown&methods=sae,sc&steps=20&log=10&runs=1&seed=5`);
  await waitState(page, 'ready');
  await page.click('#step');
  await page.waitForFunction(() => /· 20 \/ 40 training steps/.test(document.getElementById('status').textContent));
  await waitState(page, 'paused');
  await page.waitForFunction(() => !document.getElementById('step').disabled);
  const table = await summary(page);
  for (const row of table) assert.ok(parseFloat(row[1]) > 0, `${row[0]} was scored: ${row[1]}`);
  assert.doesNotMatch(await page.textContent('#status'), /inferring/);
  await page.click('#step');
  await waitState(page, 'finished');
  assert.match(await page.textContent('#status'), /40 \/ 40 training steps · done/);
  await ctx.close();
});

await test('a metric definition opens in place and leaves the experiment alone', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#${LINK}`);
  await waitState(page, 'ready');
  const hash = await page.evaluate(() => location.hash);
  assert.ok(!(await page.isVisible('#def-code-mcc')), 'definitions start closed');
  await page.click('a[href="#def-code-mcc"]');
  await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'def-code-mcc');
  assert.ok(await page.isVisible('#def-code-mcc'));
  assert.equal(await page.evaluate(() => location.hash), hash, 'the address still holds the experiment');
  assert.equal(await page.$$eval('.banner.error', (b) => b.filter((x) => !x.hidden).length), 0);
  assert.equal(await page.inputValue('#steps'), '300');
  assert.equal(await page.evaluate(() => document.body.dataset.state), 'ready');
  // From the keyboard too.
  await page.focus('a[href="#def-flops"]');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'def-flops');
  assert.equal(await page.evaluate(() => location.hash), hash);
  await ctx.close();
});

await test('the page runs under its Content-Security-Policy, which blocks injected scripts', async () => {
  const { ctx, page } = await newPage();
  const violations = [];
  await page.exposeFunction('reportViolation', (v) => violations.push(v));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => window.reportViolation(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.goto(`${origin}${BASE}#v=1&setting=unknown&methods=sae,mlp:h32&steps=40&log=20&runs=1&seed=2`);
  await waitState(page, 'ready');
  const policy = await page.$eval('meta[http-equiv="Content-Security-Policy"]', (m) => m.content);
  assert.match(policy, /script-src 'self' 'wasm-unsafe-eval'/);
  assert.doesNotMatch(policy, /unsafe-inline|'unsafe-eval'/);
  await page.click('#play');
  await waitState(page, 'finished');
  await page.click('#chart-code_mcc button:has-text("PNG")').catch(() => {});
  assert.deepEqual(violations, [], 'the page itself never trips its policy');
  // An injected inline script is refused (the refusal is the one console error expected here).
  const before = consoleProblems.length;
  const ran = await page.evaluate(() => {
    const s = document.createElement('script');
    s.textContent = 'window.__injected = 1';
    document.head.append(s);
    return window.__injected === 1;
  });
  assert.equal(ran, false, 'inline script blocked');
  await page.waitForFunction(() => true);
  const refusals = consoleProblems.splice(before).filter((m) => !/inline script violates the following Content Security Policy/.test(m));
  assert.deepEqual(refusals, []);
  assert.ok(violations.some((v) => v.startsWith('script-src')), violations.join('; '));
  await ctx.close();
});

await test('the service worker caches each build under its own name and drops older builds', async () => {
  const sw = await readFile(join(DIST, 'sw.js'), 'utf8');
  const id = sw.match(/([0-9a-f]{16})/);
  assert.ok(!sw.includes('__SPARSE_PLAYGROUND_BUILD__'), 'the build id was stamped in');
  assert.ok(id, 'sw.js names its cache by a 16-hex build id');
  const { ctx, page } = await newPage();
  // A cache left by an earlier deploy, made before this build's worker ever ran (from a page of
  // the origin that is not the app; the browser asks that one for /favicon.ico).
  await page.route('**/favicon.ico', (route) => route.fulfill({ status: 204 }));
  await page.goto(`${origin}${BASE}precache.json`);
  await page.evaluate(() => caches.open('sparse-playground-0123456789abcdef').then((c) => c.put('x', new Response('old'))));
  await page.goto(`${origin}${BASE}`);
  await page.evaluate(() => navigator.serviceWorker.ready);
  await page.waitForFunction(
    (build) => caches.keys().then((k) => (window.__keys = k)) && (window.__keys || []).join() === `sparse-playground-${build}`,
    id[1],
    { polling: 100 },
  );
  await ctx.close();
});

await test('CSV export neutralises spreadsheet formulas in method names from results files', async () => {
  const json = JSON.parse(await readFile(join(ARTIFACTS, 'results.json'), 'utf8'));
  json.methods[0].name = '=HYPERLINK("http://example.invalid","x")';
  json.methods[1].name = '@SUM(A1)';
  json.methods[2].name = '-2+3';
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}`);
  await waitState(page, 'ready');
  await page.setInputFiles('#load-json', { name: 'hostile.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(json)) });
  await page.waitForFunction(() => document.querySelectorAll('#summary tbody tr').length === 3);
  const [csv] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
  const path = join(ARTIFACTS, 'hostile.csv');
  await csv.saveAs(path);
  const lines = (await readFile(path, 'utf8')).trim().split('\n').slice(1);
  const names = new Set(lines.map((l) => l.match(/^"(?:[^"]|"")*"/)[0]));
  assert.deepEqual([...names].sort(), [`"'-2+3"`, `"'=HYPERLINK(""http://example.invalid"",""x"")"`, `"'@SUM(A1)"`].sort());
  await ctx.close();
});

await test('a link too large for the page says what it needs and builds nothing', async () => {
  const methods = Array(16).fill('mlp:h256').join(',');
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#v=1&setting=unknown&n=65536&methods=${methods}&runs=2&seed=3`);
  await waitState(page, 'refused');
  const message = await page.textContent('#config-error');
  assert.match(message, /memory: this experiment needs about [\d.]+ GiB/);
  assert.match(message, /16 method\(s\) x 2 run\(s\)/);
  assert.match(message, /reduce the runs/);
  assert.ok(await page.$eval('#config-error', (e) => { const r = e.getBoundingClientRect(); return r.height > 0; }));
  assert.equal(await page.inputValue('#num_samples'), '65536', 'the form shows what the link asked for');
  assert.ok(await page.isDisabled('#play'));
  // Bringing it within budget in the form starts it as usual.
  await page.fill('#num_samples', '256');
  await page.press('#num_samples', 'Tab');
  await waitState(page, 'ready');
  assert.ok(await page.isHidden('#config-error'));
  await ctx.close();
});

await test('a large link waits for Run before it is built', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#v=1&setting=unknown&n=65536&methods=mlp:h256&steps=1&log=1&runs=2&seed=3`);
  await waitState(page, 'deferred');
  assert.match(await page.textContent('#status'), /needs about \d+ MiB of memory: it is built when you press Run/);
  assert.ok(await page.isEnabled('#play'));
  await page.click('#play');
  await waitState(page, 'finished');
  assert.equal((await summary(page)).length, 1);
  await ctx.close();
});

await test('the largest experiment the page accepts runs to the end', async () => {
  // 8 MLPs with h=256 at the n that brings the estimate to the 1 GiB budget with 2 workers
  // (each holds its own copy of the data): one more sample is refused.
  const ctx = await browser.newContext();
  await ctx.addInitScript(() => Object.defineProperty(navigator, 'hardwareConcurrency', { get: () => 2 }));
  const { page } = await newPage(ctx);
  const link = (n) => `${origin}${BASE}#v=2&setting=unknown&n=${n}&methods=mlp:h256&runs=8&steps=2&log=1&seed=1&backend=cpu`;
  await page.goto(link(49160));
  await waitState(page, 'refused');
  assert.match(await page.textContent('#config-error'), /needs about 1\.0 GiB .*a copy in each of 2 workers/);
  await page.goto(link(49159));
  await page.reload();
  await waitState(page, 'deferred');
  assert.match(await page.textContent('#status'), /needs about 1024 MiB of memory/);
  await page.click('#play');
  await waitState(page, 'finished');
  assert.equal((await summary(page)).length, 1);
  await ctx.close();
});

await test('a pool of CPU workers gives the numbers one worker gives', async () => {
  const link = `${origin}${BASE}#v=1&setting=unknown&methods=sae,sc:fista:s50,mlp:h16&steps=60&log=30&runs=3&seed=4&backend=cpu`;
  const tables = [];
  for (const cores of [1, 3]) {
    const ctx = await browser.newContext();
    await ctx.addInitScript((n) => Object.defineProperty(navigator, 'hardwareConcurrency', { get: () => n }), cores);
    const { page } = await newPage(ctx);
    await page.goto(link);
    await waitState(page, 'ready');
    assert.equal(await page.inputValue('#backend'), 'cpu');
    assert.equal(await page.textContent('#backend-note'), `CPU: WebAssembly in ${cores} worker${cores === 1 ? '' : 's'}`);
    await page.click('#play');
    await waitState(page, 'finished');
    tables.push(await summary(page));
    await ctx.close();
  }
  assert.deepEqual(tables[1].map((r) => r.slice(0, 6)), tables[0].map((r) => r.slice(0, 6)));
});

await test('asking for the GPU where there is none says so and computes on the CPU', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#${LINK}&backend=gpu`);
  await waitState(page, 'ready');
  assert.equal(await page.inputValue('#backend'), 'gpu');
  const banner = await page.textContent('#banners');
  assert.match(banner, /Computing on the CPU: the GPU was asked for but/);
  assert.match(await page.textContent('#backend-note'), /^CPU: WebAssembly in \d+ workers?$/);
  // The control changes the link and restarts the experiment on the chosen backend.
  await page.selectOption('#backend', 'cpu');
  await page.waitForFunction(() => location.hash.includes('backend=cpu'));
  await waitState(page, 'ready');
  await page.click('#play');
  await waitState(page, 'finished');
  const results = await Promise.all([page.waitForEvent('download'), page.click('#export-json')]);
  const json = JSON.parse(await readFile(await results[0].path(), 'utf8'));
  assert.equal(json.backend.kind, 'cpu');
  await ctx.close();
});

await test('the GPU path runs in Chromium on WebGPU (SwiftShader) and agrees with the CPU', async () => {
  const gpuBrowser = await launchGpuBrowser();
  try {
    const ctx = await gpuBrowser.newContext({ acceptDownloads: true });
    const { page } = await newPage(ctx);
    const small = 'v=1&setting=unknown&methods=sae,sc:fista:s50,ito:s100&n=256&steps=60&log=30&runs=2&seed=4';
    await page.goto(`${origin}${BASE}#${small}&backend=gpu`);
    await waitState(page, 'ready');
    const note = await page.textContent('#backend-note');
    if (/^CPU/.test(note) && process.env.SPARSE_PLAYGROUND_REQUIRE_GPU !== '1') {
      console.log(`  skipped: no WebGPU adapter in this Chromium (${note})`);
      await ctx.close();
      return;
    }
    assert.match(note, /^GPU: .+ \(WebGPU/);
    assert.equal(await page.evaluate(() => document.body.dataset.backend), 'gpu');
    await page.click('#play');
    await waitState(page, 'finished');
    const gpuTable = await summary(page);
    await page.screenshot({ path: join(ARTIFACTS, 'playground-gpu.png'), fullPage: true });
    await page.selectOption('#backend', 'cpu');
    await waitState(page, 'ready');
    await page.click('#play');
    await waitState(page, 'finished');
    const cpuTable = await summary(page);
    for (let i = 0; i < cpuTable.length; i += 1) {
      const [g, c] = [parseFloat(gpuTable[i][1]), parseFloat(cpuTable[i][1])];
      assert.ok(Math.abs(g - c) < 0.02, `${cpuTable[i][0]}: code MCC GPU ${g} vs CPU ${c}`);
    }
    await ctx.close();
  } finally {
    await gpuBrowser.close();
  }
});

await test('no console errors or warnings', async () => {
  assert.deepEqual(consoleProblems, []);
});

await first?.ctx.close();
await finish('end-to-end, dist/ in Chromium');
