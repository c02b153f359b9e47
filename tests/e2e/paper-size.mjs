// What the page says about a quick preset against its paper-size run, in node (no browser):
// the pairs ordered differently are found and only those, and the committed reference holds
// every experiment the quick presets shorten. Run: `node tests/e2e/paper-size.mjs`.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { orderDisagreements } from '../../www/page/order.mjs';

let passed = 0;
const ref = [
  { name: 'A', code_mcc: { mean: 0.63, std: 0.03 } },
  { name: 'B', code_mcc: { mean: 0.62, std: 0.02 } },
  { name: 'C', code_mcc: { mean: 0.53, std: 0.01 } },
  { name: 'D', code_mcc: { mean: 0.4, std: 0.01 } },
];
// The same order: nothing to say.
assert.deepEqual(orderDisagreements(ref, new Map([['A', 0.9], ['B', 0.8], ['C', 0.7]])), []);
passed += 1;
// B above A (within A's spread) and C above both: three pairs, each named with both values.
const got = orderDisagreements(ref, new Map([['A', 0.5], ['B', 0.55], ['C', 0.6], ['D', 0.1]]));
assert.deepEqual(
  got.map(({ hi, lo, close }) => [hi.name, lo.name, close, lo.here]),
  [
    ['A', 'B', true, 0.55],
    ['A', 'C', false, 0.6],
    ['B', 'C', false, 0.6],
  ],
);
passed += 1;
// A method the run does not have is left out.
assert.deepEqual(orderDisagreements(ref, new Map([['D', 0.9]])), []);
passed += 1;

const reference = JSON.parse(readFileSync(new URL('../../www/reference/paper-size.json', import.meta.url), 'utf8'));
for (const name of ['known-z', 'known-d', 'unknown-zd']) {
  const e = reference.experiments[name];
  assert.ok(e, `the reference has ${name}`);
  assert.ok(e.methods.length >= 3 && e.methods.every((m) => Number.isFinite(m.code_mcc.mean)), name);
  passed += 1;
}
console.log(`\ntest result: ok. ${passed} passed; 0 failed; (paper-size reference)`);
