// Reconstruction error on the [0, 1] pixel scale (model images live in [−1, 1]; reconstructions are
// clamped to it first), measured inside an optional border: a dataset padded by p pixels (28 → 32) is
// scored on its original 28×28 pixels, not on the black frame every tokenizer gets right.

/**
 * Per-image mean squared error of recon against x, both (B, C, S, S) in [−1, 1], skipping `border` pixels on each side.
 */
export function mseInside(
  recon: Float32Array,
  x: Float32Array,
  shape: readonly [number, number, number, number],
  border = 0,
): Float64Array {
  const [B, C, H, W] = shape;
  const out = new Float64Array(B);
  const n = C * (H - 2 * border) * (W - 2 * border);
  for (let b = 0; b < B; b++) {
    let s = 0;
    for (let c = 0; c < C; c++)
      for (let y = border; y < H - border; y++) {
        const row = ((b * C + c) * H + y) * W;
        for (let i = row + border; i < row + W - border; i++) {
          const d = Math.min(1, Math.max(-1, recon[i]!)) - x[i]!;
          s += d * d;
        }
      }
    out[b] = s / n / 4; // [−1, 1] → [0, 1] halves the differences
  }
  return out;
}

/** PSNR (dB) of an MSE on the [0, 1] scale (capped at 100 dB for a perfect match). */
export function psnr(mse: number): number {
  return 10 * Math.log10(1 / Math.max(mse, 1e-10));
}
