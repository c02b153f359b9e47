// End-to-end tests of the page as a research instrument, in the system Chromium: the quick
// default gives every method a number, the defects reported by new users stay fixed (a click
// after an edit runs, the Run label stays readable, errors sit at their field in the user's
// words, rapid edits raise no false engine error, the phone layout fits, true codes show at
// once, Reset asks), and the comparison, hover readouts, legend toggles and sized PNG export
// work. Screenshots of the desktop and phone layouts go to target/e2e/.
//
// Run: `npm run build && node tests/e2e/instrument.mjs` (scripts/test.sh does both).
import { readFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import {
  ARTIFACTS,
  BASE,
  browser,
  consoleProblems,
  finish,
  newPage,
  origin,
  summary,
  test,
  waitState,
} from './harness.mjs';

await mkdir(ARTIFACTS, { recursive: true });
const SMALL = 'v=2&setting=unknown&methods=sae,mlp:h16&steps=60&log=30&runs=2&seed=8&backend=cpu';

await test('the default is the quick known-dictionary experiment, and every method gets a number', async () => {
  const { ctx, page } = await newPage(await browser.newContext({ viewport: { width: 1440, height: 900 } }));
  await page.goto(`${origin}${BASE}`);
  await waitState(page, 'ready');
  assert.equal(await page.inputValue('#steps'), '3000');
  assert.equal(await page.inputValue('#runs'), '2');
  assert.match(await page.inputValue('#eval_steps'), /^50, 100, 200/);
  assert.match(await page.evaluate(() => location.hash), /^#v=2&p=quick&setting=known_dictionary&seed=\d+$/);
  await page.click('#play');
  // Every method's first evaluation: a code MCC in every row of the table.
  await page.waitForFunction(() => {
    const rows = Array.from(document.querySelectorAll('#summary tbody tr'));
    return rows.length === 4 && rows.every((r) => /^\d\.\d{3}/.test(r.cells[1].textContent));
  });
  await page.screenshot({ path: join(ARTIFACTS, 'desktop.png'), fullPage: false });
  // No select cuts its chosen option short on the desktop either.
  const cut = await page.$$eval('select', (sels) =>
    sels.filter((s) => s.offsetParent && s.scrollWidth > s.clientWidth + 1).map((s) => s.id || s.dataset.field),
  );
  assert.deepEqual(cut, []);
  await page.click('#play'); // pause
  await ctx.close();
});

await test('a newcomer sees the amortisation gap within a minute, with an intro that stays dismissed', async () => {
  const { ctx, page } = await newPage(await browser.newContext({ viewport: { width: 1366, height: 900 } }));
  await page.goto(`${origin}${BASE}`);
  await waitState(page, 'ready');
  assert.equal(await page.isVisible('#intro'), true, 'the intro greets a first visit');
  assert.match(await page.textContent('#intro'), /amortisation gap/);
  const started = Date.now();
  await page.click('#play');
  await waitState(page, 'finished');
  const seconds = (Date.now() - started) / 1000;
  const rows = await summary(page);
  const mcc = (name) => Number(rows.find((r) => r[0].includes(name))[1].slice(0, 5));
  // Per-sample inference with the true dictionary far above the SAE: the gap, on screen.
  assert.ok(mcc('Sparse coding') > mcc('SAE') + 0.2, `${rows.map((r) => r.slice(0, 2)).join(' | ')}`);
  console.log(`    the default experiment ran in ${seconds.toFixed(1)} s`);
  // Beside the table: the paper-size run's numbers (CLI), and that this quick one agrees.
  const note = await page.textContent('#paper-size-note');
  assert.match(note, /At the paper's size \(5 seeds, 20,000 steps; measured with the CLI\)/);
  assert.match(note, /Sparse coding 0\.972 > MLP \(h=256\) 0\.874 > MLP \(h=32\) 0\.783 > SAE 0\.547/);
  assert.match(note, /orders them the same way/);
  await page.screenshot({ path: join(ARTIFACTS, 'intro-gap.png'), fullPage: false });
  // The run, timed from Run to its end, calibrates this machine's later estimates.
  const ratios = await page.evaluate(() => JSON.parse(localStorage.getItem('sparse-playground/v1/estimate-ratios/experiment') || '[]'));
  assert.equal(ratios.length, 1, `one ratio of actual to estimated time: ${ratios}`);
  await page.click('#intro-dismiss');
  assert.equal(await page.isVisible('#intro'), false);
  await page.reload();
  await waitState(page, 'ready');
  assert.equal(await page.isVisible('#intro'), false, 'dismissed stays dismissed');
  await page.waitForFunction(() => document.body.dataset.estimateRaw !== undefined);
  const [shown, raw] = await page.evaluate(() => [Number(document.body.dataset.estimate), Number(document.body.dataset.estimateRaw)]);
  assert.ok(Math.abs(shown - raw * ratios[0]) < 1e-6 * shown, `${shown} = ${raw} x ${ratios[0]}`);
  await page.click('#intro-show');
  assert.equal(await page.isVisible('#intro'), true, 'and comes back on demand');
  await ctx.close();
});

await test("a quick preset that orders methods unlike its paper-size run says so at the numbers", async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#v=2&p=quick&setting=unknown&backend=cpu`);
  await waitState(page, 'ready');
  assert.equal(await page.isVisible('#paper-size-note'), true, 'the paper-size figures show before the run');
  await page.click('#play');
  // About a minute in a tab on two cores; on a slower machine the page asks first.
  await page.waitForFunction(() => document.body.dataset.state === 'running' || !document.querySelector('#long-run').hidden);
  if (await page.isVisible('#long-run')) await page.click('#long-run-yes');
  await waitState(page, 'finished');
  const note = await page.textContent('#paper-size-note');
  // The case: SAE + ITO ends below the SAE after 6,000 steps, above it after 40,000.
  assert.match(note, /too short to settle \d pairs/);
  assert.match(note, /SAE ends above SAE \+ ITO \(adam\) here \(0\.5\d\d against 0\.5\d\d\), below it at the paper's size \(0\.522 against 0\.533, within the seeds’ spread\)/);
  // An edit makes it another experiment: no comparison.
  await page.fill('#steps', '6001');
  await page.press('#steps', 'Tab');
  await page.waitForFunction(() => document.querySelector('#paper-size-note').hidden);
  await ctx.close();
});

await test('a run paused inside an evaluation says it is paused, not that it is inferring', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#v=2&setting=known_dictionary&methods=sc:adam:s200000&steps=10&log=10&runs=1&seed=3&backend=cpu`);
  await waitState(page, 'ready');
  await page.click('#play');
  await page.waitForFunction(() => /· inferring test codes/.test(document.getElementById('status').textContent));
  await page.click('#play');
  await page.waitForFunction(() => /· paused while inferring test codes$/.test(document.getElementById('status').textContent));
  await ctx.close();
});

await test('the paper-exact preset is one click away and labelled', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}`);
  await waitState(page, 'ready');
  const paper = page.locator('button.paper[data-preset="unknown-zd"]');
  assert.match(await paper.getAttribute('title'), /Exactly as in the paper: 5 seeds, 40,000 steps/);
  await paper.click();
  await page.waitForFunction(() => document.getElementById('steps').value === '40000');
  assert.equal(await page.inputValue('#log_every'), '500');
  assert.equal(await page.inputValue('#eval_steps'), '');
  assert.match(await page.evaluate(() => location.hash), /^#v=2&setting=unknown&seed=20240926$/);
  await ctx.close();
});

await test('an experiment shows its estimated time before it starts, and a short one starts at once', async () => {
  const { ctx, page } = await newPage();
  // A short one: its estimate on the status line, and Run starts it at once.
  await page.goto(`${origin}${BASE}#${SMALL}`);
  await waitState(page, 'ready');
  await page.waitForFunction(() => document.body.dataset.estimate !== undefined);
  const short = Number(await page.evaluate(() => document.body.dataset.estimate));
  assert.ok(short > 0 && short < 120, `estimate ${short} s`);
  assert.match(await page.textContent('#status'), /· about \d+ s on this machine$/);
  await page.click('#play');
  await waitState(page, 'finished');
  assert.equal(await page.isVisible('#long-run'), false);
  await ctx.close();
});

