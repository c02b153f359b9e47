// End-to-end tests of sweeps in the page, in the system Chromium on the CPU worker pool: a
// small phase diagram opened from a link fills in with the theory curves and the empirical
// contour; a small scaling study draws a map per method, the difference map and the curve
// M = K ln(N/K); figures export as SVG and PNG, cells as CSV and JSON, and the JSON loads back;
// a reload keeps the cells done and Run computes only the rest; Pause answers at once; a chart
// over a few values ticks at them (biases: off, on); a malformed sweep link gives a message,
// not a blank page. Screenshots go to target/e2e/.
//
// Run: `npm run build && node tests/e2e/sweeps.mjs` (scripts/test.sh does both).
import { readFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { ARTIFACTS, BASE, TIMEOUT, browser, consoleProblems, finish, launchGpuBrowser, newPage, origin, test } from './harness.mjs';

await mkdir(ARTIFACTS, { recursive: true });

// 5 x 5 cells of the phase preset (N = 256, FISTA, 10 trials): about a second of work.
const PHASE = 'v=2&sweep=phase&axes=delta:0.2_0.4_0.6_0.8_1~rho:0.1_0.3_0.5_0.7_0.9&seed=3';
// The scaling study on 2 x 2 cells, 3 methods, 150 steps.
const SCALING = 'v=2&sweep=quick-scaling&axes=K:2~N:16_32~M:8_16&steps=150&seed=3';

const waitSweep = (page, value) =>
  page.waitForFunction((v) => document.body.dataset.sweepState === v, value, { timeout: TIMEOUT });
const doneRects = (page, fig) => page.$$eval(`figure[data-fig="${fig}"] rect[data-state="done"]`, (r) => r.length);

await test('a phase diagram opened from a link fills in with its theory curves and contour', async () => {
  const { ctx, page } = await newPage(await browser.newContext({ viewport: { width: 1440, height: 1000 }, acceptDownloads: true }));
  await page.goto(`${origin}${BASE}#${PHASE}&run=1`);
  await waitSweep(page, 'finished');
  assert.equal(await page.evaluate(() => document.body.dataset.mode), 'sweep');
  assert.match(await page.textContent('#sweep-status'), /^25 \/ 25 cells · done/);
  assert.equal(await page.$$eval('figure[data-fig="phase"]', (f) => f.length), 1, 'one panel for the one solver');
  assert.equal(await doneRects(page, 'phase'), 25);
  for (const id of ['theory-nonneg', 'theory-signed', 'contour']) {
    assert.equal(await page.$$eval(`figure[data-fig="phase"] polyline[data-overlay="${id}"]`, (p) => p.length), 1, id);
  }
  // FISTA on non-negative codes: the easy corner (many measurements, few atoms) succeeds, the
  // hard one (few measurements, dense codes) fails.
  const value = (d, r) =>
    page.$$eval(
      'figure[data-fig="phase"] rect[data-state="done"]',
      (rects, where) => Number(rects.find((e) => e.querySelector('title').textContent.startsWith(where)).dataset.value),
      `δ = M / N ${d}, ρ = K / M ${r}:`,
    );
  assert.ok((await value(1, 0.1)) > 0.9);
  assert.ok((await value(0.2, 0.9)) < 0.1);
  // FISTA stops on its duality gap, so a cell far below the l1 curve succeeds (with a fixed
  // 500 iterations it failed in 9 of 10 trials), and the caption says it converged everywhere.
  assert.ok((await value(0.2, 0.1)) >= 0.8);
  assert.equal(await page.$$eval('figure[data-fig="phase"] [data-mark]', (r) => r.length), 0);
  const caption = await page.textContent('figure[data-fig="phase"] figcaption');
  assert.match(caption, /duality gap/);
  assert.match(caption, /converged in all 25 cells done/);
  assert.match(caption, /relative error \|ŝ − s\| \/ \|s\| below 0\.01\. /);
  assert.match(caption, /duality gap is below 0\.00001 of half/);
  // Cells read out on hover and by keyboard, with the M, K and N they ran.
  const readout = () => page.textContent('figure[data-fig="phase"] .readout');
  await page.hover('figure[data-fig="phase"] rect[data-ix="0"][data-iy="0"]');
  assert.match(await readout(), /^δ = M \/ N 0\.2, ρ = K \/ M 0\.1: [\d.]+.* · M = 51, K = 5, N = 256$/);
  await page.focus('figure[data-fig="phase"] [tabindex="0"]');
  await page.keyboard.press('ArrowRight');
  assert.match(await readout(), /^δ = M \/ N 0\.4, ρ = K \/ M 0\.1: .* · M = 102, K = 10, N = 256$/);
  await page.keyboard.press('ArrowUp');
  assert.match(await readout(), /^δ = M \/ N 0\.4, ρ = K \/ M 0\.3: /);
  assert.equal(await page.getAttribute('figure[data-fig="phase"] [tabindex="0"]', 'data-cursor'), '1,1');
  await page.screenshot({ path: join(ARTIFACTS, 'sweep-phase.png'), fullPage: true });
  // No select of the sweep form cuts its chosen option short.
  const cut = await page.$$eval('#sweep-aside select', (sels) =>
    sels.filter((s) => s.offsetParent && s.scrollWidth > s.clientWidth + 1).map((s) => s.id || s.dataset.role),
  );
  assert.deepEqual(cut, []);
  // Exports: the figure as SVG and PNG, the cells as CSV.
  const [svg] = await Promise.all([page.waitForEvent('download'), page.click('figure[data-fig="phase"] button[data-export="svg"]')]);
  const svgText = await readFile(await svg.path(), 'utf8');
  assert.match(svgText, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svgText, /data-overlay="theory-nonneg"/);
  const [png] = await Promise.all([page.waitForEvent('download'), page.click('figure[data-fig="phase"] button[data-export="png"]')]);
  const pngBytes = await readFile(await png.path());
  assert.deepEqual([...pngBytes.subarray(1, 4)], [0x50, 0x4e, 0x47], 'a PNG file');
  assert.ok(pngBytes.length > 5000);
  const [csv] = await Promise.all([page.waitForEvent('download'), page.click('#sweep-export-csv')]);
  const rows = (await readFile(await csv.path(), 'utf8')).trim().split('\n');
  assert.equal(rows.length, 26, 'a header and one row per cell (one method)');
  assert.match(rows[0], /delta,rho/);
  await ctx.close();
});

await test('a scaling study draws a map per method, the difference map and M = K ln(N/K); its JSON loads back', async () => {
  const { ctx, page } = await newPage(await browser.newContext({ viewport: { width: 1440, height: 1000 }, acceptDownloads: true }));
  await page.goto(`${origin}${BASE}#${SCALING}&run=1`);
  await waitSweep(page, 'finished');
  assert.match(await page.textContent('#sweep-status'), /^4 \/ 4 cells · done/);
  const maps = await page.$$eval('figure[data-fig="map"] h3 > span:first-child', (s) => s.map((e) => e.textContent));
  assert.deepEqual(maps, ['SAE · K = 2', 'MLP (h=32) · K = 2', 'Sparse coding · K = 2']);
  assert.equal(await doneRects(page, 'map'), 12);
  assert.equal(await doneRects(page, 'difference'), 4);
  assert.match(await page.textContent('figure[data-fig="difference"] h3'), /Sparse coding − SAE/);
  assert.equal(await page.$$eval('polyline[data-overlay="scaling-curve"]', (p) => p.length), 4, 'on each map and the difference');
  assert.equal(await page.$$eval('figure[data-fig="compute"]', (f) => f.length), 1, 'MCC against FLOPs');
  // Axis labels carry no trailing zeros (5e+7, 0.45, 1; not 5.00e+7, 0.450, 1.00).
  const ticks = await page.$$eval('figure[data-fig="compute"] svg text', (t) => t.map((e) => e.textContent).filter((x) => /^-?[\d.]+(e[+-]\d+)?$/.test(x)));
  assert.ok(ticks.length >= 4, `${ticks}`);
  assert.deepEqual(ticks.filter((x) => /\.\d*0(e|$)|\.(e|$)/.test(x)), [], `${ticks}`);
  // and no two labels of the x axis overlap.
  const boxes = await page.$$eval('figure[data-fig="compute"] svg text[text-anchor]', (t) => {
    const numeric = t.filter((e) => /^-?[\d.]+(e[+-]\d+)?$/.test(e.textContent));
    const bottom = Math.max(...numeric.map((e) => Number(e.getAttribute('y'))));
    return numeric.filter((e) => Number(e.getAttribute('y')) === bottom).map((e) => { const b = e.getBBox(); return [b.x, b.x + b.width]; }).sort((a, b) => a[0] - b[0]);
  });
  assert.ok(boxes.length >= 2, JSON.stringify(boxes));
  boxes.slice(1).forEach((b, i) => assert.ok(b[0] >= boxes[i][1], `x labels overlap: ${JSON.stringify(boxes)}`));
  // Choosing the other pair of the difference redraws it.
  await page.selectOption('#sweep-diff-b', { label: 'MLP (h=32)' });
  await page.waitForFunction(() => /Sparse coding − MLP/.test(document.querySelector('figure[data-fig="difference"] h3').textContent));
  await page.screenshot({ path: join(ARTIFACTS, 'sweep-scaling.png'), fullPage: true });
  const [json] = await Promise.all([page.waitForEvent('download'), page.click('#sweep-export-json')]);
  const path = join(ARTIFACTS, 'sweep-scaling.json');
  await json.saveAs(path);
  const file = JSON.parse(await readFile(path, 'utf8'));
  assert.equal(file.units.length, 4);
  const before = await page.$$eval('figure[data-fig="map"] rect[data-state="done"]', (r) => r.map((e) => e.dataset.value));
  await ctx.close();

  // A fresh browser (nothing stored) opens the file and shows the same cells.
  const fresh = await newPage(await browser.newContext({ viewport: { width: 1440, height: 1000 } }));
  await fresh.page.goto(`${origin}${BASE}`);
  await fresh.page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: TIMEOUT });
  await fresh.page.setInputFiles('#load-json', path);
  await waitSweep(fresh.page, 'finished');
  assert.equal(await fresh.page.evaluate(() => document.body.dataset.mode), 'sweep');
  assert.match(await fresh.page.textContent('#sweep-status'), /^4 \/ 4 cells · done/);
  const after = await fresh.page.$$eval('figure[data-fig="map"] rect[data-state="done"]', (r) => r.map((e) => e.dataset.value));
  assert.deepEqual(after, before);
  await fresh.ctx.close();
});

