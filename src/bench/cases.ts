// The engine benchmark's cases: what each measures and how many FLOPs it does. Ours (worker.ts) and the
// PyTorch peer (bench/torch_peer.py) build the same thing from the same config.

export interface GptBenchConfig {
  layers: number; dim: number; heads: number; grid: number; vocab: number; numClasses: number;
  batch: number; ffnMultipleOf: number;
}

export interface ConvBenchConfig { n: number; c: number; h: number; w: number; o: number; k: number; padding: number }

// torchThreads: the peer's torch.set_num_threads. GPT cases: 1, since torch's GEMMs go to OpenBLAS, which
// already uses both cores (two torch threads on top oversubscribe: measured 673 vs 352 ms). Conv: 2, since torch
// runs conv in oneDNN, whose own threads are torch's threads.
export type BenchCase =
  | { name: 'train'; what: string; torchThreads: number; config: GptBenchConfig }
  | { name: 'decode'; what: string; torchThreads: number; config: GptBenchConfig & { cfg: number } }
  | { name: 'conv'; what: string; torchThreads: number; config: ConvBenchConfig };

const REFERENCE: GptBenchConfig = {
  layers: 4,
  dim: 256,
  heads: 8,
  grid: 8,
  vocab: 512,
  numClasses: 10,
  batch: 32,
  ffnMultipleOf: 256,
};

export const BENCH_CASES: BenchCase[] = [
  {
    name: 'train',
    what: 'training step: LlamaGen GPT 4×256, 8 heads, 8×8 grid, batch 32, vocab 512; forward + cross-entropy + ' +
      'backward + clip + AdamW',
    torchThreads: 1,
    config: REFERENCE,
  },
  {
    name: 'decode',
    what: 'KV-cached generation of 64 tokens (prefill + 63 decode steps, CFG combine, sampling), batch 64 with CFG ' +
      '(128 rows), same GPT',
    torchThreads: 1,
    config: { ...REFERENCE, batch: 64, cfg: 2.0 },
  },
  {
    name: 'conv',
    what: 'conv2d 3×3, 64→64, padding 1, input 32×64×32×32: forward + backward (input and weight gradients)',
    torchThreads: 2,
    config: { n: 32, c: 64, h: 32, w: 32, o: 64, k: 3, padding: 1 },
  },
];

/** LlamaGen's SwiGLU hidden size: find_multiple(int(2 * 4 * dim / 3), multipleOf). */
export function ffnHidden(dim: number, multipleOf: number): number {
  const h = Math.floor((2 * 4 * dim) / 3);
  return Math.ceil(h / multipleOf) * multipleOf;
}

/** Matmul FLOPs of one token through all layers' projections and the head. */
function tokenFlops(c: GptBenchConfig): number {
  const h = ffnHidden(c.dim, c.ffnMultipleOf);
  return 2 * (c.layers * (4 * c.dim * c.dim + 3 * c.dim * h) + c.dim * c.vocab);
}

/** Decode steps per measured unit (the decode case times a whole generation). */
export function stepsPerUnit(bc: BenchCase): number {
  return bc.name === 'decode' ? bc.config.grid * bc.config.grid : 1;
}

/** FLOPs of one case's measured unit, counting multiply-adds as 2 and backward as 2× forward. */
export function caseFlops(bc: BenchCase): number {
  if (bc.name === 'train') {
    const c = bc.config, T = c.grid * c.grid; // LlamaGen training: [class, t_0 … t_{T-2}] → T positions
    const fwd = c.batch * (T * tokenFlops(c) + c.layers * 4 * T * T * c.dim);
    return 3 * fwd;
  }
  if (bc.name === 'decode') {
    const c = bc.config, T = c.grid * c.grid, rows = c.batch * 2;
    // T forward steps of one position each (the class prefill, then T-1 tokens); attention over ~T/2 cached positions
    return T * rows * (tokenFlops(c) + c.layers * 4 * (T / 2) * c.dim);
  }
  const c = bc.config;
  return 3 * 2 * c.n * c.o * c.c * c.k * c.k * c.h * c.w;
}

export const PEAK_GFLOPS = 512; // 2 cores × ~4 GHz × 64 FLOP/cycle (measured with an FMA loop: 490–529)
