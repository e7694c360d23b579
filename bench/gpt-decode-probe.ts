// Probe: ms per KV-cached decode step of the engine-benchmark GPT (4×256, 8 heads, vocab 512) at batch 64
// with CFG (128 rows), generating 64 tokens with sampling, as `ctfgen bench engine --cases decode` does.
// With CTFGEN_PROFILE=1, a per-kernel profile.   node dist/bench/gpt-decode-probe.js [--rounds=5] [--batch=64]
import { profileReport } from '../src/engine/native.js';
import { Rng } from '../src/engine/rng.js';
import { sampleLogits } from '../src/engine/sampling.js';
import { Gpt, gptConfig } from '../src/models/gpt.js';
import { cfgClasses, cfgTokens, guide } from '../src/ctf/cfg.js';
import { KvCache, decodeOne, prefill } from '../src/models/kv-cache.js';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]));
const rounds = Number(args.get('rounds') ?? 5), B = Number(args.get('batch') ?? 64);
const V = 512, T = 64, numClasses = 10;
const model = new Gpt(gptConfig('M', { inVocab: V, outVocab: V, numClasses, grid: 8, causal: true }), new Rng(0));
const init = new Rng(2);
for (const p of model.parameters()) if (p.ndim >= 2) init.fillNormal(p.f32, 0, 0.02);
const cache = new KvCache(model, 2 * B, T);
const classes = cfgClasses(Int32Array.from({ length: B }, (_, i) => i % numClasses), numClasses);
const guided = new Float32Array(B * V), both = new Int32Array(2 * B);
const ms: number[] = [];
for (let r = 0; r < rounds + 1; r++) {
  const rngs = Array.from({ length: B }, (_, i) => new Rng(r).split(i));
  const t0 = performance.now();
  let logits = prefill(model, cache, classes);
  for (let t = 0; t < T; t++) {
    const next = sampleLogits(guide(logits, V, 2.0, guided), B, V, { temperature: 1 }, rngs);
    if (t + 1 < T) logits = decodeOne(model, cache, cfgTokens(next, both));
  }
  if (r > 0) ms.push((performance.now() - t0) / T);
}
ms.sort((a, b) => a - b);
console.log(`decode: median ${ms[ms.length >> 1]!.toFixed(2)} ms/step, min ${ms[0]!.toFixed(2)} (batch ${B} with CFG ` +
  `= ${2 * B} rows, ${T} steps, ${rounds} rounds)`);
const profile = profileReport();
if (profile) console.log(profile);
