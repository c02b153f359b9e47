// Writes www/reference/paper-size.json, what the page compares a quick preset's run with: the
// final code MCC of each method in the paper-size runs of the three experiments, from the
// CLI's results files.
//
//   sparse-playground run --preset unknown-zd --backend cpu --out unknown-zd.json   # and
//   known-d, known-z likewise; then
//   node scripts/paper-reference.mjs "<machine>" known-z.json known-d.json unknown-zd.json
//
// Each entry keeps the run's whole config: a test fails when a paper-size preset changes and
// its reference was not measured again.
import { readFileSync, writeFileSync } from 'node:fs';

const [machine, ...files] = process.argv.slice(2);
if (!machine || !files.length) {
  console.error('usage: node scripts/paper-reference.mjs "<machine>" RESULTS.json...');
  process.exit(2);
}
const presetOf = { known_codes: 'known-z', known_dictionary: 'known-d', unknown: 'unknown-zd' };
const out = {
  about:
    'Final code MCC (mean and standard deviation over seeds) of the paper-size presets, measured with the CLI; the page compares the quick presets with these.',
  machine,
  measured: new Date().toISOString().slice(0, 10),
  experiments: {},
};
for (const file of files) {
  const results = JSON.parse(readFileSync(file, 'utf8'));
  const preset = presetOf[results.config.setting];
  out.experiments[preset] = {
    engine: results.engine,
    command: `sparse-playground run --preset ${preset} --backend ${results.backend.kind}`,
    config: results.config,
    methods: results.methods.map((m) => ({
      name: m.name,
      code_mcc: { mean: m.final.code_mcc.mean, std: m.final.code_mcc.std },
    })),
  };
}
writeFileSync(new URL('../www/reference/paper-size.json', import.meta.url), `${JSON.stringify(out, null, 1)}\n`);
