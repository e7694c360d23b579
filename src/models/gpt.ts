// LlamaGen's class-conditional GPT (arXiv 2406.06525, autoregressive/models/gpt.py), causal for the
// coarse AR model and the baseline, bidirectional for the CTF auxiliary model (docs/method.md).
//
//   h = dropout([cls_embedding(class); tok_embeddings(tokens)])               (B, L, dim)
//   per layer:  h += dropout(wo · attention(rope(q), rope(k), v))    q|k|v = wqkv · rmsNorm(h)   attentionBlock
//               h += dropout(w2 · (silu(w1 x) · w3 x))                x = rmsNorm(h)               swigluFfn
//   logits = output · rmsNorm(h)
//
// w1 and w3 live in one (2·hidden, dim) matrix so the FFN input is one GEMM; the LlamaGen names
// layers.i.feed_forward.w1/w3.weight are views into its two halves (see stateDict()).
import { CtfError } from '../errors.js';
import { add, dropout } from '../engine/ops/elementwise.js';
import { addDropout, attentionBlock, prefixEmbedding, swigluFfn } from '../engine/ops/fused.js';
import { linear } from '../engine/ops/matmul.js';
import { rmsNorm } from '../engine/ops/norm.js';
import { ropeTable2d, type RopeTable } from '../engine/ops/rope.js';
import { slice } from '../engine/ops/shape.js';
import { crossEntropy } from '../engine/ops/softmax.js';
import { Rng } from '../engine/rng.js';
import { Tensor } from '../engine/tensor.js';

export interface GptConfig {
  inVocab: number;        // input token vocabulary: K for the coarse AR and the aux model, V for the baseline
  outVocab: number;       // output head: K (coarse AR), V (baseline, aux)
  numClasses: number;     // the class table has numClasses + 1 rows; the last is the null class (CFG)
  grid: number;           // tokens per side; an image is grid·grid tokens
  layers: number;
  dim: number;
  heads: number;          // head dim = dim / heads, a multiple of 4 (2D RoPE)
  causal: boolean;        // false for the auxiliary model
  dropout: number;        // embeddings, residual and FFN (LlamaGen: 0.1)
  classDropout: number;   // p(label → null) in training (LlamaGen: 0.1)
  ffnMultipleOf: number;  // hidden = find_multiple(int(8·dim/3), this) (LlamaGen: 256)
  normEps: number;        // RMSNorm eps (1e-5)
  ropeBase: number;       // 10000
  fineVocab: number;      // 0, or V + 1 for an aux that also reads already chosen fine tokens (masked refinement):
                          // its input adds fine_embeddings[f_i], row V being [MASK] (docs/gpt-checkpoint.md)
}

/** Sizes only; combine with the task fields via gptConfig(). */
export const GPT_PRESETS = {
  tiny: { layers: 2, dim: 64, heads: 4, ffnMultipleOf: 32 },      // tests
  S: { layers: 4, dim: 128, heads: 4, ffnMultipleOf: 64 },        // ~0.9M params in the blocks
  M: { layers: 4, dim: 256, heads: 8, ffnMultipleOf: 256 },       // the engine benchmark's model
  ML: { layers: 6, dim: 256, heads: 8, ffnMultipleOf: 256 },      // an aux ~3× baseline S (the paper's aux to GPT-B)
  L: { layers: 6, dim: 384, heads: 12, ffnMultipleOf: 256 },
  XL: { layers: 8, dim: 512, heads: 16, ffnMultipleOf: 256 },
} as const;
export type GptPreset = keyof typeof GPT_PRESETS;

export type GptTask = Pick<GptConfig, 'inVocab' | 'outVocab' | 'numClasses' | 'grid' | 'causal'>;

/** A full config from a preset, the task and any overrides; validated. */
export function gptConfig(preset: GptPreset, task: GptTask, overrides: Partial<GptConfig> = {}): GptConfig {
  const sizes = GPT_PRESETS[preset];
  if (!sizes) throw new CtfError(`gpt: unknown preset "${preset}" (known: ${Object.keys(GPT_PRESETS).join(', ')})`);
  const c: GptConfig = {
    ...sizes, dropout: 0.1, classDropout: 0.1, normEps: 1e-5, ropeBase: 10000, fineVocab: 0, ...task, ...overrides,
  };
  validateGptConfig(c);
  return c;
}

/**
 * The largest values a config may hold, checked before anything is allocated (a checkpoint's metadata can claim
 * anything). Far above every preset and the paper's GPT-B (12 layers, dim 768, 16×16 grid); head dim and grid
 * bound the RoPE table, (1 + grid²) × headDim floats.
 */