await test('a sweep preset loads its settings and waits for Run', async () => {
  const { ctx, page } = await newPage(await browser.newContext({ viewport: { width: 1440, height: 1000 } }));
  await page.goto(`${origin}${BASE}#${PHASE}`);
  await waitSweep(page, 'ready');
  await page.click('[data-sweep-preset="quick-scaling"]');
  await page.waitForFunction(() => document.querySelector('#sweep-share-link').value.includes('sweep=quick-scaling'));
  await page.waitForTimeout(1500);
  assert.equal(await page.evaluate(() => document.body.dataset.sweepState), 'ready', 'not started by the click');
  assert.equal(await page.$$eval('figure rect[data-state="done"]', (r) => r.length), 0);
  // A quick preset says how it compares with its paper-size run (checked with the CLI) ...
  assert.match(await page.textContent('#sweep-note'), /At the paper’s size \(K = 3 and 9, 3 seeds, 50,000 steps; the CLI\).*too short/);
  // ... and an edited one no longer claims to be that preset.
  await page.fill('#sweep-seeds', '2');
  await page.press('#sweep-seeds', 'Tab');
  await page.waitForFunction(() => !document.querySelector('#sweep-note').textContent.includes('paper’s size'));
  await page.click('[data-sweep-preset="quick-bias"]');
  await page.waitForFunction(() => document.querySelector('#sweep-note').textContent.includes('the order is the same'));
  // Every quick sweep has its comparison, the width sweep's included.
  await page.click('[data-sweep-preset="quick-width"]');
  await page.waitForFunction(() => /At the paper’s size .*flat in the hidden width/.test(document.querySelector('#sweep-note').textContent));
  await ctx.close();
});

