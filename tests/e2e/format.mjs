// The status lines' numbers, in node (no browser): durations never read "1 min 60 s" and rates
// never "1.1e+2". Run: `node tests/e2e/format.mjs` (scripts/test.sh runs it).
import assert from 'node:assert/strict';
import { formatDuration, formatRate } from '../../www/page/format.mjs';
import { recordRatio, scaleOf } from '../../www/page/calibrate.mjs';

const cases = [
  [0.2, '1 s'],
  [59.4, '1 min'],
  [59, '59 s'],
  [119.6, '2 min'],
  [125, '2 min 5 s'],
  [3599.5, '1 h'],
  [7199, '2 h'],
  [3725, '1 h 3 min'],
  [NaN, '–'],
];
let passed = 0;
for (const [s, want] of cases) {
  assert.equal(formatDuration(s), want, `formatDuration(${s})`);
  passed += 1;
}
for (const [v, want] of [[110, '110'], [2345.6, '2,346'], [12.34, '12'], [0.456, '0.46'], [99.6, '100']]) {
  assert.equal(formatRate(v), want, `formatRate(${v})`);
  passed += 1;
}
// Estimates calibrated by this machine's earlier runs: the median ratio, 1 with none; runs too
// short to time or off by more than 10x are not recorded; the last five are kept.
assert.equal(scaleOf([]), 1);
assert.equal(scaleOf([2, 1.5, 3]), 2);
assert.equal(scaleOf([1, 2, 3, 4]), 2.5);
let ratios = [];
ratios = recordRatio(ratios, 10, 18);
assert.deepEqual(ratios, [1.8]);
assert.deepEqual(recordRatio(ratios, 10, 2), [1.8], 'a 2 s run is too short to time');
assert.deepEqual(recordRatio(ratios, 10, 500), [1.8], 'a tab left in the background');
assert.deepEqual(recordRatio(ratios, 0, 18), [1.8], 'no estimate, nothing to learn');
for (const s of [30, 30, 30, 30, 30]) ratios = recordRatio(ratios, 10, s);
assert.deepEqual(ratios, [3, 3, 3, 3, 3]);
passed += 1;
console.log(`\ntest result: ok. ${passed} passed; 0 failed; (formats)`);