export const GPT_LIMITS = {
  inVocab: 1 << 20, outVocab: 1 << 20, numClasses: 1 << 16, grid: 64, layers: 256, dim: 16384, heads: 256,
  ffnMultipleOf: 1 << 16, headDim: 1024,
} as const;

/** A config as any build stored it: those before masked refinement have no fineVocab, which means 0. */
export function storedGptConfig(raw: unknown): unknown {
  const isObject = typeof raw === 'object' && raw !== null && !Array.isArray(raw);
  return isObject && !('fineVocab' in raw) ? { ...raw, fineVocab: 0 } : raw;
}

/** Checks every field's type and range; `config` may come from a file, so nothing is assumed about it. */
export function validateGptConfig(config: unknown): asserts config is GptConfig {
  if (typeof config !== 'object' || config === null || Array.isArray(config))
    throw new CtfError(`gpt config: expected an object, got ${JSON.stringify(config)?.slice(0, 60)}`);
  const c = config as Record<string, unknown>;
  const show = (k: string): string => `${k} = ${JSON.stringify(c[k]) ?? 'missing'}`;
  const ints = ['inVocab', 'outVocab', 'numClasses', 'grid', 'layers', 'dim', 'heads', 'ffnMultipleOf'] as const;
  for (const k of ints) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > GPT_LIMITS[k])
      throw new CtfError(`gpt config: ${show(k)}, expected an integer in [1, ${GPT_LIMITS[k]}]`);
  }
  const g = config as GptConfig;
  if (g.dim % g.heads !== 0) throw new CtfError(`gpt config: dim ${g.dim} is not divisible by heads ${g.heads}`);
  const headDim = g.dim / g.heads;
  if (headDim % 4 !== 0) throw new CtfError(`gpt config: head dim ${headDim} must be a multiple of 4 for 2D RoPE`);
  if (headDim > GPT_LIMITS.headDim)
    throw new CtfError(`gpt config: head dim ${headDim} = dim / heads, expected at most ${GPT_LIMITS.headDim}`);
  if (typeof c['causal'] !== 'boolean') throw new CtfError(`gpt config: ${show('causal')}, expected true or false`);
  for (const k of ['dropout', 'classDropout'] as const)
    if (typeof c[k] !== 'number' || !(g[k] >= 0 && g[k] < 1))
      throw new CtfError(`gpt config: ${show(k)}, expected a number in [0, 1)`);
  if (typeof c['normEps'] !== 'number' || !(g.normEps > 0 && g.normEps <= 1))
    throw new CtfError(`gpt config: ${show('normEps')}, expected a number in (0, 1]`);
  if (typeof c['ropeBase'] !== 'number' || !(g.ropeBase > 1) || !Number.isFinite(g.ropeBase))
    throw new CtfError(`gpt config: ${show('ropeBase')}, expected a finite number > 1`);
  const fine = c['fineVocab'], aux = g.outVocab + 1;
  if (typeof fine !== 'number' || (fine !== 0 && (g.causal || fine !== aux)))
    throw new CtfError(`gpt config: ${show('fineVocab')} must be 0, or outVocab + 1 = ${aux} for a bidirectional aux`);
}

/** LlamaGen's find_multiple(int(2·4·dim/3), multipleOf). */
export function ffnHidden(c: Pick<GptConfig, 'dim' | 'ffnMultipleOf'>): number {
  const n = Math.floor((2 * 4 * c.dim) / 3);
  return n % c.ffnMultipleOf === 0 ? n : n + c.ffnMultipleOf - (n % c.ffnMultipleOf);
}

export interface GptLayer {
  attnNorm: Tensor;  // (dim)
  wqkv: Tensor;      // (3·dim, dim), rows q | k | v
  wo: Tensor;        // (dim, dim)
  ffnNorm: Tensor;   // (dim)
  w13: Tensor;       // (2·hidden, dim), rows w1 | w3
  w2: Tensor;        // (dim, hidden)
}

/**
 * A trainable tensor under its checkpoint name (nanoGPT's named_parameters). The fused w1|w3 tensor of a block is
 * stored in checkpoints as its two row halves, under the names in `halves` (LlamaGen's w1 and w3).
 */
export interface NamedWeight {
  readonly name: string;
  readonly tensor: Tensor;
  readonly halves?: readonly [string, string];
}

/**
 * A block's tensors in the order a checkpoint holds them. weightsHash reads the weights in this order, so every
 * checkpoint written so far fixes it; Gpt.namedWeights itself is in parameter order (attention norm first).
 */
