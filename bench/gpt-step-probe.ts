// Probe: ms per training step of the engine-benchmark GPT (LlamaGen 4×256, 8 heads, 8×8 grid, batch 32,
// vocab 512, dropout 0.1, class dropout 0.1): forward + cross-entropy + backward + clip + AdamW, the step
// `ctfgen bench engine --cases train` times against PyTorch. With CTFGEN_PROFILE=1, a per-kernel profile.
//   node dist/bench/gpt-step-probe.js [--steps=10] [--dropout=0.1] [--causal=1] [--optimizer=1]
import { backward } from '../src/engine/autograd.js';
import { profileReport } from '../src/engine/native.js';
import { AdamW, clipGradNorm } from '../src/engine/optim.js';
import { Rng } from '../src/engine/rng.js';
import { Gpt, gptConfig } from '../src/models/gpt.js';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]));
const steps = Number(args.get('steps') ?? 10), dropout = Number(args.get('dropout') ?? 0.1);
const causal = (args.get('causal') ?? '1') !== '0', optimizer = (args.get('optimizer') ?? '1') !== '0';
const T = 64, B = 32;
const cfg = gptConfig(
  'M',
  { inVocab: 512, outVocab: 512, numClasses: 10, grid: 8, causal },
  { dropout, classDropout: 0.1 },
);
const model = new Gpt(cfg, new Rng(0));
const opt = new AdamW(model.parameters(), { lr: 1e-4, betas: [0.9, 0.95], weightDecay: 0.05 });
const rng = new Rng(1);
const classes = Int32Array.from({ length: B }, () => rng.int(10));
const seq = Int32Array.from({ length: B * T }, () => rng.int(512));
const inputs = new Int32Array(B * (T - 1));
for (let b = 0; b < B; b++) inputs.set(seq.subarray(b * T, b * T + T - 1), b * (T - 1));

const ms: number[] = [];
for (let s = 0; s < steps + 2; s++) {
  const t0 = performance.now();
  model.zeroGrad();
  const { loss } = causal
    ? model.loss(classes, inputs, seq, { training: true, rng })
    : model.loss(classes, seq, seq, { training: true, rng });
  backward(loss);
  if (optimizer) {
    clipGradNorm(model.parameters(), 1.0);
    opt.step();
  }
  if (s >= 2) ms.push(performance.now() - t0);
}
ms.sort((a, b) => a - b);
console.log(`${optimizer ? 'train step' : 'forward+backward'}: median ${ms[ms.length >> 1]!.toFixed(1)} ms, min ` +
  `${ms[0]!.toFixed(1)} ` +
  `(${steps} steps, ${causal ? 'causal, 64 positions' : 'bidirectional, 65 positions'}, dropout ${dropout})`);
const profile = profileReport();
if (profile) console.log(profile);