await test('a run estimated over two minutes asks first, naming the estimate', async () => {
  const { ctx, page } = await newPage();
  // The paper's unknown-Z&D experiment (5 seeds) at 10 times its length: far over two minutes
  // on any machine, so Run asks.
  await page.goto(`${origin}${BASE}#v=2&setting=unknown&seed=20240926&steps=400000`);
  await waitState(page, 'ready');
  await page.waitForFunction(() => Number(document.body.dataset.estimate) > 0);
  const long = Number(await page.evaluate(() => document.body.dataset.estimate));
  assert.ok(long > 120, `the paper's experiment estimated at ${long} s`);
  assert.match(await page.textContent('#status'), /· about (\d+ h( \d+ min)?|\d+ min( \d+ s)?) on this machine$/);
  await page.click('#play');
  assert.equal(await page.isVisible('#long-run'), true);
  assert.match(await page.textContent('#long-run-text'), /estimated to take about \d+ (h|min)\b.* on this machine/);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'long-run-yes');
  await page.click('#long-run-no');
  assert.equal(await page.isVisible('#long-run'), false);
  assert.equal(await page.evaluate(() => document.body.dataset.state), 'ready');
  assert.equal(await page.textContent('#play'), 'Run');
  // Asked again, and this time run.
  await page.click('#play');
  await page.click('#long-run-yes');
  await waitState(page, 'running');
  await page.click('#cancel');
  await waitState(page, 'finished');
  await ctx.close();
});