const CHECKPOINT_BLOCK_ORDER = ['attention.wqkv', 'attention.wo', 'feed_forward.w1', 'feed_forward.w2',
  'feed_forward.w3', 'attention_norm', 'ffn_norm'];

/** entries (name, ·) in parameter order -> checkpoint order: each layer's run sorted by CHECKPOINT_BLOCK_ORDER. */
function inCheckpointOrder<T>(entries: [string, T][]): [string, T][] {
  const layerOf = (name: string): string => /^layers\.\d+\./.exec(name)?.[0] ?? '';
  const rank = (name: string): number =>
    CHECKPOINT_BLOCK_ORDER.indexOf(/^layers\.\d+\.(.+)\.weight$/.exec(name)?.[1] ?? '');
  const out: [string, T][] = [];
  for (let i = 0, j = 1; i < entries.length; i = j, j = i + 1) {
    while (j < entries.length && layerOf(entries[j]![0]) === layerOf(entries[i]![0])) j++;
    out.push(...entries.slice(i, j).sort((x, y) => rank(x[0]) - rank(y[0])));  // stable: other runs keep their order
  }
  return out;
}

export interface ForwardOptions {
  training: boolean;
  /** Class and token/residual/FFN dropout randomness; required when training with dropout > 0. */
  rng?: Rng;
  /** (B·L) the fine token already chosen at each position, or fineVocab − 1 ([MASK]); masked-refinement aux only. */
  fineInputs?: Int32Array;
  /**
   * This call holds rows first … first + B − 1 of a batch of `total` rows (a rank's share in data-parallel
   * training): class dropout draws for all `total` rows and keeps these, dropout masks are those of these rows,
   * so the shares of N ranks see exactly the randomness of one process. Default: the whole batch.
   */
  rows?: { first: number; total: number };
}

/** A target that takes no loss (positions a masked-refinement aux is shown). */
export const IGNORE_TARGET = -1;

export class Gpt {
  readonly config: GptConfig;
  readonly hidden: number;
  readonly headDim: number;
  readonly clsTable: Tensor;  // (numClasses + 1, dim)
  readonly tokTable: Tensor;  // (inVocab, dim)
  readonly fineTable: Tensor | null;  // (fineVocab, dim) when config.fineVocab > 0
  readonly blocks: GptLayer[];
  readonly norm: Tensor;      // (dim)
  readonly output: Tensor;    // (outVocab, dim)
  /** (1 + grid², headDim/2): position 0 is the class token (zero rows), then the grid cells. */
  readonly rope: RopeTable;

  /**
   * Every trainable tensor under its checkpoint name, in parameter order: the one list that parameters(),
   * stateDict(), namedGradients() and the native inference handle (gpt-native.ts) are derived from.
   */
  readonly namedWeights: readonly NamedWeight[];

