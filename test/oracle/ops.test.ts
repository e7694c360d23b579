// Every op against PyTorch: forward and input gradients of sum(out · w) from test/fixtures/ops/*.safetensors
// (written by `npm run oracle`, computed in float64 from the same float32 inputs; see oracle/README.md).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backward, noGrad } from '../../src/engine/autograd.js';
import { attention } from '../../src/engine/ops/attention.js';
import { conv2d, upsampleNearest2d } from '../../src/engine/ops/conv.js';
import * as ew from '../../src/engine/ops/elementwise.js';
import { embedding } from '../../src/engine/ops/embedding.js';
import { linear, matmul } from '../../src/engine/ops/matmul.js';
import { groupNorm, layerNorm, rmsNorm } from '../../src/engine/ops/norm.js';
import { mean, sum } from '../../src/engine/ops/reduce.js';
import { rope2d, ropeTable2d } from '../../src/engine/ops/rope.js';
import { concat, permute, reshape, slice, transpose } from '../../src/engine/ops/shape.js';
import { crossEntropy, logSoftmax, softmax } from '../../src/engine/ops/softmax.js';
import { AdamW, clipGradNorm } from '../../src/engine/optim.js';
import { Tensor } from '../../src/engine/tensor.js';
import type { SafetensorsFile } from '../../src/io/safetensors.js';
import { assertClose } from '../helpers.js';
import { fx, loadFixture } from './fixtures.js';

interface Case { name: string; fn: string; args: Record<string, unknown>; inputs: string[]; grads: string[] }
type Inputs = Record<string, Tensor>;
type Args = Record<string, unknown>;
type OpRunner = (x: Inputs, a: Args) => Tensor;
interface Tol { atol: number; rtol: number }

const num = (a: Args, k: string): number => a[k] as number;
const opt = (x: Inputs, k: string): Tensor | undefined => x[k];

const RUNNERS: Record<string, OpRunner> = {
  matmul: (x, a) => matmul(x['a']!, x['b']!, { transA: a['transA'] as boolean, transB: a['transB'] as boolean }),
  linear: (x) => linear(x['x']!, x['w']!),
  add: (x) => ew.add(x['a']!, x['b']!),
  sub: (x) => ew.sub(x['a']!, x['b']!),
  mul: (x) => ew.mul(x['a']!, x['b']!),
  div: (x) => ew.div(x['a']!, x['b']!),
  addScalar: (x, a) => ew.addScalar(x['a']!, num(a, 's')),
  mulScalar: (x, a) => ew.mulScalar(x['a']!, num(a, 's')),
  neg: (x) => ew.neg(x['a']!),
  exp: (x) => ew.exp(x['a']!),
  log: (x) => ew.log(x['a']!),
  sqrt: (x) => ew.sqrt(x['a']!),
  relu: (x) => ew.relu(x['a']!),
  silu: (x) => ew.silu(x['a']!),
  gelu: (x) => ew.gelu(x['a']!),
  sum: (x, a) => sum(x['x']!, (a['axes'] ?? undefined) as number | number[] | undefined, a['keepDim'] as boolean),
  mean: (x, a) => mean(x['x']!, (a['axes'] ?? undefined) as number | number[] | undefined, a['keepDim'] as boolean),
  reshape: (x, a) => reshape(x['x']!, a['shape'] as number[]),
  transpose: (x, a) => transpose(x['x']!, num(a, 'd0'), num(a, 'd1')),
  permute: (x, a) => permute(x['x']!, a['dims'] as number[]),
  slice: (x, a) => slice(x['x']!, num(a, 'axis'), num(a, 'start'), num(a, 'end')),
  concat: (x, a) =>
    concat(
      Object.keys(x)
        .sort()
        .map((k) => x[k]!),
      num(a, 'axis'),
    ),
  embedding: (x) => embedding(x['table']!, x['ids']!),
  softmax: (x) => softmax(x['x']!),
  logSoftmax: (x) => logSoftmax(x['x']!),
  crossEntropy: (x, a) =>
    crossEntropy(x['logits']!, x['targets']!, a['ignoreIndex'] === null ? {} : { ignoreIndex: num(a, 'ignoreIndex') }),
  rmsNorm: (x, a) => rmsNorm(x['x']!, x['weight']!, num(a, 'eps')),
  layerNorm: (x, a) => layerNorm(x['x']!, opt(x, 'weight'), opt(x, 'bias'), num(a, 'eps')),
  groupNorm: (x, a) => groupNorm(x['x']!, num(a, 'groups'), opt(x, 'weight'), opt(x, 'bias'), num(a, 'eps')),
  conv2d: (x, a) =>
    conv2d(x['x']!, x['w']!, opt(x, 'bias') ?? null, { stride: num(a, 'stride'), padding: num(a, 'padding') }),
  upsampleNearest2d: (x, a) => upsampleNearest2d(x['x']!, num(a, 'scale')),
  attention: (x, a) => attention(x['q']!, x['k']!, x['v']!, { causal: a['causal'] as boolean, mask: opt(x, 'mask') }),
  rope2d: (x) => {
    const cos = x['cos']!,
      sin = x['sin']!;
    return rope2d(x['x']!, { cos: cos.f32, sin: sin.f32, rows: cos.dim(0), headDim: 2 * cos.dim(1) });
  },
};