await test('a click on Run right after editing a field starts the run with the new value', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#${SMALL}`);
  await waitState(page, 'ready');
  await page.click('#steps');
  await page.fill('#steps', '90');
  // No blur yet: the click itself moves the focus, which applies the edit and rebuilds.
  await page.click('#play');
  await waitState(page, 'finished');
  // 90 steps x 2 methods x 2 seeds.
  assert.match(await page.textContent('#status'), /360 \/ 360 training steps · done/);
  await ctx.close();
});

await test('the Run button stays readable under the pointer', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#${SMALL}`);
  await waitState(page, 'ready');
  await page.hover('#play');
  const { color, background } = await page.$eval('#play', (b) => {
    const s = getComputedStyle(b);
    return { color: s.color, background: s.backgroundColor };
  });
  assert.notEqual(color, background);
  // White on the hover's dark blue: the contrast of the label stays high.
  const lum = (rgb) => {
    const [r, g, b] = rgb.match(/\d+/g).slice(0, 3).map((v) => {
      const c = Number(v) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const [a, b] = [lum(color), lum(background)].sort((x, y) => y - x);
  assert.ok((a + 0.05) / (b + 0.05) >= 4.5, `contrast ${(a + 0.05) / (b + 0.05)}`);
  await ctx.close();
});

await test('an invalid field is marked, explained beside it in view, and nothing runs', async () => {
  const { ctx, page } = await newPage(await browser.newContext({ viewport: { width: 1440, height: 900 } }));
  await page.goto(`${origin}${BASE}#${SMALL}`);
  await waitState(page, 'ready');
  await page.fill('#num_atoms', '100000');
  await page.press('#num_atoms', 'Tab');
  const note = page.locator('#num_atoms ~ .field-error, label:has(#num_atoms) + .field-error');
  await note.waitFor();
  assert.match(await note.textContent(), /must be between 1 and 4096, got 100000/);
  assert.equal(await page.getAttribute('#num_atoms', 'aria-invalid'), 'true');
  const box = await note.boundingBox();
  assert.ok(box && box.y >= 0 && box.y + box.height <= 900, `the message is in view: ${JSON.stringify(box)}`);
  assert.ok(await page.isDisabled('#play'));
  assert.equal(await page.inputValue('#num_atoms'), '100000', 'the form keeps what was typed');
  // Fixing it clears the mark and runs again.
  await page.fill('#num_atoms', '12');
  await page.press('#num_atoms', 'Tab');
  await waitState(page, 'ready');
  assert.equal(await page.getAttribute('#num_atoms', 'aria-invalid'), null);
  assert.ok(await page.isEnabled('#play'));
  await ctx.close();
});

await test('error messages name the field and what is allowed, in the form\'s words', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#${SMALL}`);
  await waitState(page, 'ready');
  await page.fill('#steps', '1.5');
  await page.press('#steps', 'Tab');
  await page.waitForSelector('#config-error:not([hidden])');
  assert.equal(await page.textContent('#config-error'), 'Not applied: Steps: must be a whole number, got 1.5');
  await page.fill('#steps', '60');
  await page.press('#steps', 'Tab');
  await waitState(page, 'ready');
  await page.fill('[data-field="hidden"]', '0,-3,abc');
  await page.press('[data-field="hidden"]', 'Tab');
  await page.waitForSelector('#config-error:not([hidden])');
  const text = await page.textContent('#config-error');
  assert.match(text, /^Not applied: Hidden widths: list widths from 1 to 16384 separated by dashes/);
  assert.doesNotMatch(text, /invalid type|expected usize|NaN/);
  await ctx.close();
});

await test('per-kind learning rates and lambdas: typed, linked, refused at their field when malformed', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#${SMALL}`);
  await waitState(page, 'ready');
  await page.fill('#lr_per_method', 'mlp:1e-4');
  await page.press('#lr_per_method', 'Tab');
  await waitState(page, 'ready');
  await page.waitForFunction(() => location.hash.includes('lrs=mlp:0.0001'));
  // Malformed pairs and bad values are shown at the field, in words, and nothing runs.
  for (const [text, pattern] of [
    ['mlp=0.1', /^Not applied: Learning rate per kind: write kind:value pairs such as sc:3e-3, mlp:1e-4 \(kinds: sae, topk, mlp, sc, ito, lista\)$/],
    ['mlp:0', /^Not applied: Learning rate per kind: must be a finite number above 0/],
  ]) {
    await page.fill('#lr_per_method', text);
    await page.press('#lr_per_method', 'Tab');
    await page.waitForSelector('#config-error:not([hidden])');
    assert.match(await page.textContent('#config-error'), pattern);
    assert.equal(await page.getAttribute('#lr_per_method', 'aria-invalid'), 'true');
    assert.ok(await page.isDisabled('#play'));
  }
  await page.fill('#lr_per_method', '');
  await page.press('#lr_per_method', 'Tab');
  await waitState(page, 'ready');
  await page.fill('#l1_per_method', 'sc:0.5');
  await page.press('#l1_per_method', 'Tab');
  await waitState(page, 'ready');
  const hash = await page.evaluate(() => location.hash);
  assert.match(hash, /l1s=sc:0\.5/);
  assert.doesNotMatch(hash, /lrs=/);
  // A link with them fills the fields.
  await page.goto(`${origin}${BASE}#${SMALL}&lrs=sae:0.01,mlp:0.002&l1s=mlp:0.1`);
  await waitState(page, 'ready');
  assert.equal(await page.inputValue('#lr_per_method'), 'sae:0.01, mlp:0.002');
  assert.equal(await page.inputValue('#l1_per_method'), 'mlp:0.1');
  await ctx.close();
});