  /** LlamaGen init: normal(0, 0.02) for embeddings and linear weights, output head zero, norms one. */
  constructor(config: GptConfig, rng: Rng = new Rng(0)) {
    validateGptConfig(config);
    this.config = { ...config };
    const { dim, heads, layers } = config;
    this.hidden = ffnHidden(config);
    this.headDim = dim / heads;
    const weights: NamedWeight[] = [];
    const weight = (name: string, shape: number[], init: 'normal' | 'ones' | 'zeros',
      halves?: [string, string]): Tensor => {
      const t = new Tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, { requiresGrad: true, name });
      if (init === 'normal') rng.split(name).fillNormal(t.f32, 0, 0.02);
      if (init === 'ones') t.f32.fill(1);
      weights.push({ name, tensor: t, ...(halves ? { halves } : {}) });
      return t;
    };
    this.clsTable = weight('cls_embedding.embedding_table.weight', [config.numClasses + 1, dim], 'normal');
    this.tokTable = weight('tok_embeddings.weight', [config.inVocab, dim], 'normal');
    this.fineTable = config.fineVocab > 0 ? weight('fine_embeddings.weight', [config.fineVocab, dim], 'normal') : null;
    this.blocks = Array.from({ length: layers }, (_, i) => {
      const p = `layers.${i}.`;
      return {
        attnNorm: weight(`${p}attention_norm.weight`, [dim], 'ones'),
        wqkv: weight(`${p}attention.wqkv.weight`, [3 * dim, dim], 'normal'),
        wo: weight(`${p}attention.wo.weight`, [dim, dim], 'normal'),
        ffnNorm: weight(`${p}ffn_norm.weight`, [dim], 'ones'),
        w13: weight(`${p}feed_forward.w13.weight`, [2 * this.hidden, dim], 'normal',
          [`${p}feed_forward.w1.weight`, `${p}feed_forward.w3.weight`]),
        w2: weight(`${p}feed_forward.w2.weight`, [dim, this.hidden], 'normal'),
      };
    });
    this.norm = weight('norm.weight', [dim], 'ones');
    this.output = weight('output.weight', [config.outVocab, dim], 'zeros');
    this.namedWeights = weights;
    this.rope = ropeTable2d(config.grid, this.headDim, { base: config.ropeBase, prefix: 1 });
  }

  /** The trainable tensors (what the optimizer updates); w1|w3 is one tensor per layer. */
  parameters(): Tensor[] {
    return this.namedWeights.map((w) => w.tensor);
  }

  /**
   * LlamaGen's state_dict: name -> tensor sharing this model's memory (w1 and w3 are views of the
   * halves of w13, so loading into them loads the model), in checkpoint order.
   */
  stateDict(): Map<string, Tensor> {
    const shape = [this.hidden, this.config.dim];
    return new Map(this.checkpointEntries((t) => t, (t, i, name) => new Tensor(halfOf(t.f32, i), shape, { name })));
  }

  /** Gradients by LlamaGen name (views, null where none flowed), after backward(). */
  namedGradients(): Map<string, Float32Array | null> {
    return new Map(this.checkpointEntries((t) => t.grad, (t, i) => (t.grad ? halfOf(t.grad, i) : null)));
  }

  /** namedWeights under their checkpoint names, in checkpoint order: a fused weight as its two row halves. */
  private checkpointEntries<T>(whole: (t: Tensor) => T,
    half: (t: Tensor, i: number, name: string) => T): [string, T][] {
    return inCheckpointOrder(this.namedWeights.flatMap(({ name, tensor, halves }): [string, T][] =>
      halves ? halves.map((h, i) => [h, half(tensor, i, h)]) : [[name, whole(tensor)]]));
  }

  /** Labels after class dropout: each becomes the null class with probability classDropout (training only). */
  dropClasses(classes: Int32Array, o: ForwardOptions): Int32Array {
    const { numClasses, classDropout } = this.config;
    for (let b = 0; b < classes.length; b++) {
      const c = classes[b]!;
      if (!Number.isInteger(c) || c < 0 || c > numClasses)
        throw new CtfError(`gpt: class ${c} at batch row ${b} outside [0, ${numClasses}] ` +
          `(${numClasses} is the null class)`);
    }
    if (!o.training || classDropout === 0) return classes;
    const rng = requireRng(o, 'class dropout'), { first, total } = rowsOf(o, classes.length);
    const drop = new Uint8Array(total);
    for (let b = 0; b < total; b++) drop[b] = rng.uniform() < classDropout ? 1 : 0;
    return classes.map((c, b) => (drop[first + b] ? numClasses : c));
  }

  /**
   * classes (B), tokens (B·L) -> the input sequence (B, L+1, dim): [class; token embeddings], plus the fine-token
   * embeddings of o.fineInputs at the token positions for a masked-refinement aux. Class dropout when training.
   */
  embed(classes: Int32Array, tokens: Int32Array, o: ForwardOptions): Tensor {
    const B = classes.length, L = tokens.length / B;
    const h = prefixEmbedding(this.clsTable, new Tensor(this.dropClasses(classes, o), [B]), this.tokTable,
      new Tensor(tokens, [B, L]));
    this.checkFineInputs(tokens, o.fineInputs);
    if (!this.fineTable || !o.fineInputs) return h;
    this.noClass ??= new Tensor(new Float32Array(this.config.dim), [1, this.config.dim]);
    const fine = prefixEmbedding(this.noClass, new Tensor(new Int32Array(B), [B]), this.fineTable,
      new Tensor(o.fineInputs, [B, L]));
    return add(h, fine);
  }

  /** A masked-refinement aux needs one fine input per token; any other model takes none. */
  checkFineInputs(tokens: Int32Array, fineInputs: Int32Array | undefined): void {
    if (!this.fineTable) {
      if (fineInputs)
        throw new CtfError('gpt: fine inputs given to a model without a fine-token table (config.fineVocab = 0)');
    } else if (!fineInputs || fineInputs.length !== tokens.length) {
      throw new CtfError(`gpt: a masked-refinement aux needs one fine input per token (${tokens.length}), ` +
        `got ${fineInputs?.length ?? 'none'}`);
    }
  }

  private noClass: Tensor | null = null;  // (1, dim) zeros: the class position gets no fine embedding

  /**
   * classes (B) i32, tokens (B·L) i32 row-major -> logits.
   * Causal: the sequence is [class, tokens] and logits are (B, L+1, outVocab); position i predicts token i
   * (training: tokens = t_0 … t_{T-2}, logits predict t_0 … t_{T-1}).
   * Bidirectional: the same sequence, logits only at the token positions 1..L: (B, L, outVocab)
   * (the aux model: tokens = coarse labels c_0 … c_{T-1}, logits predict the fine labels).
   */
  forward(classes: Int32Array, tokens: Int32Array, o: ForwardOptions): Tensor {
    const c = this.config, B = classes.length;
    if (B === 0 || tokens.length % B !== 0)
      throw new CtfError(`gpt.forward: ${tokens.length} tokens do not split into ${B} rows`);
    const L = tokens.length / B;
    if (L + 1 > this.rope.rows)
      throw new CtfError(`gpt.forward: sequence of 1 + ${L} positions exceeds the grid's ${this.rope.rows} ` +
        `(grid ${c.grid})`);
    const p = o.training ? c.dropout : 0;
    const rng = p > 0 ? requireRng(o, 'dropout') : undefined;
    const first = rowsOf(o, B).first;
    let h = this.embed(classes, tokens, o);
    if (p > 0) h = dropout(h, p, rng!, true, first);
    const attn = { heads: c.heads, causal: c.causal, rope: this.rope };
    for (const blk of this.blocks) {
      const a = attentionBlock(rmsNorm(h, blk.attnNorm, c.normEps), blk.wqkv, blk.wo, attn);
      h = addDropout(h, a, p, rng, true, first);
      h = addDropout(h, swigluFfn(rmsNorm(h, blk.ffnNorm, c.normEps), blk.w13, blk.w2), p, rng, true, first);
    }
    if (!c.causal) h = slice(h, 1, 1);                                                              // (B, L, dim)
    return linear(rmsNorm(h, this.norm, c.normEps), this.output);
  }

  /**
   * Mean cross-entropy of forward(classes, inputs) against targets (B·T) i32. Causal: inputs (B·(T-1)),
   * targets (B·T) = the full sequence. Bidirectional: inputs (B·T) coarse labels, targets (B·T) fine labels.
   */
  loss(classes: Int32Array, inputs: Int32Array, targets: Int32Array,
    o: ForwardOptions): { loss: Tensor; logits: Tensor } {
    const logits = this.forward(classes, inputs, o);
    const [B, T] = logits.shape as [number, number, number];
    if (targets.length !== B * T) {
      const why = this.config.causal
        ? 'causal: inputs are the targets minus the last token' : 'bidirectional: one target per input';
      throw new CtfError(`gpt.loss: ${targets.length} targets for logits of ${B}×${T} positions (${why})`);
    }
    // Masked refinement: the loss is on the masked positions only; the others carry IGNORE_TARGET.
    const ignore = o.fineInputs ? { ignoreIndex: IGNORE_TARGET } : {};
    return { loss: crossEntropy(logits, new Tensor(targets, [B, T]), ignore), logits };
  }

  /** Number of trainable scalars. */
  numParameters(): number {
    return this.parameters().reduce((n, t) => n + t.size, 0);
  }

  /**
   * Zeroes the parameters' gradients in place (allocated once, on the first backward): a fresh zeroed
   * 14 MB each step would cost a page fault per 4 KiB inside the weight-gradient GEMMs.
   */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad?.fill(0);
  }
}

/** Row half i (0 or 1) of a buffer holding two equal halves. */
function halfOf(a: Float32Array, i: number): Float32Array {
  return a.subarray((i * a.length) / 2, ((i + 1) * a.length) / 2);
}

/** The rows a call holds within its batch (ForwardOptions.rows), checked; the whole batch by default. */
function rowsOf(o: ForwardOptions, B: number): { first: number; total: number } {
  const r = o.rows ?? { first: 0, total: B };
  if (!(Number.isInteger(r.first) && Number.isInteger(r.total) && r.first >= 0 && r.first + B <= r.total))
    throw new CtfError(`gpt: ${B} rows from row ${r.first} do not fit a batch of ${r.total} rows`);
  return r;
}

function requireRng(o: ForwardOptions, what: string): Rng {
  if (!o.rng) throw new CtfError(`gpt.forward: training with ${what} needs an rng in the options`);
  return o.rng;
}
