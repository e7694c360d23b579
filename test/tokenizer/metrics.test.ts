import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mseInside, psnr } from '../../src/tokenizer/metrics.js';

test('mseInside: [0, 1]-scale error inside the border, reconstructions clamped; psnr', () => {
  // Two 1×4×4 images in [−1, 1]: image 0 wrong by 0.2 (0.1 on the [0, 1] scale) at every pixel,
  // image 1 wrong only on its border, and by a value outside [−1, 1] that clamping brings back.
  const x = new Float32Array(32).fill(-1), recon = new Float32Array(32).fill(-1);
  for (let i = 0; i < 16; i++) recon[i] = -0.8;
  for (let i = 16; i < 32; i++) {
    const y = Math.floor((i - 16) / 4), xx = (i - 16) % 4;
    if (y === 0 || y === 3 || xx === 0 || xx === 3) recon[i] = -5;  // clamps to −1: no error
  }
  recon[16] = 1;  // a corner: error 2 on [−1, 1] = 1 on [0, 1], outside the inner 2×2
  const full = mseInside(recon, x, [2, 1, 4, 4]), inner = mseInside(recon, x, [2, 1, 4, 4], 1);
  assert.ok(Math.abs(full[0]! - 0.01) < 1e-7 && Math.abs(inner[0]! - 0.01) < 1e-7);
  assert.ok(Math.abs(full[1]! - 1 / 16) < 1e-9);
  assert.equal(inner[1], 0);
  assert.ok(Math.abs(psnr(0.01) - 20) < 1e-9);
  assert.equal(psnr(0), 100);
});