await test('rapid edits rebuild the engine without a false engine error', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#${SMALL}`);
  await waitState(page, 'ready');
  for (const value of ['2', '3', '4', '2']) {
    await page.fill('#sparsity_k', value);
    await page.dispatchEvent('#sparsity_k', 'change');
    await page.waitForTimeout(15);
  }
  await waitState(page, 'ready');
  await page.waitForTimeout(500);
  const errors = await page.$$eval('.banner.error:not([hidden])', (b) => b.map((x) => x.textContent));
  assert.deepEqual(errors, []);
  await page.click('#play');
  await waitState(page, 'finished');
  await ctx.close();
});

await test('on a phone the page fits the screen and Run is at hand', async () => {
  const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const { page } = await newPage(ctx);
  await page.goto(`${origin}${BASE}#${SMALL}`);
  await waitState(page, 'ready');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`);
  const run = await page.locator('#play').boundingBox();
  assert.ok(run.y + run.height <= 844, `Run is below the first screen: ${JSON.stringify(run)}`);
  // No select cuts its chosen option short.
  const cut = await page.$$eval('#config select, #backend', (sels) =>
    sels.filter((s) => s.offsetParent && s.scrollWidth > s.clientWidth + 1).map((s) => s.id || s.dataset.field),
  );
  assert.deepEqual(cut, []);
  // Chart buttons stay on the screen.
  const buttons = await page.$$eval('.chart h3 button', (bs) => bs.map((b) => b.getBoundingClientRect().right));
  assert.ok(buttons.every((r) => r <= 390), `chart buttons past the edge: ${buttons}`);
  await page.screenshot({ path: join(ARTIFACTS, 'mobile.png'), fullPage: false });
  // Run stays at hand while scrolling through the form.
  await page.evaluate(() => window.scrollTo(0, 600));
  const after = await page.locator('#play').boundingBox();
  assert.ok(after.y >= 0 && after.y < 100, `Run scrolled away: ${JSON.stringify(after)}`);
  await ctx.close();
});

await test('by keyboard: a skip link reaches Run first, presets have distinct names and the active one is marked', async () => {
  const { ctx, page } = await newPage(await browser.newContext({ viewport: { width: 1366, height: 900 } }));
  await page.goto(`${origin}${BASE}`);
  await waitState(page, 'ready');
  await page.keyboard.press('Tab');
  assert.deepEqual(
    await page.evaluate(() => [document.activeElement.id, document.activeElement.textContent]),
    ['skip-run', 'Skip to Run'],
  );
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'play');
  const names = await page.$$eval('[data-preset], [data-sweep-preset]', (bs) =>
    bs.map((b) => b.getAttribute('aria-label') || b.textContent.trim()),
  );
  assert.equal(new Set(names).size, names.length, `names repeat: ${names.join(' | ')}`);
  assert.ok(names.includes('Known codes, paper-exact'), names.join(' | '));
  const pressed = () => page.$$eval('[data-preset][aria-pressed="true"]', (bs) => bs.map((b) => b.dataset.preset));
  assert.deepEqual(await pressed(), ['quick-known-d'], 'the default preset is marked');
  await page.click('[data-preset="quick-known-z"]');
  await waitState(page, 'ready');
  assert.deepEqual(await pressed(), ['quick-known-z']);
  await page.fill('#steps', '500');
  await page.press('#steps', 'Tab');
  await page.waitForFunction(() => !document.querySelector('[data-preset][aria-pressed="true"]'));
  await ctx.close();
});

await test('on a phone Run brings the charts into view below the run bar', async () => {
  const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const { page } = await newPage(ctx);
  await page.goto(`${origin}${BASE}#${SMALL}`);
  await waitState(page, 'ready');
  const top = () => page.$eval('.charts', (c) => c.getBoundingClientRect().top);
  assert.ok((await top()) > 844, `the charts already start at ${await top()} px`);
  await page.click('#play');
  await page.waitForFunction(() => {
    const t = document.querySelector('.charts').getBoundingClientRect().top;
    return t >= 40 && t < 200;
  });
  const bar = await page.locator('#play').boundingBox();
  assert.ok(bar.y >= 0 && bar.y < 100, `Run stays at hand: ${JSON.stringify(bar)}`);
  await page.screenshot({ path: join(ARTIFACTS, 'mobile-after-run.png'), fullPage: false });
  await ctx.close();
});