// float32 kernels against a float64 reference: every case currently passes at atol 2e-6, rtol 2e-5; this leaves
// room for a different summation order or a vectorised exp, not for a wrong formula.
const DEFAULT_TOL: Tol = { atol: 5e-6, rtol: 5e-5 };
const FILE_TOL: Record<string, Tol> = {};

function cases(file: SafetensorsFile): Case[] {
  return JSON.parse(file.metadata['cases'] ?? '[]') as Case[];
}

function runCase(file: SafetensorsFile, c: Case, tol: Tol): void {
  const inputs: Inputs = {};
  for (const k of c.inputs) {
    const t = fx(file, `${c.name}.in.${k}`);
    // A fresh copy per case: the file's arrays stay pristine, and inputs needing grad are leaves.
    const data = t.data.slice() as Float32Array | Int32Array;
    inputs[k] = new Tensor(data, t.shape, { requiresGrad: c.grads.includes(k), name: k });
  }
  const run = RUNNERS[c.fn];
  if (!run) throw new Error(`no TS runner for fixture op "${c.fn}"`);
  const out = run(inputs, c.args);
  const want = fx(file, `${c.name}.out`);
  // A scalar may come back as shape [] or [1].
  if (!(want.size === 1 && out.size === 1)) assert.deepEqual(out.shape, want.shape, `${c.name}: output shape`);
  assertClose(out.f32, want.f32, { ...tol, what: `${c.name} forward` });
  if (c.grads.length === 0) return;
  backward(out, fx(file, `${c.name}.w`).f32);
  for (const k of c.grads) {
    const g = inputs[k]!.grad ?? new Float32Array(inputs[k]!.size);
    assertClose(g, fx(file, `${c.name}.grad.${k}`).f32, { ...tol, what: `${c.name} d/d${k}` });
  }
}

for (const name of [
  'matmul',
  'elementwise',
  'reduce',
  'shape',
  'embedding',
  'softmax',
  'norm',
  'conv',
  'attention',
  'rope',
]) {
  const file = loadFixture(`ops/${name}.safetensors`);
  for (const c of cases(file))
    test(`oracle ${name}: ${c.name} (${c.fn})`, () => runCase(file, c, FILE_TOL[name] ?? DEFAULT_TOL));
}

test('oracle rope: ropeTable2d equals LlamaGen precompute_freqs_cis_2d (class row zero)', () => {
  const file = loadFixture('ops/rope.safetensors');
  const c = cases(file).find((k) => k.fn === 'rope2d')!;
  const grid = num(c.args, 'grid'), hd = num(c.args, 'headDim');
  const table = ropeTable2d(grid, hd, { base: num(c.args, 'base') });
  const cos = fx(file, 'rope_table.cos'), sin = fx(file, 'rope_table.sin');
  assert.equal(table.rows, cos.dim(0));
  assertClose(table.cos, cos.f32, { atol: 1e-6, rtol: 0, what: 'cos table' });
  assertClose(table.sin, sin.f32, { atol: 1e-6, rtol: 0, what: 'sin table' });
  assert.ok(table.cos.subarray(0, hd / 2).every((v) => v === 0) && table.sin.subarray(0, hd / 2).every((v) => v === 0));
});

// ---- optimizer and clipping: the fixtures hold parameters after each step, not op gradients
function paramsOf(file: SafetensorsFile, prefix: string, names: string[]): Map<string, Tensor> {
  return new Map(names.map((n) => {
    const t = fx(file, `${prefix}.${n}`);
    return [n, new Tensor(t.f32.slice(), t.shape, { requiresGrad: true, name: n })];
  }));
}

const optimFile = loadFixture('ops/optim.safetensors');
for (const c of cases(optimFile)) {
  if (c.fn === 'AdamW') {
    test(`oracle optim: ${c.name} (AdamW, 3 steps, decay on ≥2-D only)`, () => {
      const params = paramsOf(optimFile, `${c.name}.init`, c.inputs);
      const a = c.args;
      const opt = new AdamW([...params.values()], {
        lr: num(a, 'lr'), betas: a['betas'] as [number, number], eps: num(a, 'eps'), weightDecay: num(a, 'weightDecay'),
        decayFilter: (p: Tensor) => p.ndim >= 2,
      });
      for (let step = 1; step <= num(a, 'steps'); step++) {
        for (const [n, p] of params) p.grad = fx(optimFile, `${c.name}.step${step}.grad.${n}`).f32.slice();
        noGrad(() => opt.step());
        for (const [n, p] of params)
          assertClose(p.f32, fx(optimFile, `${c.name}.step${step}.param.${n}`).f32, {
            atol: 1e-6,
            rtol: 1e-5,
            what: `${c.name} step ${step} ${n}`,
          });
      }
    });
  } else if (c.fn === 'clipGradNorm') {
    test(`oracle optim: ${c.name} (clipGradNorm to ${num(c.args, 'maxNorm')})`, () => {
      const params = paramsOf(optimFile, `${c.name}.grad`, c.inputs);
      for (const [n, p] of params) p.grad = fx(optimFile, `${c.name}.grad.${n}`).f32.slice();
      const norm = noGrad(() => clipGradNorm([...params.values()], num(c.args, 'maxNorm')));
      assertClose([norm], fx(optimFile, `${c.name}.norm`).f32, { atol: 1e-6, rtol: 1e-5, what: 'total norm' });
      for (const [n, p] of params)
        assertClose(p.grad!, fx(optimFile, `${c.name}.clipped.${n}`).f32, {
          atol: 1e-6,
          rtol: 1e-5,
          what: `clipped ${n}`,
        });
    });
  }
}
