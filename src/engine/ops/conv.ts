// 2-D convolution (im2col + sgemm, native/conv.cc) and nearest-neighbour upsampling, NCHW.
import { CtfError } from '../../errors.js';
import { gradOf, record } from '../autograd.js';
import { kernel } from '../native.js';
import { Tensor, expectDType, shapeStr } from '../tensor.js';

type Dims = [N: number, C: number, H: number, W: number, O: number, kh: number, kw: number,
  strideH: number, strideW: number, padH: number, padW: number];
type ScratchSize = (...dims: Dims) => number;
type ConvForward = (x: Float32Array, w: Float32Array, bias: Float32Array | null, y: Float32Array,
  scratch: Float32Array, ...dims: Dims) => void;
type ConvBackward = (x: Float32Array, w: Float32Array, dy: Float32Array, dx: Float32Array | null,
  dw: Float32Array | null, db: Float32Array | null, scratch: Float32Array, ...dims: Dims) => void;
type Upsample = (src: Float32Array, dst: Float32Array, NC: number, H: number, W: number, scale: number) => void;

const conv2dScratchSize = kernel<ScratchSize>('conv2dScratchSize');
const conv2dForward = kernel<ConvForward>('conv2dForward');
const conv2dBackward = kernel<ConvBackward>('conv2dBackward');
const upsampleNearestForward = kernel<Upsample>('upsampleNearestForward');
const upsampleNearestBackward = kernel<Upsample>('upsampleNearestBackward');

// One column buffer shared by every convolution (forward and backward run one at a time); it only grows.
let scratch = new Float32Array(0);
function scratchFor(dims: Dims): Float32Array {
  const need = conv2dScratchSize(...dims);
  if (scratch.length < need) scratch = new Float32Array(need);
  return scratch;
}

export interface Conv2dOptions {
  stride?: number | readonly [number, number];   // default 1
  padding?: number | readonly [number, number];  // zero padding on each side, default 0
}

function pair(
  v: number | readonly [number, number] | undefined,
  dflt: number,
  what: string,
  min: number,
): [number, number] {
  const p: [number, number] = v === undefined ? [dflt, dflt] : typeof v === 'number' ? [v, v] : [v[0], v[1]];
  if (!p.every((d) => Number.isInteger(d) && d >= min))
    throw new CtfError(`conv2d: ${what} ${JSON.stringify(v)} must be integer(s) ≥ ${min}`);
  return p;
}

/**
 * x (N, C, H, W) ⊛ w (O, C, kh, kw) + bias (O) -> (N, O, Ho, Wo), Ho = ⌊(H + 2·padH − kh) / strideH⌋ + 1.
 * Cross-correlation like torch.nn.functional.conv2d.
 */
export function conv2d(x: Tensor, w: Tensor, bias: Tensor | null = null, o: Conv2dOptions = {}): Tensor {
  expectDType(x, 'f32', 'conv2d input');
  expectDType(w, 'f32', 'conv2d weight');
  if (x.ndim !== 4) throw new CtfError(`conv2d: input ${x.describe()} must be (N, C, H, W)`);
  if (w.ndim !== 4) throw new CtfError(`conv2d: weight ${w.describe()} must be (O, C, kh, kw)`);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const [O, Cw, kh, kw] = w.shape as [number, number, number, number];
  if (Cw !== C)
    throw new CtfError(`conv2d: weight ${w.describe()} expects ${Cw} input channels, input ${x.describe()} has ${C}`);
  if (bias !== null) {
    expectDType(bias, 'f32', 'conv2d bias');
    if (bias.ndim !== 1 || bias.dim(0) !== O)
      throw new CtfError(`conv2d: bias ${bias.describe()} must have shape [${O}]`);
  }
  const [sh, sw] = pair(o.stride, 1, 'stride', 1);
  const [ph, pw] = pair(o.padding, 0, 'padding', 0);
  if (H + 2 * ph < kh || W + 2 * pw < kw || C === 0 || O === 0)
    throw new CtfError(
      `conv2d: kernel ${shapeStr([kh, kw])} does not fit input ${x.describe()} with padding ${shapeStr([ph, pw])}`,
    );
  const Ho = Math.floor((H + 2 * ph - kh) / sh) + 1, Wo = Math.floor((W + 2 * pw - kw) / sw) + 1;
  const dims: Dims = [N, C, H, W, O, kh, kw, sh, sw, ph, pw];
  const out = new Tensor(new Float32Array(N * O * Ho * Wo), [N, O, Ho, Wo]);
  conv2dForward(x.f32, w.f32, bias === null ? null : bias.f32, out.f32, scratchFor(dims), ...dims);

  const inputs = bias === null ? [x, w] : [x, w, bias];
  return record('conv2d', out, inputs, (dy) => {
    const dx = gradOf(x), dw = gradOf(w), db = bias === null ? null : gradOf(bias);
    if (dx || dw || db) conv2dBackward(x.f32, w.f32, dy, dx, dw, db, scratchFor(dims), ...dims);
  });
}

/** x (N, C, H, W) -> (N, C, H·scale, W·scale), each pixel repeated over a scale×scale block (integer scale). */
export function upsampleNearest2d(x: Tensor, scale: number): Tensor {
  expectDType(x, 'f32', 'upsampleNearest2d input');
  if (x.ndim !== 4) throw new CtfError(`upsampleNearest2d: input ${x.describe()} must be (N, C, H, W)`);
  if (!Number.isInteger(scale) || scale < 1)
    throw new CtfError(`upsampleNearest2d: scale ${scale} must be an integer ≥ 1`);
  const [N, C, H, W] = x.shape as [number, number, number, number];
  const out = new Tensor(new Float32Array(x.size * scale * scale), [N, C, H * scale, W * scale]);
  upsampleNearestForward(x.f32, out.f32, N * C, H, W, scale);
  return record('upsampleNearest2d', out, [x], (dy) => {
    const dx = gradOf(x);
    if (dx) upsampleNearestBackward(dy, dx, N * C, H, W, scale);
  });
}