await test('a sweep shows its estimated time before it starts, and a long one asks first', async () => {
  const { ctx, page } = await newPage(await browser.newContext({ viewport: { width: 1440, height: 1000 } }));
  await page.goto(`${origin}${BASE}#${PHASE}`);
  await waitSweep(page, 'ready');
  await page.waitForFunction(() => document.body.dataset.sweepEstimate !== undefined);
  const short = Number(await page.evaluate(() => document.body.dataset.sweepEstimate));
  assert.ok(short > 0 && short < 120, `the 5 x 5 phase diagram estimated at ${short} s`);
  assert.match(await page.textContent('#sweep-status'), /^0 \/ 25 cells · about \d+ s on this machine$/);
  // The probe's cells are not kept: nothing is computed before Run.
  assert.equal(await page.$$eval('figure rect[data-state="done"]', (r) => r.length), 0);
  // The paper's scaling study: 72 units of 50,000 steps, far over two minutes.
  await page.click('[data-sweep-preset="scaling"]');
  await page.waitForFunction(() => Number(document.body.dataset.sweepEstimate) > 120, null, { timeout: TIMEOUT });
  assert.match(await page.textContent('#sweep-status'), /· about \d+ (h|min)\b.* on this machine$/);
  await page.click('#sweep-play');
  assert.equal(await page.isVisible('#sweep-long-run'), true);
  assert.match(await page.textContent('#sweep-long-run-text'), /estimated to take about \d+ (h|min)\b.* on this machine/);
  await page.click('#sweep-long-run-no');
  assert.equal(await page.isVisible('#sweep-long-run'), false);
  assert.equal(await page.evaluate(() => document.body.dataset.sweepState), 'ready');
  await ctx.close();
});

