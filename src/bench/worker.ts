// Our side of `ctfgen bench engine`: builds a case from its config and runs one unit of work per step.
// Spoken to over stdin/stdout by the orchestrator (src/bench/engine.ts), like bench/torch_peer.py.
import { backward } from '../engine/autograd.js';
import { blasInfo } from '../engine/native.js';
import { conv2d } from '../engine/ops/conv.js';
import { Rng } from '../engine/rng.js';
import { Tensor } from '../engine/tensor.js';
import { CtfError } from '../errors.js';
import type { ConvBenchConfig } from './cases.js';
import { peakRssMb, serve } from './peer.js';

function convCase(c: ConvBenchConfig): () => void {
  const rng = new Rng(0);
  const x = new Tensor(rng.fillNormal(new Float32Array(c.n * c.c * c.h * c.w)), [c.n, c.c, c.h, c.w], { requiresGrad: true });
  const w = new Tensor(rng.fillNormal(new Float32Array(c.o * c.c * c.k * c.k)), [c.o, c.c, c.k, c.k], { requiresGrad: true });
  const ho = c.h + 2 * c.padding - c.k + 1, wo = c.w + 2 * c.padding - c.k + 1;
  const g = rng.fillNormal(new Float32Array(c.n * c.o * ho * wo));
  return () => {
    x.grad = null;
    w.grad = null;
    backward(conv2d(x, w, null, { padding: c.padding }), g);
  };
}

let step: (() => void) | null = null;

await serve({
  setup(name, config) {
    if (name === 'conv') step = convCase(config as unknown as ConvBenchConfig);
    else throw new CtfError(`bench worker: unknown case ${name}`);
  },
  step() {
    if (!step) throw new CtfError('bench worker: run before setup');
    step();
  },
  info() {
    const b = blasInfo();
    return { impl: 'ctfgen', version: process.version, corename: b.corename, blasThreads: b.threads, threads: b.threads, peakRssMb: peakRssMb() };
  },
});