await test('the true codes show before the first evaluation', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#${SMALL}`);
  await waitState(page, 'ready');
  await page.waitForFunction(() => document.getElementById('heat-codes-true').dataset.drawn === '16x12');
  assert.equal(await page.$eval('#heat-learned', (c) => c.dataset.drawn || ''), '');
  await ctx.close();
});

await test('after a second run the learned atoms show for the method in view', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#${SMALL}`);
  await waitState(page, 'ready');
  await page.selectOption('#view-method', '1');
  await page.click('#play');
  await waitState(page, 'finished');
  const drawn = () => page.$eval('#heat-learned', (c) => c.dataset.drawn || '');
  await page.waitForFunction(() => document.getElementById('heat-learned').dataset.drawn === '8x16');
  await page.click('#reset');
  await page.click('[data-id="reset"] button:has-text("Reset anyway")');
  await waitState(page, 'ready');
  assert.equal(await page.inputValue('#view-method'), '1', 'the method in view is kept');
  assert.equal(await drawn(), '', 'nothing learned yet');
  await page.click('#play');
  await waitState(page, 'finished');
  // The new engine is told which run the page shows, so its snapshots are drawn.
  await page.waitForFunction(() => document.getElementById('heat-learned').dataset.drawn === '8x16', null, { timeout: 10_000 });
  assert.match(await page.textContent('#view-status'), /at step 60/);
  await ctx.close();
});