await test('an invalid solver box marks its field, disables Run with the reason, and a fix enables it', async () => {
  const { ctx, page } = await newPage(await browser.newContext({ viewport: { width: 1440, height: 1000 } }));
  await page.goto(`${origin}${BASE}#${PHASE}`);
  await waitSweep(page, 'ready');
  assert.equal(await page.isDisabled('#sweep-play'), false);
  // Ticking a solver fills its box with its default.
  await page.check('[data-solver="adam"]');
  await page.waitForFunction(() => /solvers=fista(:[\w.-]+)*,adam/.test(location.hash));
  assert.match(await page.inputValue('[data-solver-steps="adam"]'), /^[1-9]\d*$/);
  const hash = await page.evaluate(() => location.hash);
  await page.fill('[data-solver-steps="adam"]', '0');
  await page.press('[data-solver-steps="adam"]', 'Tab');
  await page.waitForFunction(() => document.querySelector('[data-solver-steps="adam"]').getAttribute('aria-invalid') === 'true');
  const note = await page.$eval('[data-solver-steps="adam"]', (el) => document.getElementById(el.getAttribute('aria-describedby'))?.textContent || '');
  assert.match(note, /between 1 and/);
  assert.equal(await page.isDisabled('#sweep-play'), true, 'Run waits for a valid form');
  assert.match(await page.textContent('#sweep-play-why'), /^Fix the marked field to run: must be between 1 and/);
  assert.equal(await page.evaluate(() => location.hash), hash, 'the link keeps the last valid sweep');
  await page.fill('[data-solver-steps="adam"]', '200');
  await page.press('[data-solver-steps="adam"]', 'Tab');
  await page.waitForFunction(() => !document.querySelector('#sweep-form [aria-invalid="true"]'));
  assert.equal(await page.isDisabled('#sweep-play'), false);
  assert.equal(await page.isVisible('#sweep-play-why'), false);
  assert.equal(await page.$$eval('#sweep-form .field-error', (e) => e.length), 0);
  await ctx.close();
});

await test('cells whose solver stopped at its cap unconverged are marked, keyed and counted', async () => {
  const { ctx, page } = await newPage(await browser.newContext({ viewport: { width: 1440, height: 1000 } }));
  await page.goto(`${origin}${BASE}#v=2&sweep=phase&axes=delta:0.2~rho:0.1_0.3&solvers=fista:s50:tol0.00001&seed=3&run=1`);
  await waitSweep(page, 'finished');
  assert.equal(await page.$$eval('figure[data-fig="phase"] path[data-mark="unconverged"]', (r) => r.length), 2);
  assert.equal(await page.$$eval('figure[data-fig="phase"] rect[data-key="unconverged"]', (r) => r.length), 1);
  assert.match(await page.textContent('figure[data-fig="phase"] figcaption'), /reached its cap unconverged in 2 of the 2 cells done/);
  const title = await page.$eval('figure[data-fig="phase"] rect[data-state="done"] title', (t) => t.textContent);
  assert.match(title, /stopped at its cap unconverged in 1 of 1 seed/);
  // The iterations each cell took are a metric of their own.
  await page.selectOption('#sweep-metric', 'iterations');
  await page.waitForFunction(() => [...document.querySelectorAll('figure[data-fig="phase"] rect[data-state="done"]')].every((r) => r.dataset.value === '50'));
  await ctx.close();
});

