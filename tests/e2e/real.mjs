// End-to-end tests of real activations in the page, in the system Chromium: the shipped sample
// of SmolLM2-135M activations loads from a link, a small SAE and SAE + FISTA train on it, and the
// table shows the amortisation gap (zero for the solver, positive for the SAE) beside the compute
// frontier; a bad file is refused with its reason and keeps the sample; a link with an unknown
// key says so; an empty field, or a value the engine refuses, disables Run with the reason
// beside it; the time of a run is shown before it starts, a long one asks first, and a run's
// time calibrates the next estimates. Screenshots go to target/e2e/.
//
// Run: `npm run build && node tests/e2e/real.mjs` (scripts/test.sh does both).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { ARTIFACTS, BASE, TIMEOUT, browser, consoleProblems, finish, launchGpuBrowser, newPage, origin, test } from './harness.mjs';
import { npyHeader } from '../../bench/npy.mjs';

await mkdir(ARTIFACTS, { recursive: true });

// 128 latents, 60 steps of batches of 128 at lambda 0.5, 32 tokens analysed, LISTA with T = 2:
// a few seconds of work.
const SMALL = 'real=sample&N=128&steps=60&l1=0.5&batch=128&gap=32&T=2&methods=sae,ito,lista';
const waitReal = (page, value) =>
  page.waitForFunction((v) => document.body.dataset.realState === v, value, { timeout: TIMEOUT });

