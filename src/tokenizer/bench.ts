// Encoding and training throughput of our tokenizer beside its PyTorch twin (bench/torch_tokenizer.py) on the
// same weights and images, in alternating rounds (two-core timings drift from minute to minute; medians are
// reported). The twin's tokens and reconstructions on the same weights double as a cross-check.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { backward } from '../engine/autograd.js';
import { blasInfo } from '../engine/native.js';
import { AdamW, clipGradNorm } from '../engine/optim.js';
import { Tensor } from '../engine/tensor.js';
import { CtfError } from '../errors.js';
import { decodeTokenizer, encodeTokenizer } from './checkpoint.js';
import type { VqTokenizer } from './model.js';

export interface TokenizerBenchOptions {
  encodeBatch: number;      // images per encoder call
  trainBatch: number;       // images per training step
  rounds: number;           // alternating rounds (ours, then torch at each thread count)
  reps: number;             // timed calls per round and side (after one warm-up)
  torchThreads: number[];   // torch.set_num_threads values to run
  python: string;
}

export interface SideTiming { encodeImgPerSec: number; trainImgPerSec: number; encodeMs: number[]; trainMs: number[] }

export interface TokenizerBenchReport {
  config: VqTokenizer['config'];
  parameters: number;
  encodeBatch: number;
  trainBatch: number;
  ours: SideTiming & { blas: string; blasThreads: number };
  torch: Record<string, SideTiming & { version: string }>;  // by thread count
  check: { images: number; tokenAgreement: number; reconMaxAbsDiff: number };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function time(reps: number, f: () => void): number {
  f();  // warm-up
  const ms: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    f();
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

/** images: (N, C, S, S) in [−1, 1], N ≥ both batch sizes. */
export function benchTokenizer(
  model: VqTokenizer,
  images: Float32Array,
  o: TokenizerBenchOptions,
  onRound: (msg: string) => void = () => undefined,
): TokenizerBenchReport {
  const c = model.config,
    size = c.inChannels * c.imageSize * c.imageSize,
    N = images.length / size;
  if (!Number.isInteger(N) || N < Math.max(o.encodeBatch, o.trainBatch))
    throw new CtfError(
      `tokenizer bench: ${N} images are fewer than the batch sizes (${o.encodeBatch}, ${o.trainBatch})`,
    );
  const shape = (B: number): number[] => [B, c.inChannels, c.imageSize, c.imageSize];
  const encX = new Tensor(images.subarray(0, o.encodeBatch * size), shape(o.encodeBatch));
  const trainX = new Tensor(images.subarray(0, o.trainBatch * size), shape(o.trainBatch));
  const bytes = encodeTokenizer(model);
  const trainee = decodeTokenizer(bytes, 'bench copy').model; // trained on, so the measured model stays as loaded
  const opt = new AdamW(trainee.parameters(), { lr: 1e-4, betas: [0.9, 0.95], weightDecay: 0 });
  const trainStep = (): void => {
    opt.zeroGrad();
    backward(trainee.forward(trainX).loss);
    clipGradNorm(trainee.parameters(), 1);
    opt.step();
  };

  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-tokbench-'));
  try {
    const weights = join(dir, 'tokenizer.safetensors'),
      input = join(dir, 'images.f32');
    writeFileSync(weights, bytes);
    writeFileSync(input, new Uint8Array(images.buffer, images.byteOffset, N * size * 4));
    const script = fileURLToPath(new URL('../../../bench/torch_tokenizer.py', import.meta.url));
    const ours = { encodeMs: [] as number[], trainMs: [] as number[] };
    const torch: Record<string, { encodeMs: number[]; trainMs: number[]; version: string }> = {};
    let check: Record<string, unknown> | null = null;
    for (let r = 0; r < o.rounds; r++) {
      ours.encodeMs.push(time(o.reps, () => model.encode(encX)));
      ours.trainMs.push(time(o.reps, trainStep));
      onRound(
        `round ${r + 1}/${o.rounds}: ours encode ${ours.encodeMs.at(-1)!.toFixed(1)} ms, train step ` +
        `${ours.trainMs.at(-1)!.toFixed(1)} ms`,
      );
      for (const threads of o.torchThreads) {
        const p = spawnSync(
          o.python,
          [
            script,
            '--weights',
            weights,
            '--input',
            input,
            '--count',
            String(N),
            '--threads',
            String(threads),
            '--encode-batch',
            String(o.encodeBatch),
            '--train-batch',
            String(o.trainBatch),
            '--reps',
            String(o.reps),
          ],
          { encoding: 'utf8' },
        );
        if (p.status !== 0)
          throw new CtfError(
            `tokenizer bench: ${o.python} ${script} failed ` +
            `(${p.error?.message ?? `exit ${p.status}`}):\n${p.stderr.slice(-2000)}`,
          );
        const res = JSON.parse(p.stdout.trim().split('\n').at(-1)!) as {
          encode_ms: number;
          train_ms: number;
          torch: string;
          tokens: number[][];
          recon: number[];
        };
        const t = (torch[threads] ??= { encodeMs: [], trainMs: [], version: res.torch });
        t.encodeMs.push(res.encode_ms);
        t.trainMs.push(res.train_ms);
        check ??= res as unknown as Record<string, unknown>;
        onRound(
          `round ${r + 1}/${o.rounds}: torch (${threads} thread${threads > 1 ? 's' : ''}) encode ` +
          `${res.encode_ms.toFixed(1)} ms, train step ${res.train_ms.toFixed(1)} ms`,
        );
      }
    }
    const side = (s: { encodeMs: number[]; trainMs: number[] }): SideTiming => ({
      encodeImgPerSec: (1000 * o.encodeBatch) / median(s.encodeMs),
      trainImgPerSec: (1000 * o.trainBatch) / median(s.trainMs),
      ...s,
    });
    const info = blasInfo();
    const report: TokenizerBenchReport = {
      config: c,
      parameters: model.numParameters(),
      encodeBatch: o.encodeBatch,
      trainBatch: o.trainBatch,
      ours: { ...side(ours), blas: info.corename, blasThreads: info.threads },
      torch: Object.fromEntries(Object.entries(torch).map(([k, v]) => [k, { ...side(v), version: v.version }])),
      check: { images: 0, tokenAgreement: NaN, reconMaxAbsDiff: NaN },
    };
    if (check) {
      const tok = check['tokens'] as number[][],
        rec = check['recon'] as number[],
        k = tok.length;
      const mine = model.reconstruct(new Tensor(images.subarray(0, k * size), shape(k)));
      let same = 0,
        diff = 0;
      tok.flat().forEach((t, i) => {
        if (t === mine.index[i]) same++;
      });
      rec.forEach((v, i) => {
        diff = Math.max(diff, Math.abs(v - mine.recon.f32[i]!));
      });
      report.check = { images: k, tokenAgreement: same / mine.index.length, reconMaxAbsDiff: diff };
    }
    return report;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