await test('a phase diagram also scores encoders trained in each cell, ticked in the form and kept in the link', async () => {
  const { ctx, page } = await newPage(await browser.newContext({ viewport: { width: 1440, height: 1000 } }));
  await page.goto(`${origin}${BASE}#v=2&sweep=phase&axes=delta:0.5~rho:0.125_0.5&seed=3`);
  await waitSweep(page, 'ready');
  assert.equal(await page.isDisabled('#sweep-enc-steps'), true, 'no encoder, nothing to train');
  await page.fill('#sweep-N', '32');
  await page.press('#sweep-N', 'Tab');
  await page.waitForFunction(() => document.querySelector('#sweep-N').value === '32');
  await page.fill('#sweep-trials', '64');
  await page.press('#sweep-trials', 'Tab');
  await page.check('[data-encoder="sae"]');
  await page.waitForFunction(() => !document.querySelector('#sweep-enc-steps').disabled);
  await page.check('[data-encoder="topk_sae"]');
  await page.fill('#sweep-enc-steps', '60');
  await page.press('#sweep-enc-steps', 'Tab');
  await page.waitForFunction(() => document.querySelector('#sweep-share-link').value.includes('steps=60'));
  const link = (await page.inputValue('#sweep-share-link')).replace('&run=1', '');
  assert.match(link, /methods=sae,topk:k0(&|$)/, link);
  // Before the run every cell is hatched (never the scale's white, which means 0%) and the
  // key under each panel says so.
  await page.waitForFunction(() => document.querySelectorAll('figure[data-fig="phase"]').length === 3);
  assert.equal(await page.$$eval('figure[data-fig="phase"] rect[data-state="pending"]', (r) => r.filter((e) => e.getAttribute('fill').startsWith('url(#hatch')).length), 6);
  assert.equal(await page.$$eval('figure[data-fig="phase"] rect[data-key="pending"]', (r) => r.length), 3);
  await page.click('#sweep-play');
  await waitSweep(page, 'finished');
  // The trained SAE recovers no signal to 1e-2 here: its cells are done and read "0", not pending.
  assert.equal(await page.$$eval('figure[data-fig="phase"] rect[data-state="pending"], figure[data-fig="phase"] rect[data-key]', (r) => r.length), 0);
  const printed = await page.$$eval('figure[data-fig="phase"]', (figs) =>
    figs.map((f) => [
      [...f.querySelectorAll('rect[data-state="done"]')].map((r) => Number(r.dataset.value)),
      [...f.querySelectorAll('text[data-cell-label]')].map((t) => Number(t.textContent)),
    ]),
  );
  for (const [values, labels] of printed) {
    assert.equal(labels.length, values.length, 'each cell prints its value');
    // Printed to 3 significant digits.
    values.forEach((v, i) => assert.ok(Math.abs(labels[i] - v) <= 5e-3, `${labels} against ${values}`));
  }
  const titles = await page.$$eval('figure[data-fig="phase"] h3 > span:first-child', (t) => t.map((e) => e.textContent));
  assert.equal(titles.length, 3, `${titles}`);
  assert.ok(titles.some((t) => /^SAE\b/.test(t)) && titles.some((t) => /TopK SAE/.test(t)), `${titles}`);
  assert.equal(await doneRects(page, 'phase'), 6, 'two cells in each of three panels');
  const captions = await page.$$eval('figure[data-fig="phase"] figcaption', (c) => c.map((e) => e.textContent));
  assert.equal(captions.filter((c) => c.includes('This encoder trained 60 step(s) per cell on as many other signals')).length, 2, `${captions}`);
  // Encoders are scored by the atoms they pick (the caption says so), solvers by their values.
  assert.equal(captions.filter((c) => c.includes('its K largest entries are exactly the true support')).length, 2, `${captions}`);
  assert.equal(captions.filter((c) => c.includes('relative error')).length, 1, `${captions}`);
  await page.screenshot({ path: join(ARTIFACTS, 'sweep-encoders.png'), fullPage: true });
  // The link reopens the same sweep with the encoders ticked and their steps.
  const fresh = await newPage(await browser.newContext({ viewport: { width: 1440, height: 1000 } }));
  await fresh.page.goto(link);
  await waitSweep(fresh.page, 'ready');
  assert.equal(await fresh.page.isChecked('[data-encoder="sae"]'), true);
  assert.equal(await fresh.page.isChecked('[data-encoder="topk_sae"]'), true);
  assert.equal(await fresh.page.isChecked('[data-encoder="mlp"]'), false);
  assert.equal(await fresh.page.inputValue('#sweep-enc-steps'), '60');
  // Unticking every encoder leaves a solvers-only sweep that trains nothing.
  await fresh.page.uncheck('[data-encoder="sae"]');
  await fresh.page.uncheck('[data-encoder="topk_sae"]');
  await fresh.page.waitForFunction(() => document.querySelector('#sweep-enc-steps').disabled);
  assert.equal(await fresh.page.isVisible('#sweep-error'), false);
  await fresh.ctx.close();
  await ctx.close();
});

