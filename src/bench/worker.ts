// Our side of `ctfgen bench engine`: builds a case from its config and runs one unit of work per step.
// Spoken to over stdin/stdout by the orchestrator (src/bench/engine.ts), like bench/torch_peer.py.
import { backward } from '../engine/autograd.js';
import { conv2d } from '../engine/ops/conv.js';
import { Rng } from '../engine/rng.js';
import { Tensor } from '../engine/tensor.js';
import { CtfError } from '../errors.js';
import { AdamW, clipGradNorm } from '../engine/optim.js';
import { sampleLogits } from '../engine/sampling.js';
import { Gpt, gptConfig } from '../models/gpt.js';
import { cfgClasses, cfgTokens, guide } from '../ctf/cfg.js';
import { KvCache, decodeOne, prefill } from '../models/kv-cache.js';
import type { ConvBenchConfig, GptBenchConfig } from './cases.js';
import { ctfgenPeerInfo, serve } from './peer.js';

function convCase(c: ConvBenchConfig): () => void {
  const rng = new Rng(0);
  const x = new Tensor(rng.fillNormal(new Float32Array(c.n * c.c * c.h * c.w)), [c.n, c.c, c.h, c.w], {
    requiresGrad: true,
  });
  const w = new Tensor(rng.fillNormal(new Float32Array(c.o * c.c * c.k * c.k)), [c.o, c.c, c.k, c.k], {
    requiresGrad: true,
  });
  const ho = c.h + 2 * c.padding - c.k + 1, wo = c.w + 2 * c.padding - c.k + 1;
  const g = rng.fillNormal(new Float32Array(c.n * c.o * ho * wo));
  return () => {
    x.grad = null;
    w.grad = null;
    backward(conv2d(x, w, null, { padding: c.padding }), g);
  };
}

function benchGpt(c: GptBenchConfig): Gpt {
  return new Gpt(
    gptConfig(
      'M',
      { inVocab: c.vocab, outVocab: c.vocab, numClasses: c.numClasses, grid: c.grid, causal: true },
      { layers: c.layers, dim: c.dim, heads: c.heads, ffnMultipleOf: c.ffnMultipleOf, dropout: 0.1, classDropout: 0.1 },
    ),
    new Rng(0),
  );
}

/**
 * LlamaGen's training step: [class, t_0 … t_{T-2}] predicts t_0 … t_{T-1}; clip 1.0; AdamW (0.9, 0.95), wd 0.05 on
 * ≥2-D.
 */
function trainCase(c: GptBenchConfig): () => void {
  const model = benchGpt(c);
  const opt = new AdamW(model.parameters(), { lr: 1e-4, betas: [0.9, 0.95], weightDecay: 0.05 });
  const rng = new Rng(1), T = c.grid * c.grid;
  const classes = Int32Array.from({ length: c.batch }, () => rng.int(c.numClasses));
  const seq = Int32Array.from({ length: c.batch * T }, () => rng.int(c.vocab));
  const inputs = new Int32Array(c.batch * (T - 1));
  for (let b = 0; b < c.batch; b++) inputs.set(seq.subarray(b * T, b * T + T - 1), b * (T - 1));
  return () => {
    model.zeroGrad();
    const { loss } = model.loss(classes, inputs, seq, { training: true, rng });
    backward(loss);
    clipGradNorm(model.parameters(), 1.0);
    opt.step();
  };
}

/** KV-cached generation of a whole image with CFG by batch doubling; τ = 1, no top-k / top-p, as the peer. */
function decodeCase(c: GptBenchConfig & { cfg: number }): () => void {
  const model = benchGpt(c);
  const init = new Rng(2);  // random weights, head included, so sampling is not uniform
  for (const p of model.parameters()) if (p.ndim >= 2) init.fillNormal(p.f32, 0, 0.02);
  const B = c.batch, T = c.grid * c.grid, V = c.vocab;
  const cache = new KvCache(model, 2 * B, T);
  const classes = cfgClasses(Int32Array.from({ length: B }, (_, i) => i % c.numClasses), c.numClasses);
  const guided = new Float32Array(B * V), both = new Int32Array(2 * B);
  let round = 0;
  return () => {
    const rngs = Array.from({ length: B }, (_, i) => new Rng(round).split(i));
    round++;
    let logits = prefill(model, cache, classes);
    for (let t = 0; t < T; t++) {
      const next = sampleLogits(guide(logits, V, c.cfg, guided), B, V, { temperature: 1 }, rngs);
      if (t + 1 < T) logits = decodeOne(model, cache, cfgTokens(next, both));
    }
  };
}

let step: (() => void) | null = null;

await serve({
  setup(name, config) {
    if (name === 'conv') step = convCase(config as unknown as ConvBenchConfig);
    else if (name === 'train') step = trainCase(config as unknown as GptBenchConfig);
    else if (name === 'decode') step = decodeCase(config as unknown as GptBenchConfig & { cfg: number });
    else throw new CtfError(`bench worker: unknown case ${name}`);
  },
  step() {
    if (!step) throw new CtfError('bench worker: run before setup');
    step();
  },
  info() {
    return ctfgenPeerInfo();
  },
});