await test('a known-codes run says why it has no test MSE', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#v=2&setting=known_codes&methods=sae&steps=40&log=20&runs=1&seed=3&backend=cpu`);
  await waitState(page, 'ready');
  await page.click('#play');
  await waitState(page, 'finished');
  assert.match(await page.textContent('#chart-test_mse .legend'), /No reconstruction in the known-codes setting/);
  assert.match(await page.textContent('#chart-dict_mcc .legend'), /No dictionary in the known-codes setting/);
  assert.doesNotMatch(await page.textContent('#chart-code_mcc .legend'), /No evaluations yet/);
  await ctx.close();
});

await test('each kind of method has one colour in every view, whatever its place in the list', async () => {
  const { ctx, page } = await newPage();
  const colours = async () => ({
    table: Object.fromEntries(
      await page.$$eval('#summary tbody tr', (trs) => trs.map((tr) => {
        const cell = tr.cells[0];
        return [cell.childNodes[1].textContent, getComputedStyle(cell.firstChild).color];
      })),
    ),
    legend: Object.fromEntries(
      await page.$$eval('#chart-code_mcc .legend-item', (items) =>
        items.map((i) => [i.textContent, getComputedStyle(i.querySelector('i')).backgroundColor])),
    ),
  });
  const BLUE = 'rgb(0, 114, 178)';
  const PURPLE = 'rgb(204, 121, 167)';
  await page.goto(`${origin}${BASE}#v=2&setting=unknown&methods=sae,mlp:h8,mlp:h16,sc&steps=20&log=10&runs=1&seed=3&backend=cpu`);
  await waitState(page, 'ready');
  await page.click('#play');
  await waitState(page, 'finished');
  const first = await colours();
  assert.equal(first.table.SAE, BLUE);
  assert.equal(first.legend.SAE, BLUE);
  assert.equal(first.table['Sparse coding'], PURPLE);
  assert.equal(first.legend['Sparse coding'], PURPLE);
  // Two MLPs: two shades of the MLP green, table and chart alike.
  assert.notEqual(first.table['MLP (h=8)'], first.table['MLP (h=16)']);
  for (const name of ['MLP (h=8)', 'MLP (h=16)']) assert.equal(first.legend[name], first.table[name]);
  // Another order: the same kinds keep their colours.
  await page.goto(`${origin}${BASE}#v=2&setting=unknown&methods=sc,sae&steps=20&log=10&runs=1&seed=3&backend=cpu`);
  await waitState(page, 'ready');
  await page.click('#play');
  await waitState(page, 'finished');
  const second = await colours();
  assert.equal(second.table.SAE, BLUE);
  assert.equal(second.legend['Sparse coding'], PURPLE);
  await ctx.close();
});