await test('a reload keeps the cells done, Run computes only the rest, and Pause answers at once', async () => {
  const { ctx, page } = await newPage(await browser.newContext({ viewport: { width: 1280, height: 900 } }));
  // 8 cells of 1,500 steps each: long enough to interrupt.
  const link = 'v=2&sweep=quick-scaling&axes=K:2~N:16_32_48_64~M:8_16&steps=1500&seed=4';
  await page.goto(`${origin}${BASE}#${link}&run=1`);
  await page.waitForFunction(() => Number(document.body.dataset.sweepCells) >= 2, null, { timeout: TIMEOUT });
  const t0 = Date.now();
  await page.click('#sweep-play');
  await waitSweep(page, 'paused');
  assert.ok(Date.now() - t0 < 2000, `Pause took ${Date.now() - t0} ms`);
  const kept = Number(await page.evaluate(() => document.body.dataset.sweepCells));
  assert.ok(kept >= 2 && kept < 8, `${kept} cells done`);
  // The picture, the count and what is saved agree once paused (a unit reported in the last
  // slice is drawn at once, not at the next throttled redraw).
  assert.match(await page.textContent('#sweep-status'), new RegExp(`^${kept} / 8 cells · paused`));
  const drawn = await page.$$eval('figure[data-fig="map"]', (f) => f.map((e) => e.querySelectorAll('rect[data-state="done"]').length));
  assert.ok(drawn.length > 0 && drawn.every((n) => n === kept), `cells drawn per map ${drawn}, ${kept} done`);
  await page.reload();
  await waitSweep(page, 'ready');
  assert.equal(Number(await page.evaluate(() => document.body.dataset.sweepCells)), kept);
  assert.match(await page.textContent('#sweep-status'), new RegExp(`^${kept} / 8 cells · kept from before`));
  assert.equal(await page.textContent('#sweep-play'), 'Resume sweep');
  const keptValues = await page.$$eval('figure[data-fig="map"] rect[data-state="done"]', (r) => r.map((e) => e.dataset.value));
  await page.click('#sweep-play');
  await waitSweep(page, 'finished');
  assert.match(await page.textContent('#sweep-status'), /^8 \/ 8 cells · done/);
  // The kept cells are the ones shown before (not recomputed into something else).
  const all = await page.$$eval('figure[data-fig="map"] rect[data-state="done"]', (r) => r.map((e) => e.dataset.value));
  for (const v of keptValues) assert.ok(all.includes(v), `kept value ${v} still shown`);
  await ctx.close();
});

await test('the TopK study compares the TopK SAE with sparse coding truncated after L1 and optimised through a TopK', async () => {
  const { ctx, page } = await newPage(await browser.newContext({ viewport: { width: 1440, height: 1000 } }));
  await page.goto(`${origin}${BASE}#v=2&sweep=quick-topk&axes=k:1_3&steps=100&seed=2&run=1`);
  await waitSweep(page, 'finished');
  const legend = await page.$$eval('figure[data-fig="line"] svg text', (t) => t.map((e) => e.textContent));
  for (const name of ['TopK SAE', 'Sparse coding (L1 then top-k)', 'Sparse coding (top-k inside)']) {
    assert.ok(legend.includes(name), `${name} in ${legend}`);
  }
  assert.equal(await page.$$eval('figure[data-fig="compute"] circle', (c) => c.length), 6, 'every cell of every method');
  // The same solver is a choice of the one-experiment form.
  await page.click('#mode-experiment');
  await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: TIMEOUT });
  const options = await page.$$eval('select[data-field="solver"] option', (o) => o.map((e) => e.value));
  assert.ok(options.includes('adam_topk'), `${options}`);
  await ctx.close();
});

