// Softmax and log-softmax over the last axis, and the fused cross-entropy whose forward kernel also writes
// the gradient (softmax − onehot)/count, so the logits never get a second V-sized buffer. native/softmax.cc.
import { CtfError } from '../../errors.js';
import { gradOf, isRecording, record } from '../autograd.js';
import { kernel } from '../native.js';
import { Tensor, shapeStr } from '../tensor.js';
import { axpy } from './elementwise.js';
import { indexOf } from './embedding.js';

type RowsKernel = (x: Float32Array, out: Float32Array, V: number) => void;
type RowsBackward = (y: Float32Array, g: Float32Array, gx: Float32Array, V: number) => void;
type CrossEntropyForward = (
  logits: Float32Array,
  targets: Int32Array,
  V: number,
  hasIgnore: boolean,
  ignoreIndex: number,
  dlogits: Float32Array | null,
) => { loss: number; count: number; bad: number };

const softmaxForward = kernel<RowsKernel>('softmaxForward');
const softmaxBackward = kernel<RowsBackward>('softmaxBackward');
const logSoftmaxForward = kernel<RowsKernel>('logSoftmaxForward');
const logSoftmaxBackward = kernel<RowsBackward>('logSoftmaxBackward');
const crossEntropyForward = kernel<CrossEntropyForward>('crossEntropyForward');

function lastAxis(x: Tensor, op: string): number {
  if (x.dtype !== 'f32' || x.ndim < 1 || x.dim(-1) === 0)
    throw new CtfError(`${op}: ${x.describe()} must be an f32 tensor with a non-empty last axis`);
  return x.dim(-1);
}

function rowwise(op: string, fwd: RowsKernel, bwd: RowsBackward, x: Tensor): Tensor {
  const V = lastAxis(x, op);
  const out = new Tensor(new Float32Array(x.size), x.shape);
  fwd(x.f32, out.f32, V);
  return record(op, out, [x], (g) => {
    const gx = gradOf(x);
    if (gx) bwd(out.f32, g, gx, V);
  });
}

/** exp(x) / Σ exp(x) over the last axis. */
export function softmax(x: Tensor): Tensor {
  return rowwise('softmax', softmaxForward, softmaxBackward, x);
}

/** x − log Σ exp(x) over the last axis. */
export function logSoftmax(x: Tensor): Tensor {
  return rowwise('logSoftmax', logSoftmaxForward, logSoftmaxBackward, x);
}

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (no loss, no gradient, not counted in the mean). Default: none. */
  ignoreIndex?: number;
}

/**
 * Mean over non-ignored positions of −log softmax(logits)[target]: logits (..., V) f32, targets (...) i32
 * -> scalar. All positions ignored gives NaN (as PyTorch). The forward kernel writes the gradient
 * (softmax − onehot)/count into the one extra (…, V) buffer; the backward scales it by the incoming
 * gradient and hands it to the logits (adopted as their gradient when they have none yet).
 */
export function crossEntropy(logits: Tensor, targets: Tensor, o: CrossEntropyOptions = {}): Tensor {
  const V = lastAxis(logits, 'crossEntropy');
  if (targets.dtype !== 'i32')
    throw new CtfError(`crossEntropy: targets ${targets.describe()} must be i32, got ${targets.dtype}`);
  const rowShape = logits.shape.slice(0, -1);
  if (shapeStr(targets.shape) !== shapeStr(rowShape))
    throw new CtfError(`crossEntropy: targets ${targets.describe()} must have shape ${shapeStr(rowShape)} to match ` +
      `logits ${logits.describe()}`);
  const ignore = o.ignoreIndex;
  if (ignore !== undefined && !Number.isInteger(ignore))
    throw new CtfError(`crossEntropy: ignoreIndex ${ignore} must be an integer`);
  const needGrad = isRecording() && logits.requiresGrad;
  const dlogits = needGrad ? new Float32Array(logits.size) : null; // (..., V)
  const r = crossEntropyForward(logits.f32, targets.i32, V, ignore !== undefined, ignore ?? 0, dlogits);
  if (r.bad >= 0)
    throw new CtfError(`crossEntropy: target ${targets.i32[r.bad]} at position ${indexOf(targets.shape, r.bad)} of ` +
      `${targets.describe()} ` +
      `is out of range for logits ${logits.describe()} (classes ` +
      `0..${V - 1}${ignore !== undefined ? `, or ignoreIndex ${ignore}` : ''})`);
  const out = new Tensor(Float32Array.of(r.loss), []);
  if (!dlogits) return out;
  return record('crossEntropy', out, [logits], (g) => {
    const scale = g[0]!;
    if (logits.grad === null) {
      // Nothing accumulated yet: the gradient buffer becomes the logits' gradient, no copy.
      if (scale !== 1) axpy(scale - 1, dlogits, dlogits); // dlogits *= scale, in place
      logits.grad = dlogits;
    } else {
      axpy(scale, dlogits, logits.grad);
    }
  });
}