await test('the sample trains an SAE, SAE + FISTA and LISTA and shows the gap, the frontier and features', async () => {
  const { ctx, page } = await newPage(await browser.newContext({ viewport: { width: 1440, height: 1100 }, acceptDownloads: true }));
  await page.goto(`${origin}${BASE}#${SMALL}&run=1`);
  await waitReal(page, 'finished');
  assert.equal(await page.evaluate(() => document.body.dataset.mode), 'real');
  assert.equal(await page.getAttribute('#mode-real', 'aria-pressed'), 'true');
  assert.match(await page.textContent('#real-source'), /4,064 tokens × 576 \(float16\), token texts in 32 contexts/);
  assert.match(await page.textContent('#real-status'), /^Done/);
  const rows = await page.$$eval('#real-table tbody tr', (trs) =>
    trs.map((tr) => ({ name: tr.dataset.method, gap: Number(tr.querySelector('[data-gap]')?.dataset.gap), l0: Number(tr.cells[2].textContent) })),
  );
  // Not the trivial optimum (all codes zero, which a too-large lambda gives).
  assert.ok(rows.every((r) => r.l0 > 1), JSON.stringify(rows));
  assert.deepEqual(rows.map((r) => r.name), ['SAE', 'SAE + ITO (fista)', 'LISTA (T=2)']);
  // The solver is the optimum up to its tolerance; the one-step encoder is not.
  assert.ok(rows[1].gap < 0.01, `SAE + FISTA gap ${rows[1].gap}`);
  assert.ok(rows[0].gap > 0.01, `SAE gap ${rows[0].gap}`);
  assert.ok(Number.isFinite(rows[2].gap) && rows[2].gap > -1e-4, `LISTA gap ${rows[2].gap}`);
  // The frontier: both methods' encoder-and-warm-start lines and FISTA-from-zero lines.
  assert.equal(await page.getAttribute('#real-frontier', 'data-series'), '6');
  assert.ok((await page.$$eval('#real-frontier svg circle', (c) => c.length)) > 10);
  assert.match(await page.textContent('#real-frontier figcaption'), /held-out tokens/);
  // The same frontier in explained variance at each method's encoder's L0.
  await page.selectOption('#real-frontier-y', 'ev');
  await page.waitForFunction(() => document.querySelector('#real-frontier').dataset.y === 'ev');
  assert.equal(await page.getAttribute('#real-frontier', 'data-series'), '6');
  assert.match(await page.textContent('#real-frontier'), /explained variance at the encoder's L0/);
  assert.match(await page.textContent('#real-frontier figcaption'), /SAE \d+/);
  assert.ok((await page.$$eval('#real-frontier svg circle', (c) => c.length)) > 10);
  await page.selectOption('#real-frontier-y', 'excess');
  // The link reproduces the settings; the results download as the CLI's JSON.
  assert.match(await page.inputValue('#real-share-link'), new RegExp(`#${SMALL}$`));
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#real-export')]);
  const saved = JSON.parse(await (await download.createReadStream()).toArray().then((b) => Buffer.concat(b).toString()));
  assert.equal(saved.kind, 'real_activations');
  assert.equal(saved.source.tokens, 4064);
  for (const m of saved.methods) {
    for (const key of ['explained_variance', 'l0', 'dead_latents', 'amortisation_gap']) assert.ok(key in m, key);
  }
  // Feature views: the most active feature of the SAE opens with its top tokens in context
  // (the sample's texts), its histogram, its neighbours and its match in the other method.
  await page.waitForFunction(() => document.querySelector('#real-feature-view').dataset.shown);
  assert.equal(await page.isHidden('#real-features'), false);
  const shown = await page.getAttribute('#real-feature-view', 'data-shown');
  assert.match(shown, /^0:\d+$/);
  const top = await page.$$eval('[data-role="top-tokens"] li', (lis) => lis.map((li) => ({ mark: li.querySelector('mark')?.textContent, text: li.textContent })));
  assert.equal(top.length, 12);
  assert.ok(top.every((t) => typeof t.mark === 'string'), 'each top token is marked in its context');
  assert.ok(top.some((t) => t.text.length > t.mark.length + 8), 'with text before it');
  assert.equal(await page.$$eval('#real-feature-view svg rect', (r) => r.length), 20);
  assert.equal(await page.$$eval('[data-role="nearest"] button', (b) => b.length), 8);
  assert.equal(await page.$$eval('[data-role="matched"] button', (b) => b.length), 2);
  // A neighbour's button opens that feature; the match opens the other method's.
  const next = await page.textContent('[data-role="nearest"] button');
  await page.click('[data-role="nearest"] button');
  await page.waitForFunction((s) => document.querySelector('#real-feature-view').dataset.shown !== s, shown);
  assert.equal(await page.getAttribute('#real-feature-view', 'data-shown'), `0:${next.split('#')[1]}`);
  await page.click('[data-role="matched"] button');
  await page.waitForFunction(() => document.querySelector('#real-feature-view').dataset.shown.startsWith('1:'));
  assert.equal(await page.inputValue('#real-feature-method'), '1');
  await page.screenshot({ path: join(ARTIFACTS, 'real-sample.png'), fullPage: true });
  await ctx.close();
});

await test('methods shared between workers give the numbers of one worker, and their features match across workers', async () => {
  // The same run with one core and with three: one worker, then one per method.
  const exported = [];
  for (const cores of [1, 3]) {
    const { ctx, page } = await newPage(await browser.newContext({ acceptDownloads: true }));
    await page.addInitScript((n) => Object.defineProperty(navigator, 'hardwareConcurrency', { get: () => n }), cores);
    await page.goto(`${origin}${BASE}#${SMALL}&run=1`);
    await waitReal(page, 'finished');
    assert.equal(await page.evaluate(() => document.body.dataset.realWorkers), String(cores));
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#real-export')]);
    const saved = JSON.parse(await (await download.createReadStream()).toArray().then((b) => Buffer.concat(b).toString()));
    for (const m of saved.methods) for (const r of m.log) delete r.wall_s;
    exported.push(saved);
    // The first feature of the SAE, matched in the two methods computed by the other workers.
    await page.waitForFunction(() => document.querySelector('#real-feature-view').dataset.shown);
    const matched = await page.$$eval('[data-role="matched"] button', (b) => b.map((x) => x.textContent));
    assert.equal(matched.length, 2, JSON.stringify(matched));
    exported.push(matched);
    await ctx.close();
  }
  assert.deepEqual(exported[2], exported[0]);
  assert.deepEqual(exported[3], exported[1]);
});

await test('BatchTopK and JumpReLU SAEs train on the sample from a link and show their gap', async () => {
  const link = 'real=sample&N=128&steps=60&l1=0.5&batch=128&gap=32&k=8&methods=batchtopk,jumprelu';
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#${link}&run=1`);
  await waitReal(page, 'finished');
  assert.equal(await page.isChecked('#real-m-batchtopk'), true);
  assert.equal(await page.isChecked('#real-m-jumprelu'), true);
  assert.equal(await page.isChecked('#real-m-sae'), false);
  const rows = await page.$$eval('#real-table tbody tr', (trs) =>
    trs.map((tr) => ({ name: tr.dataset.method, gap: Number(tr.querySelector('[data-gap]')?.dataset.gap), l0: Number(tr.cells[2].textContent) })),
  );
  assert.deepEqual(rows.map((r) => r.name), ['BatchTopK SAE (k=8)', 'JumpReLU SAE']);
  for (const r of rows) {
    assert.ok(Number.isFinite(r.gap) && r.gap > -1e-4, JSON.stringify(r));
    assert.ok(r.l0 > 1, JSON.stringify(r));
  }
  assert.match(await page.inputValue('#real-share-link'), new RegExp(`#${link}$`));
  await ctx.close();
});

await test('a bad activation file is refused with its reason and the sample stays', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#real=sample`);
  await waitReal(page, 'ready');
  await page.setInputFiles('#real-file', { name: 'bad.npy', mimeType: 'application/octet-stream', buffer: Buffer.from('not activations at all') });
  await page.waitForSelector('.banner.error');
  assert.match(await page.textContent('.banner.error'), /bad\.npy: neither a \.npy nor a \.safetensors file.*still using smollm2/);
  assert.match(await page.textContent('#real-source'), /4,064 tokens/);
  assert.equal(await page.isDisabled('#real-run'), false);
  // An empty field: Run waits, with the reason beside it.
  await page.fill('#real-latents', '');
  assert.equal(await page.isDisabled('#real-run'), true);
  assert.match(await page.textContent('#real-run-why'), /Latents N: enter a number/);
  // A value the engine refuses disables Run too, with the engine's reason beside it and the
  // field marked (the estimate's trial checks the config as the run would).
  await page.fill('#real-latents', '128');
  await page.fill('#real-k', '1000');
  await page.check('#real-m-topk');
  await page.waitForFunction(() => /methods\[1\]\.k.*between 1 and the 128 latents/.test(document.querySelector('#real-run-why').textContent));
  assert.equal(await page.isDisabled('#real-run'), true);
  assert.equal(await page.getAttribute('#real-k', 'aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.body.dataset.realState), 'ready');
  await page.fill('#real-k', '8');
  await page.waitForFunction(() => !document.querySelector('#real-run').disabled);
  assert.equal(await page.getAttribute('#real-k', 'aria-invalid'), null);
  await ctx.close();
});

await test('a run on activations shows its time before it starts, and a long one asks first', async () => {
  const { ctx, page } = await newPage();
  await page.addInitScript(() => Object.defineProperty(navigator, 'hardwareConcurrency', { get: () => 2 }));
  await page.goto(`${origin}${BASE}#${SMALL}`);
  await waitReal(page, 'ready');
  // Timed on a short trial in the worker, before anything runs.
  await page.waitForFunction(() => document.body.dataset.realEstimate, null, { timeout: TIMEOUT });
  const small = Number(await page.evaluate(() => document.body.dataset.realEstimate));
  assert.ok(small > 0 && small < 120, `estimate ${small}`);
  // Three methods on two cores: shared by two workers, the estimate the longest share's.
  assert.match(await page.textContent('#real-estimate'), /^About \d+ s on this machine, its 3 methods shared by 2 workers: training \d+ s, the gap's analysis \d+ s of work in all/);
  // A thousand times the steps: over two minutes, so Run asks, naming the estimate.
  await page.fill('#real-steps', '60000');
  await page.waitForFunction((s) => Number(document.body.dataset.realEstimate) > 120, null, { timeout: TIMEOUT });
  assert.match(await page.textContent('#real-estimate'), /About (\d+ min|\d+ h)/);
  await page.click('#real-run');
  assert.equal(await page.isVisible('#real-long-run'), true);
  assert.match(await page.textContent('#real-long-run-text'), /estimated to take about \d+ (min|h).* Run it now\?/);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'real-long-run-yes');
  await page.click('#real-long-run-no');
  assert.equal(await page.isVisible('#real-long-run'), false);
  assert.equal(await page.evaluate(() => document.body.dataset.realState), 'ready');
  // Back to the short run: it starts at once, and its time against the estimate is kept to
  // calibrate the next ones.
  await page.fill('#real-steps', '60');
  await page.waitForFunction(() => Number(document.body.dataset.realEstimate) < 120, null, { timeout: TIMEOUT });
  const raw = Number(await page.evaluate(() => document.body.dataset.realEstimate));
  const started = Date.now();
  await page.click('#real-run');
  assert.equal(await page.isVisible('#real-long-run'), false);
  await waitReal(page, 'finished');
  const took = (Date.now() - started) / 1000;
  const ratios = await page.evaluate(() => JSON.parse(localStorage.getItem('sparse-playground/v1/estimate-ratios/real') || '[]'));
  if (took >= 3) {
    assert.equal(ratios.length, 1, JSON.stringify(ratios));
    assert.ok(Math.abs(ratios[0] - took / raw) < 0.5 * (took / raw), `ratio ${ratios[0]} for ${took} s against ${raw} s`);
    console.log(`  real-mode estimate ${raw.toFixed(1)} s, run ${took.toFixed(1)} s`);
  }
  await ctx.close();
});

await test('synthetic activations with known features score code MCC, on the table and the frontier', async () => {
  const link = 'real=synthetic&syn=32,16,3,2048&N=32&steps=1500&l1=1&lr=0.003&gap=64&k=3';
  const { ctx, page } = await newPage(await browser.newContext({ viewport: { width: 1440, height: 1100 } }));
  await page.goto(`${origin}${BASE}#${link}&run=1`);
  await waitReal(page, 'finished');
  assert.match(await page.textContent('#real-source'), /synthetic: 32 true features in 16 dimensions, K = 3: 2,048 tokens × 16/);
  const rows = await page.$$eval('#real-table tbody tr', (trs) =>
    trs.map((tr) => ({ name: tr.dataset.method, mcc: Number(tr.querySelector('[data-code-mcc]')?.dataset.codeMcc), cells: tr.cells.length })),
  );
  assert.deepEqual(rows.map((r) => r.name), ['SAE', 'TopK SAE (k=3)', 'SAE + ITO (fista)']);
  for (const r of rows) assert.ok(r.mcc > 0.3 && r.mcc <= 1, JSON.stringify(r));
  assert.ok((await page.$$eval('#real-table thead th', (th) => th.map((h) => h.textContent))).includes('Dictionary MCC'));
  // The frontier in code MCC: every method's encoder-and-warm-start line and its FISTA from zero.
  assert.equal(await page.isDisabled('#real-frontier-mcc'), false);
  await page.selectOption('#real-frontier-y', 'mcc');
  await page.waitForFunction(() => document.querySelector('#real-frontier').dataset.y === 'mcc');
  assert.equal(await page.getAttribute('#real-frontier', 'data-series'), '6');
  assert.match(await page.textContent('#real-frontier'), /code MCC/);
  assert.match(await page.textContent('#real-frontier figcaption'), /true features/);
  assert.match(await page.inputValue('#real-share-link'), new RegExp(`#${link}$`));
  // The form's button makes others and suggests settings that show the gap: one latent per
  // true feature, TopK's k the true K, and the methods to compare.
  await page.fill('#real-syn-atoms', '48');
  await page.fill('#real-syn-k', '5');
  await page.click('#real-synthetic');
  assert.match(await page.textContent('#real-source'), /48 true features in 16 dimensions, K = 5/);
  assert.equal(await page.inputValue('#real-latents'), '48');
  assert.equal(await page.inputValue('#real-k'), '5');
  assert.equal(await page.isChecked('#real-m-lista'), true);
  assert.match(await page.inputValue('#real-share-link'), /real=synthetic&syn=48,16,5,2048&/);
  // Sizes the engine refuses are refused, and the activations stay.
  await page.fill('#real-syn-k', '100');
  await page.click('#real-synthetic');
  await page.waitForSelector('.banner.error');
  assert.match(await page.textContent('.banner.error'), /K must be between 1 and N = 48.*still using synthetic/);
  await page.screenshot({ path: join(ARTIFACTS, 'real-synthetic.png'), fullPage: true });
  await ctx.close();
});

/** A .npy of `tokens` x `dim` float32 values, as bytes. */
function npyBytes(tokens, dim) {
  const values = Float32Array.from({ length: tokens * dim }, (_, i) => Math.sin(i * 0.7));
  return Buffer.concat([npyHeader(tokens, dim), Buffer.from(values.buffer)]);
}

await test('activations dropped on the page load, with their token texts', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#real=file`);
  await page.waitForFunction(() => document.body.dataset.realState === 'empty');
  const texts = JSON.stringify({
    format: 'sparse-playground-tokens',
    version: 1,
    tokens: Array.from({ length: 32 }, (_, i) => ` t${i}`),
    context_starts: [0, 16],
  });
  const drop = async (files) => {
    const dt = await page.evaluateHandle((list) => {
      const d = new DataTransfer();
      for (const f of list) d.items.add(new File([new Uint8Array(f.bytes)], f.name));
      return d;
    }, files);
    await page.dispatchEvent('#real-view', 'drop', { dataTransfer: dt });
  };
  await drop([
    { name: 'dropped.npy', bytes: [...npyBytes(32, 8)] },
    { name: 'dropped.tokens.json', bytes: [...Buffer.from(texts)] },
  ]);
  await waitReal(page, 'ready');
  assert.match(await page.textContent('#real-source'), /dropped\.npy: 32 tokens × 8 \(float32\), token texts in 2 contexts/);
  // Token texts that do not match are refused on their own, and the activations stay.
  await drop([{ name: 'wrong.json', bytes: [...Buffer.from(texts.replace(' t31', ' t31", " t32'))] }]);
  await page.waitForSelector('.banner.error');
  assert.match(await page.textContent('.banner.error'), /These token texts cannot be used/);
  assert.match(await page.textContent('#real-source'), /dropped\.npy: 32 tokens/);
  await ctx.close();
});

await test('a real-activation link with an unknown key says so', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#real=sample&latents=5`);
  await page.waitForSelector('.banner.error');
  assert.match(await page.textContent('.banner.error'), /unknown key `latents`/);
  await ctx.close();
});