await test('axes taken together: the paper\'s width study runs its three shapes, and a small one draws them', async () => {
  const { ctx, page } = await newPage(await browser.newContext({ viewport: { width: 1440, height: 1000 }, acceptDownloads: true }));
  // The paper-size preset: (N, M, K) as three shapes over six widths, not run here.
  await page.goto(`${origin}${BASE}#v=2&sweep=width&seed=0`);
  await waitSweep(page, 'ready');
  assert.match(await page.textContent('#sweep-size'), /^18 cell\(s\) × 3 seed\(s\) = 54 units/);
  const boxes = await page.$$eval('#sweep-axes input[data-role="with"]', (b) => b.map((e) => e.checked));
  assert.deepEqual(boxes, [true, true, false], 'M and K go with N; the widths multiply');
  // A small one, paired in the form: unticking multiplies the grid again.
  await page.goto(`${origin}${BASE}#v=2&sweep=quick-width&axes=N:12_16,K:2_4~h:8_16&steps=40&seed=1`);
  await waitSweep(page, 'ready');
  assert.match(await page.textContent('#sweep-size'), /^4 cell\(s\)/);
  await page.uncheck('#sweep-axes input[data-role="with"][data-axis="1"]');
  await page.waitForFunction(() => /^8 cell\(s\)/.test(document.querySelector('#sweep-size').textContent));
  await page.waitForFunction(() => location.hash.includes('axes=N:12_16~K:2_4~h:8_16'));
  await page.check('#sweep-axes input[data-role="with"][data-axis="1"]');
  await page.waitForFunction(() => /^4 cell\(s\)/.test(document.querySelector('#sweep-size').textContent));
  await page.click('#sweep-play');
  await waitSweep(page, 'finished');
  const xLabels = await page.$$eval('figure[data-fig="map"] svg text', (t) => t.map((e) => e.textContent));
  assert.ok(xLabels.some((l) => l.includes('atoms N (with K 2, 4)')), xLabels.join(' | '));
  assert.equal(await doneRects(page, 'map'), 4);
  await page.screenshot({ path: join(ARTIFACTS, 'sweep-shapes.png'), fullPage: true });
  const [csv] = await Promise.all([page.waitForEvent('download'), page.click('#sweep-export-csv')]);
  const rows = (await readFile(await csv.path(), 'utf8')).trim().split('\n');
  assert.match(rows[0], /^cell,N,K,h,seed/);
  assert.ok(rows.slice(1).every((r) => /^\d+,(12,2|16,4),/.test(r)), rows.join('\n'));
  await ctx.close();
});

await test('a sweep over a few values ticks its chart at them and labels its Pareto points: biases read off and on', async () => {
  const { ctx, page } = await newPage(await browser.newContext({ viewport: { width: 1440, height: 1000 } }));
  await page.goto(`${origin}${BASE}#v=2&sweep=quick-bias&steps=150&seed=3&run=1`);
  await waitSweep(page, 'finished');
  assert.equal(await page.textContent('figure[data-fig="line"] h3 > span:first-child'), 'Code MCC against biases');
  const ticks = await page.$$eval('figure[data-fig="line"] svg text', (t) => t.map((e) => e.textContent));
  assert.ok(ticks.includes('off') && ticks.includes('on'), `${ticks}`);
  assert.ok(!ticks.includes('0.2') && !ticks.includes('0.5'), `no ticks between the values: ${ticks}`);
  // The Pareto view labels each point with its value of the axis.
  const tags = await page.$$eval('figure[data-fig="pareto"] text[data-point-tag]', (t) => t.map((e) => e.textContent).sort());
  assert.deepEqual(tags, ['off', 'off', 'on', 'on'], 'two methods, biases off and on');
  await ctx.close();
});

await test('on a phone the sweep fits the screen with its run controls first', async () => {
  const { ctx, page } = await newPage(await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true }));
  await page.goto(`${origin}${BASE}#${SCALING}&run=1`);
  await waitSweep(page, 'finished');
  const [scroll, inner] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(scroll <= inner, `no sideways scroll: ${scroll} > ${inner}`);
  const play = await page.locator('#sweep-play').boundingBox();
  assert.ok(play.y + play.height <= 844, 'Run sweep is on the first screen');
  await page.screenshot({ path: join(ARTIFACTS, 'sweep-phone.png'), fullPage: true });
  await ctx.close();
});

