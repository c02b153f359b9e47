// Pure helpers (no DOM), tested in node by tests/e2e/paper-size.mjs.

/**
 * The pairs of methods that a run orders differently from a reference, by mean final code MCC.
 * `reference` lists {name, code_mcc: {mean, std}}; `here` maps a method's name to this run's
 * mean. Methods missing from either side are left out. Each pair comes as {hi, lo, close}:
 * hi above lo in the reference (their entries, plus `here` values), close when the reference's
 * difference is within the larger of the two standard deviations.
 */
export function orderDisagreements(reference, here) {
  const shared = reference.filter((r) => here.has(r.name));
  const out = [];
  for (let i = 0; i < shared.length; i++) {
    for (let j = i + 1; j < shared.length; j++) {
      const [a, b] = [shared[i], shared[j]];
      const ref = a.code_mcc.mean - b.code_mcc.mean;
      const now = here.get(a.name) - here.get(b.name);
      if (ref * now < 0) {
        const [hi, lo] = ref > 0 ? [a, b] : [b, a];
        out.push({
          hi: { ...hi, here: here.get(hi.name) },
          lo: { ...lo, here: here.get(lo.name) },
          close: Math.abs(ref) < Math.max(hi.code_mcc.std, lo.code_mcc.std),
        });
      }
    }
  }
  return out;
}
