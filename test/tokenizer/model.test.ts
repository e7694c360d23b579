import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backward } from '../../src/engine/autograd.js';
import { AdamW } from '../../src/engine/optim.js';
import { Rng } from '../../src/engine/rng.js';
import { Tensor, intTensor } from '../../src/engine/tensor.js';
import { CtfError } from '../../src/errors.js';
import { TOKENIZER_PRESETS, tokenizerConfig } from '../../src/tokenizer/config.js';
import { VqTokenizer } from '../../src/tokenizer/model.js';
import { mseInside, psnr as psnrOf } from '../../src/tokenizer/metrics.js';
import { toModelInput } from '../../src/data/model-input.js';
import { ResBlock } from '../../src/nn/resblock.js';
import { gradcheck, randn } from '../helpers.js';
import { syntheticDataset } from './synthetic.js';

const tinyConfig = (o: { codebookSize?: number; inChannels?: number } = {}) =>
  tokenizerConfig('tiny', { inChannels: o.inChannels ?? 1, imageSize: 32 }, { codebookSize: o.codebookSize ?? 64 });

function images(n: number, channels = 1, seed = 0): Tensor {
  const ds = syntheticDataset(n, { channels, seed });
  return new Tensor(toModelInput(ds, Int32Array.from({ length: n }, (_, i) => i)).x, [n, channels, 32, 32]);
}

test('encode → decode round trip: 8×8 token grids in the codebook, images of the input shape (grey and colour)', () => {
  for (const C of [1, 3]) {
    const model = new VqTokenizer(tinyConfig({ inChannels: C }), new Rng(1));
    assert.equal(model.grid, 8);
    const x = images(3, C);
    const tokens = model.encode(x);
    assert.deepEqual(tokens.shape, [3, 8, 8]);
    assert.equal(tokens.dtype, 'i32');
    for (const t of tokens.i32) assert.ok(t >= 0 && t < 64);
    const y = model.decode(tokens);
    assert.deepEqual(y.shape, [3, C, 32, 32]);
    // decode(encode(x)) is exactly the reconstruction of the training forward
    const { recon, index } = model.reconstruct(x);
    assert.deepEqual(Array.from(index), Array.from(tokens.i32));
    assert.deepEqual(Array.from(y.f32), Array.from(recon.f32));
    assert.deepEqual(model.decode(intTensor(tokens.i32, [3, 64])).shape, [3, C, 32, 32]);
  }
});

test('every preset builds and maps 32×32 to 8×8 tokens', () => {
  for (const p of Object.keys(TOKENIZER_PRESETS)) {
    const cfg = tokenizerConfig(p, { inChannels: 1, imageSize: 32 });
    assert.equal(cfg.codebookSize, 4096);
    const m = new VqTokenizer({ ...cfg, codebookSize: 16 });
    assert.equal(m.grid, 8, p);
  }
  assert.throws(() => tokenizerConfig('huge', { inChannels: 1, imageSize: 32 }), /unknown preset "huge"/);
  assert.throws(
    () => tokenizerConfig('tiny', { inChannels: 1, imageSize: 30 }),
    /not divisible by the downsampling factor 4/,
  );
});

test('bad inputs give clear errors', () => {
  const model = new VqTokenizer(tinyConfig(), new Rng(0));
  assert.throws(
    () => model.encode(images(2, 3)),
    (e: unknown) => e instanceof CtfError && /must be f32 \(B, 1, 32, 32\)/.test(e.message),
  );
  assert.throws(() => model.decode(intTensor([1, 2, 3], [1, 3])), /must be i32 \(B, 8, 8\)/);
});

test('seeds make models and training repeatable; another seed differs', () => {
  const run = (seed: number): number[] => {
    const model = new VqTokenizer(tinyConfig(), new Rng(seed));
    const opt = new AdamW(model.parameters(), { lr: 2e-3, weightDecay: 0 });
    const x = images(4);
    const losses: number[] = [];
    for (let s = 0; s < 3; s++) {
      opt.zeroGrad();
      const out = model.forward(x);
      backward(out.loss);
      opt.step();
      losses.push(out.loss.item());
    }
    return losses;
  };
  assert.deepEqual(run(5), run(5));
  assert.notDeepEqual(run(5), run(6));
});

test('a tiny tokenizer overfits a few images: loss falls far, PSNR rises', () => {
  const model = new VqTokenizer(tinyConfig({ codebookSize: 32 }), new Rng(0));
  const opt = new AdamW(model.parameters(), { lr: 3e-3, betas: [0.9, 0.95], weightDecay: 0 });
  const x = images(4);
  const psnr = (): number => {
    const r = model.reconstruct(x).recon;
    return mseInside(r.f32, x.f32, [4, 1, 32, 32]).reduce((a, e) => a + psnrOf(e), 0) / 4;
  };
  const psnr0 = psnr();
  let first = 0, last = 0;
  for (let s = 0; s < 150; s++) {
    opt.zeroGrad();
    const out = model.forward(x);
    backward(out.loss);
    opt.step();
    if (s === 0) first = out.reconLoss.item();
    last = out.reconLoss.item();
  }
  const psnr1 = psnr();
  assert.ok(last < first / 10, `reconstruction loss ${first} → ${last}`);
  assert.ok(psnr1 > psnr0 + 10 && psnr1 > 20, `PSNR ${psnr0.toFixed(1)} → ${psnr1.toFixed(1)} dB`);
});

test('ResBlock (GroupNorm, SiLU, 3×3 convs, 1×1 shortcut): gradients by finite differences', () => {
  const block = new ResBlock('b', 4, 8, 2, new Rng(1));
  const x = randn([2, 4, 5, 5], 2, { requiresGrad: true });
  gradcheck(([xx]) => block.forward(xx!), [x], { eps: 1e-2, atol: 3e-3, rtol: 3e-2 });
  // gradcheck perturbs its inputs in place, so the block's own parameters can be the inputs.
  gradcheck(() => block.forward(x), block.parameters(), { eps: 1e-2, atol: 3e-3, rtol: 3e-2, maxPerInput: 8 });
});
