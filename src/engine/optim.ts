// AdamW with decoupled weight decay (torch.optim.AdamW's arithmetic, one fused native kernel per
// parameter) and global-norm gradient clipping (torch.nn.utils.clip_grad_norm_).
import { CtfError } from '../errors.js';
import { kernel } from './native.js';
import { Tensor, expectDType } from './tensor.js';

type F32 = Float32Array;
const adamwStep = kernel<(p: F32, g: F32, m: F32, v: F32, decay: number, beta1: number, beta2: number, eps: number,
  stepSize: number, bc2Sqrt: number) => void>('adamwStep');
const optimSumSquares = kernel<(g: F32) => number>('optimSumSquares');
const optimScale = kernel<(g: F32, scale: number) => void>('optimScale');

export interface AdamWOptions {
  lr: number;
  betas?: readonly [number, number];  // default [0.9, 0.95] (LlamaGen)
  eps?: number;                       // default 1e-8
  weightDecay?: number;               // default 0.05; decoupled: p ← p·(1 − lr·wd) before the Adam update
  /**
   * Which parameters decay; default t.ndim ≥ 2 (weight matrices, conv kernels, embeddings; not biases or norm gains).
   */
  decayFilter?: (t: Tensor, name: string) => boolean;
}

/** Everything needed to resume exactly: the step count and both moments of every parameter, by name. */
export interface AdamWState {
  step: number;
  expAvg: Record<string, Float32Array>;    // m, first moment
  expAvgSq: Record<string, Float32Array>;  // v, second moment
}

interface Slot { name: string; param: Tensor; decay: boolean; m: Float32Array; v: Float32Array }

export class AdamW {
  /** Base learning rate; step(lr) overrides it for one step (schedules pass theirs). */
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Optimizer steps taken (bias correction uses it; parameters without a gradient are skipped but counted). */
  stepCount = 0;
  private readonly slots: Slot[];

  /** params: tensors named by t.name (unnamed ones become "param.<index>"), or a record name → tensor. */
  constructor(params: readonly Tensor[] | Readonly<Record<string, Tensor>>, o: AdamWOptions) {
    const named: [string, Tensor][] = Array.isArray(params)
      ? (params as readonly Tensor[]).map((t, i) => [t.name ?? `param.${i}`, t])
      : Object.entries(params as Record<string, Tensor>);
    [this.beta1, this.beta2] = o.betas ?? [0.9, 0.95];
    this.eps = o.eps ?? 1e-8;
    this.weightDecay = o.weightDecay ?? 0.05;
    this.lr = o.lr;
    checkLr(o.lr);
    for (const b of [this.beta1, this.beta2])
      if (!(b >= 0 && b < 1)) throw new CtfError(`AdamW: betas ${JSON.stringify(o.betas)} must lie in [0, 1)`);
    if (!(this.eps >= 0) || !(this.weightDecay >= 0))
      throw new CtfError(`AdamW: eps ${this.eps} and weightDecay ${this.weightDecay} must be ≥ 0`);
    const filter = o.decayFilter ?? ((t: Tensor) => t.ndim >= 2);
    const names = new Set<string>(), tensors = new Set<Tensor>();
    this.slots = named.map(([name, param]) => {
      expectDType(param, 'f32', `AdamW parameter "${name}"`);
      if (names.has(name))
        throw new CtfError(`AdamW: two parameters are named "${name}"; names key the optimizer state`);
      if (tensors.has(param)) throw new CtfError(`AdamW: parameter "${name}" (${param.describe()}) is listed twice`);
      names.add(name);
      tensors.add(param);
      return {
        name,
        param,
        decay: filter(param, name),
        m: new Float32Array(param.size),
        v: new Float32Array(param.size),
      };
    });
  }

  /** Names of the parameters that receive weight decay (for logs and tests). */
  decayed(): string[] {
    return this.slots.filter((s) => s.decay).map((s) => s.name);
  }