await test('on WebGPU (SwiftShader) a run on activations computes on the GPU and agrees with the CPU; auto passes over a software adapter', async () => {
  const gpuBrowser = await launchGpuBrowser();
  try {
    const ctx = await gpuBrowser.newContext({ viewport: { width: 1440, height: 1000 }, acceptDownloads: true });
    const { page } = await newPage(ctx);
    // Synthetic activations with a known truth (600 tokens x 8), 32 latents, 40 steps with
    // resampling at step 20, an SAE and SAE + FISTA: every kind of read-back the run makes.
    const link = 'real=synthetic&syn=16,8,2,600&N=32&steps=40&batch=64&gap=32&resample=20&lr=0.01&methods=sae,ito';
    const results = async (backend) => {
      // A fresh load each time (a new hash alone would find the last run finished).
      await page.goto('about:blank');
      await page.goto(`${origin}${BASE}#${link}${backend === 'auto' ? '' : `&backend=${backend}`}`);
      await waitReal(page, 'ready');
      assert.equal(await page.inputValue('#real-backend'), backend);
      // Where it will compute is decided (and said) before Run, from a trial on each backend.
      await page.waitForFunction(() => document.body.dataset.realEstimate, null, { timeout: TIMEOUT });
      const estimate = { text: await page.textContent('#real-estimate'), on: await page.evaluate(() => document.body.dataset.realEstimateOn) };
      await page.click('#real-run');
      await waitReal(page, 'finished');
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#real-export')]);
      const json = JSON.parse(await (await download.createReadStream()).toArray().then((b) => Buffer.concat(b).toString()));
      return { json, estimate };
    };
    const { json: onGpu, estimate: gpuEstimate } = await results('gpu');
    if (onGpu.backend.kind !== 'gpu' && process.env.SPARSE_PLAYGROUND_REQUIRE_GPU !== '1') {
      console.log(`  skipped: no WebGPU adapter in this Chromium (${onGpu.backend.notice})`);
      return;
    }
    assert.equal(onGpu.backend.kind, 'gpu', onGpu.backend.notice);
    assert.equal(gpuEstimate.on, 'gpu');
    assert.match(gpuEstimate.text, /^About \d+ s on the GPU \(.+\): training/);
    assert.equal(await page.evaluate(() => document.body.dataset.realBackend), 'gpu');
    assert.equal(await page.evaluate(() => document.body.dataset.realWorkers), '1');
    await page.screenshot({ path: join(ARTIFACTS, 'real-gpu.png'), fullPage: true });
    // The link keeps the backend asked for (auto, the default, goes unsaid).
    assert.match(await page.inputValue('#real-share-link'), /&backend=gpu/);
    const { json: onCpu } = await results('cpu');
    assert.equal(onCpu.backend, undefined, 'a CPU run asked for records no backend, as before');
    assert.equal(await page.evaluate(() => document.body.dataset.realBackend), 'cpu');
    for (const [i, m] of onGpu.methods.entries()) {
      const c = onCpu.methods[i];
      assert.equal(m.name, c.name);
      assert.ok(!m.error, m.error);
      for (const key of ['explained_variance', 'l0', 'amortisation_gap', 'code_mcc']) {
        assert.ok(Math.abs(m[key] - c[key]) <= 1e-3 * (1 + Math.abs(c[key])), `${m.name} ${key}: GPU ${m[key]} vs CPU ${c[key]}`);
      }
      assert.deepEqual(m.resampled, c.resampled, `${m.name}: resampled alike`);
    }
    assert.match(await page.inputValue('#real-share-link'), /&backend=cpu/);
    // Auto does not take a software adapter (slower than the CPU path); it says so before Run
    // and records why in the results, which are the CPU's.
    const { json: onAuto, estimate: autoEstimate } = await results('auto');
    assert.equal(autoEstimate.on, 'cpu');
    assert.match(autoEstimate.text, /on this machine.*Auto: the only GPU adapter is a software one/);
    assert.equal(onAuto.backend.kind, 'cpu');
    assert.match(onAuto.backend.notice, /^auto: the only GPU adapter is a software one .*; computing on the CPU$/);
    assert.equal(await page.evaluate(() => document.body.dataset.realBackend), 'cpu');
    assert.equal(await page.locator('.banner[data-id="real-backend"]').count(), 0, 'auto says why beside Run, not in a banner');
    for (const [i, m] of onAuto.methods.entries()) assert.equal(m.explained_variance, onCpu.methods[i].explained_variance);
    assert.doesNotMatch(await page.inputValue('#real-share-link'), /backend=/);
  } finally {
    await gpuBrowser.close();
  }
});

if (consoleProblems.length) {
  await test('no console errors or warnings', async () => assert.deepEqual(consoleProblems, []));
}
await finish('real activations');