await test('a malformed sweep link gives a message and a working page', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#v=2&sweep=phase&axes=delta:0.5_x`);
  await page.waitForSelector('.banner.error');
  assert.match(await page.textContent('.banner.error'), /sweep link could not be opened.*axes/);
  await waitSweep(page, 'ready');
  assert.ok((await page.$$eval('figure[data-fig="phase"]', (f) => f.length)) >= 1, 'the phase preset is shown instead');
  // Absurd sizes are refused before anything is built.
  await page.goto(`${origin}${BASE}#v=2&sweep=phase&N=100000000`);
  await page.waitForFunction(() => /sweep link could not be opened/.test(document.querySelector('.banner.error')?.textContent || ''));
  await ctx.close();
});

await test('on WebGPU (SwiftShader) a sweep computes its cells in stacks and agrees with the CPU pool', async () => {
  const gpuBrowser = await launchGpuBrowser();
  try {
    const ctx = await gpuBrowser.newContext({ viewport: { width: 1440, height: 1000 }, acceptDownloads: true });
    const { page } = await newPage(ctx);
    // 2 x 2 cells at N = 64 (FISTA's fused kernel), 2 seeds: a stack per delta of 4 units.
    const small = 'v=2&sweep=phase&axes=delta:0.3_0.8~rho:0.1_0.5&N=64&seeds=2&seed=5';
    const cells = async (backend) => {
      await page.goto(`${origin}${BASE}#${small}&backend=${backend}&run=1`);
      // The time before Run is timed where the units will compute (the GPU's stacks, or the
      // CPU's pool when auto passes over a software adapter).
      const estimated = await (await page.waitForFunction(() => document.body.dataset.sweepEstimateOn, null, { timeout: TIMEOUT })).jsonValue();
      await waitSweep(page, 'finished');
      assert.equal(await page.inputValue('#sweep-backend'), backend);
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#sweep-export-json')]);
      const json = JSON.parse(await readFile(await download.path(), 'utf8'));
      await page.evaluate(() => localStorage.clear());
      return { ...json, estimated };
    };
    const onGpu = await cells('gpu');
    if (onGpu.backend.kind !== 'gpu' && process.env.SPARSE_PLAYGROUND_REQUIRE_GPU !== '1') {
      console.log(`  skipped: no WebGPU adapter in this Chromium (${onGpu.backend.notice})`);
      return;
    }
    assert.equal(onGpu.backend.kind, 'gpu', onGpu.backend.notice);
    assert.equal(onGpu.estimated, 'gpu');
    assert.equal(await page.evaluate(() => document.body.dataset.sweepBackend), 'gpu');
    await page.screenshot({ path: join(ARTIFACTS, 'sweep-gpu.png'), fullPage: true });
    const onCpu = await cells('cpu');
    assert.equal(onCpu.backend.kind, 'cpu');
    assert.equal(onGpu.units.length, 8);
    assert.equal(onCpu.units.length, 8);
    for (const [i, u] of onGpu.units.entries()) {
      const c = onCpu.units[i];
      assert.deepEqual([u.cell, u.seed], [c.cell, c.seed]);
      const [g, p] = [u.methods[0].recovery.success_rate, c.methods[0].recovery.success_rate];
      // A test signal on the tolerance may tip either way: one in ten at most.
      assert.ok(Math.abs(g - p) <= 0.1 + 1e-9, `cell ${u.cell} seed ${u.seed}: success GPU ${g} vs CPU ${p}`);
    }
    assert.equal(onCpu.estimated, 'cpu');
    // The link keeps the backend asked for.
    assert.match(await page.inputValue('#sweep-share-link'), /backend=cpu/);
    // Auto passes over the software adapter: the CPU's pool computes, and was timed.
    const onAuto = await cells('auto');
    assert.equal(onAuto.backend.kind, 'cpu');
    assert.equal(onAuto.estimated, 'cpu');
  } finally {
    await gpuBrowser.close();
  }
});

if (consoleProblems.length) {
  await test('no console errors or warnings', async () => assert.deepEqual(consoleProblems, []));
}
await finish('sweeps');