  /** One update of every parameter that has a gradient, with lr (default this.lr). */
  step(lr = this.lr): void {
    checkLr(lr);
    this.stepCount++;
    const bc1 = 1 - this.beta1 ** this.stepCount, bc2 = 1 - this.beta2 ** this.stepCount;
    for (const s of this.slots) {
      const g = s.param.grad;
      if (g === null) continue;
      adamwStep(s.param.f32, g, s.m, s.v, s.decay ? lr * this.weightDecay : 0, this.beta1, this.beta2, this.eps,
        lr / bc1, Math.sqrt(bc2));
    }
  }

  /**
   * Clears gradients before the next backward. Default: fills existing gradient buffers with 0 and keeps
   * them (no reallocation each step; a parameter unused in a step then still decays and moves on its
   * momentum, like torch's zero_grad(set_to_none=False)). setToNone = true drops them instead, so
   * parameters without a gradient in the next step are skipped entirely.
   */
  zeroGrad(setToNone = false): void {
    for (const s of this.slots) {
      if (setToNone) s.param.grad = null;
      else s.param.grad?.fill(0);
    }
  }

  /** A copy of the optimizer state (safe to serialise while training continues). */
  stateDict(): AdamWState {
    const expAvg: Record<string, Float32Array> = {}, expAvgSq: Record<string, Float32Array> = {};
    for (const s of this.slots) {
      expAvg[s.name] = Float32Array.from(s.m);
      expAvgSq[s.name] = Float32Array.from(s.v);
    }
    return { step: this.stepCount, expAvg, expAvgSq };
  }

  /** Restores a stateDict(); every parameter must be present with the same size, and no others. */
  loadStateDict(st: AdamWState): void {
    if (!Number.isInteger(st.step) || st.step < 0)
      throw new CtfError(`AdamW state: step ${st.step} must be an integer ≥ 0`);
    const known = new Set(this.slots.map((s) => s.name));
    for (const table of [st.expAvg, st.expAvgSq])
      for (const name of Object.keys(table))
        if (!known.has(name))
          throw new CtfError(
            `AdamW state: "${name}" is not a parameter of this optimizer — was it saved from another model?`,
          );
    for (const s of this.slots) {
      const m = st.expAvg[s.name], v = st.expAvgSq[s.name];
      if (m === undefined || v === undefined) throw new CtfError(`AdamW state: no moments for parameter "${s.name}"`);
      if (m.length !== s.param.size || v.length !== s.param.size)
        throw new CtfError(`AdamW state: "${s.name}" has ${m.length}/${v.length} moment values, parameter ` +
          `${s.param.describe()} has ${s.param.size}`);
    }
    for (const s of this.slots) {
      s.m.set(st.expAvg[s.name]!);
      s.v.set(st.expAvgSq[s.name]!);
    }
    this.stepCount = st.step;
  }
}

function checkLr(lr: number): void {
  if (!(lr >= 0) || !Number.isFinite(lr)) throw new CtfError(`AdamW: learning rate ${lr} must be a finite number ≥ 0`);
}

/**
 * Scales all gradients in place so their global L2 norm is at most maxNorm, like
 * torch.nn.utils.clip_grad_norm_: coef = min(1, maxNorm / (norm + 1e-6)). Returns the norm before
 * clipping (accumulated in float64). A non-finite norm is returned as is and, as in torch, poisons
 * the gradients (coef NaN); callers that want to skip such steps check the return value first.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number): number {
  if (!(maxNorm > 0)) throw new CtfError(`clipGradNorm: maxNorm ${maxNorm} must be > 0`);
  const grads: Float32Array[] = [];
  for (const p of params) if (p.grad !== null) grads.push(p.grad);
  let sq = 0;
  for (const g of grads) sq += optimSumSquares(g);
  const norm = Math.sqrt(sq);
  const coef = Math.min(maxNorm / (norm + 1e-6), 1);
  if (!(coef >= 1)) for (const g of grads) optimScale(g, coef);
  return norm;
}
