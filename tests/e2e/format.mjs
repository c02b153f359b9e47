// The status lines' numbers, in node (no browser): durations never read "1 min 60 s" and rates
// never "1.1e+2". Run: `node tests/e2e/format.mjs` (scripts/test.sh runs it).
import assert from 'node:assert/strict';
import { formatDuration, formatRate } from '../../www/page/format.mjs';

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
console.log(`\ntest result: ok. ${passed} passed; 0 failed; (formats)`);