await test('headings go in order in every mode (no level skipped)', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#${SMALL}`);
  await waitState(page, 'ready');
  const levels = () =>
    page.$$eval('h1, h2, h3, h4', (hs) => hs.filter((h) => h.getClientRects().length).map((h) => Number(h.tagName[1])));
  for (const mode of ['experiment', 'sweep', 'real']) {
    if (mode !== 'experiment') {
      await page.click(`#mode-${mode}`);
      await page.waitForFunction((m) => document.body.dataset.mode === m, mode);
    }
    if (mode === 'sweep') await page.waitForSelector('#sweep-figures figure h3');
    const seen = await levels();
    assert.equal(seen[0], 1, `${mode}: ${seen}`);
    seen.forEach((l, i) => assert.ok(i === 0 || l <= seen[i - 1] + 1, `${mode}: a level skipped in ${seen}`));
  }
  await ctx.close();
});

await test('Reset asks before it throws progress away', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${origin}${BASE}#${SMALL}`);
  await waitState(page, 'ready');
  await page.click('#play');
  await waitState(page, 'finished');
  // 60 steps are far from converged: each method says so under its name, on screen without
  // scrolling the table sideways.
  const trends = await page.$$eval('#summary tbody tr .trend', (notes) =>
    notes.map((n) => ({ text: n.textContent, changing: n.classList.contains('changing'), right: n.getBoundingClientRect().right, width: innerWidth })),
  );
  assert.equal(trends.length, 2);
  for (const t of trends) {
    assert.ok(t.changing && /^still changing: .*since step 30$/.test(t.text), JSON.stringify(t));
    assert.ok(t.right <= t.width, `the trend note ends at ${t.right} px of ${t.width}`);
  }
  await page.click('#reset');
  const ask = page.locator('[data-id="reset"]');
  await ask.waitFor();
  assert.match(await ask.textContent(), /Reset discards 240 training steps/);
  await page.click('[data-id="reset"] button:has-text("Keep it")');
  assert.equal(await page.evaluate(() => document.body.dataset.state), 'finished');
  assert.equal((await summary(page)).length, 2);
  await page.click('#reset');
  await page.click('[data-id="reset"] button:has-text("Reset anyway")');
  await waitState(page, 'ready');
  assert.match(await page.textContent('#status'), /^0\.0%/);
  await ctx.close();
});

