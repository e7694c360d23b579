// One /api/generate request on the sampler thread: `ctfgen sample`'s sampling (src/sample/pipeline.ts, the same
// options and defaults, so the same seed gives the same pixels), with live previews — stage 1 decoded as its tokens
// arrive (a coarse label drawn as its cluster's representative, cells not sampled yet grey), the baseline's fine
// tokens likewise, and each stage-2 round but the last — and a cancellation check at every position.
// A preview costs a decode of every image of the request, which can take longer than sampling a token: a frame is
// skipped while drawing would take more than half the time (one image on the demo run: a frame every token or two;
// sixteen: about one per ten tokens), but never more than T/8 tokens in a row, so there are always at least seven.
import { tokensJson } from '../cli/sample.js';
import { encodePng, floatToU8, imageGrid } from '../io/png.js';
import { decodeTokens, partialImages } from '../sample/images.js';
import { sampleImages } from '../sample/pipeline.js';
import type { ServeContext } from './context.js';
import type { MethodResult, SampleMethod, StreamEvent } from './protocol.js';

/** A validated request with the class resolved to its id and `both` to the two methods. */
export interface GenerateJob {
  classId: number;
  methods: SampleMethod[];
  cfg: number; t1: number; t2: number; topK: number; topP: number;
  seed: number; n: number; rounds: number;
  previews: boolean;  // decode and send preview frames (the page's stream); off for plain JSON requests
}

/** Thrown out of the sampling callbacks when the client went away. */
export class JobCancelled extends Error {
  override name = 'JobCancelled';
}

/** images (N, C, S, S) about [−1, 1] -> per image base64 of u8 (C, S, S), the rounding of the PNG writer. */
export function pixelsBase64(images: Float32Array, N: number): string[] {
  const px = images.length / N;
  return Array.from({ length: N }, (_, i) => {
    const u8 = new Uint8Array(px);
    for (let j = 0; j < px; j++) u8[j] = floatToU8(images[i * px + j]!);
    return Buffer.from(u8.buffer).toString('base64');
  });
}

const quote = (a: string): string => (/^[\w./,:=+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);

/** The `ctfgen sample` command that writes these images (one PNG each, unscaled) and tokens. */
export function sampleCommand(run: string, method: SampleMethod, j: GenerateJob): string {
  const args = ['sample', '--run', run, '--method', method, '--class', String(j.classId), '--n', String(j.n),
    '--seed', String(j.seed), '--cfg', String(j.cfg), '--t1', String(j.t1),
    ...(method === 'ctf' ? ['--t2', String(j.t2)] : []), '--top-k', String(j.topK), '--top-p', String(j.topP),
    ...(method === 'ctf' && j.rounds !== 1 ? ['--refine-rounds', String(j.rounds)] : []),
    '--scale', '1', '--out', `${method}-grid.png`, '--each', `${method}-images`,
    '--tokens-out', `${method}-tokens.json`];
  return ['ctfgen', ...args].map(quote).join(' ');
}

/** Samples every method of the job in turn; emits start, preview and result events; returns the results. */
export function runGenerate(ctx: ServeContext, job: GenerateJob, emit: (e: StreamEvent) => void,
  cancelled: () => boolean): MethodResult[] {
  return job.methods.map((method) => {
    emit({ type: 'start', method });
    return sampleMethod(ctx, job, method, emit, cancelled);
  });
}

function sampleMethod(ctx: ServeContext, job: GenerateJob, method: SampleMethod, emit: (e: StreamEvent) => void,
  cancelled: () => boolean): MethodResult {
  const { pieces, representatives: reps } = ctx;
  const tok = pieces.tokenizer.model, T = pieces.grid ** 2, V = tok.config.codebookSize;
  const classes = new Int32Array(job.n).fill(job.classId);
  const check = (): void => { if (cancelled()) throw new JobCancelled(); };
  let frames = 0, nextFrame = 0;
  const previewSeconds = { stage1: 0, stage2: 0 };
  const frame = (phase: 'stage1' | 'stage2', first: number, step: number, steps: number, images: () => Float32Array,
    count: number): void => {
    const t0 = performance.now();
    const due = phase === 'stage2' || step % Math.max(1, Math.floor(steps / 8)) === 0;
    if (t0 < nextFrame && !due) return;
    emit({ type: 'preview', method, phase, first, step, steps, pixels: pixelsBase64(images(), count) });
    frames++;
    const t1 = performance.now();
    previewSeconds[phase] += (t1 - t0) / 1000;
    nextFrame = t1 + (t1 - t0);
  };
  // Stage 1's tokens per chunk (live views into its output); stage 2's previews draw masked cells from them.
  const coarseOf = new Map<number, Int32Array>();
  const r = sampleImages(pieces, {
    method, classes, seed: job.seed, cfgScale: job.cfg, temperature: job.t1, topK: job.topK, topP: job.topP,
    stage2: {
      temperature: job.t2, topK: job.topK, topP: job.topP, clusterMask: true, cfgScale: 1, rounds: job.rounds,
      onRound: ({ first, round, rounds, fine }) => {
        check();
        const coarse = coarseOf.get(first);
        if (!job.previews || round === rounds || !coarse || !reps) return;  // the last round is the final image
        // Cells still masked show their cluster's representative, as in stage 1.
        const shown = Int32Array.from(fine, (f, i) => (f === V ? reps[coarse[i]!]! : f));
        frame('stage2', first, round, rounds, () => decodeTokens(tok, shown), fine.length / T);
      },
    },
    onToken: ({ first, count, position, tokens }) => {
      check();
      if (method === 'ctf') coarseOf.set(first, tokens);
      if (!job.previews || position === T - 1) return;  // the complete grid arrives as the result
      const fine = method === 'ctf' && reps ? Int32Array.from(tokens, (c) => reps[c]!) : tokens.slice();
      frame('stage1', first, position + 1, T, () => partialImages(tok, fine, position + 1), count);
    },
    onProgress: (e) => { if (e.phase === 'decode') check(); },
  });
  const [, C, S] = r.shape, px = C * S * S;
  // Drawing previews happens inside the stages' callbacks: their time is reported apart, not as sampling time.
  const s = {
    stage1: r.seconds.stage1 - previewSeconds.stage1, stage2: r.seconds.stage2 - previewSeconds.stage2,
    decode: r.seconds.decode,
  };
  const total = s.stage1 + s.stage2 + s.decode;
  const rows = (x: Int32Array): number[][] =>
    Array.from({ length: job.n }, (_, i) => Array.from(x.subarray(i * T, (i + 1) * T)));
  const result: MethodResult = {
    method, classId: job.classId, className: ctx.info.classNames[job.classId]!,
    pixels: pixelsBase64(r.images, job.n),
    // As `--each` writes them: a one-tile grid without padding.
    png: Array.from({ length: job.n }, (_, i) => {
      const tile = imageGrid(r.images.subarray(i * px, (i + 1) * px), [1, C, S, S], { cols: 1, pad: 0 });
      return encodePng(tile).toString('base64');
    }),
    tokens: rows(r.fine), coarse: r.coarse ? rows(r.coarse) : null,
    tokensJson: tokensJson(r, T),
    seconds: { ...s, total, previews: previewSeconds.stage1 + previewSeconds.stage2 },
    imagesPerSecond: job.n / total,
    command: sampleCommand(ctx.info.run, method, job),
    frames,
  };
  emit({ type: 'result', result });
  return result;
}