await test('two experiments compare on one chart and one table, and the comparison exports', async () => {
  const { ctx, page } = await newPage(await browser.newContext({ acceptDownloads: true }));
  await page.goto(`${origin}${BASE}#${SMALL}`);
  await waitState(page, 'ready');
  await page.click('#play');
  await waitState(page, 'finished');
  // Another experiment: K = 2 instead of 3.
  await page.fill('#sparsity_k', '2');
  await page.press('#sparsity_k', 'Tab');
  await waitState(page, 'ready');
  await page.click('#play');
  await waitState(page, 'finished');
  // A finished run joins the list once its results are in from the workers, a moment after
  // the page says 'finished' (on a loaded machine, measurably later).
  await page.waitForFunction(() => document.querySelectorAll('#compare-list li').length === 2);
  const items = page.locator('#compare-list li');
  assert.equal(await items.count(), 2);
  const other = items.filter({ hasText: 'K=3' });
  assert.equal(await other.count(), 1, await page.textContent('#compare-list'));
  await other.locator('input[type=checkbox]').check();
  await page.waitForFunction(() => document.querySelectorAll('#summary tbody tr.pinned').length === 2);
  const rows = await summary(page);
  assert.ok(rows.some((r) => /SAE · K=3/.test(r[0])), JSON.stringify(rows));
  const legend = await page.textContent('#chart-code_mcc .legend');
  assert.match(legend, /MLP \(h=16\) · K=3/);
  // Export the comparison and open it in a fresh page: the pins come back.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-compare')]);
  const path = join(ARTIFACTS, 'comparison.json');
  await download.saveAs(path);
  const bundle = JSON.parse(await readFile(path, 'utf8'));
  assert.equal(bundle.comparison.length, 2);
  const fresh = await newPage(await browser.newContext());
  await fresh.page.goto(`${origin}${BASE}#${SMALL}`);
  await waitState(fresh.page, 'ready');
  await fresh.page.setInputFiles('#load-json', { name: 'comparison.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(bundle)) });
  await fresh.page.waitForFunction(() => document.querySelectorAll('#compare-list li').length === 2);
  await fresh.page.waitForFunction(() => document.querySelectorAll('#summary tbody tr.pinned').length >= 2);
  await fresh.ctx.close();
  await ctx.close();
});

await test('charts read out values under the pointer, toggle series and export PNGs at a chosen size', async () => {
  const { ctx, page } = await newPage(await browser.newContext({ acceptDownloads: true }));
  await page.goto(`${origin}${BASE}#${SMALL}`);
  await waitState(page, 'ready');
  await page.click('#play');
  await waitState(page, 'finished');
  const canvas = page.locator('#chart-code_mcc canvas').first();
  // The intro of a first visit sits above the charts: bring the chart into view first.
  await canvas.scrollIntoViewIfNeeded();
  const box = await canvas.boundingBox();
  await page.mouse.move(box.x + box.width * 0.9, box.y + box.height / 2);
  const readout = page.locator('#chart-code_mcc .readout');
  await readout.waitFor({ state: 'visible' });
  const text = await readout.textContent();
  assert.match(text, /training steps: \d+/);
  assert.match(text, /SAE: 0\.\d+ ± [\d.e-]+ · FLOPs [\d.e+]+/);
  // The legend hides and shows a series.
  const item = page.locator('#chart-code_mcc .legend-item', { hasText: 'SAE' });
  await item.click();
  assert.equal(await item.getAttribute('aria-pressed'), 'false');
  await item.click();
  assert.equal(await item.getAttribute('aria-pressed'), 'true');
  // A data table for screen readers and exact values.
  await page.click('#chart-code_mcc .data-table summary');
  await page.waitForSelector('#chart-code_mcc .data-table table');
  const cells = await page.$$eval('#chart-code_mcc .data-table tr', (trs) => trs.length);
  assert.equal(cells, 1 + 3, 'a header and the evaluations at steps 0, 30 and 60');
  assert.match(await page.getAttribute('#chart-code_mcc canvas', 'aria-label'), /Code MCC against training steps/);
  // PNG at a chosen size.
  await page.selectOption('#png-size', '1280x720');
  const [png] = await Promise.all([page.waitForEvent('download'), page.click('#chart-code_mcc button:has-text("PNG")')]);
  const bytes = await readFile(await png.path());
  assert.equal(bytes.readUInt32BE(16), 1280);
  assert.equal(bytes.readUInt32BE(20), 720);
  await ctx.close();
});

await test('no console errors or warnings', async () => {
  assert.deepEqual(consoleProblems, []);
});

await finish('end-to-end, the page as an instrument, in Chromium');
