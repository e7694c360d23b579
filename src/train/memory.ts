// Memory estimates for --dry-run: parameters with their gradients and AdamW moments, plus the
// activations a training step keeps for the backward, measured on a real graph rather than guessed.
import type { Tensor } from '../engine/tensor.js';

/** Bytes of every distinct tensor reachable through the graph of `loss` (what backward() keeps alive). */
export function graphBytes(loss: Tensor): number {
  const seen = new Set<Tensor>(), buffers = new Set<ArrayBufferLike>();
  const stack: Tensor[] = [loss];
  let bytes = 0;
  while (stack.length > 0) {
    const t = stack.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    if (t.node === null) continue;  // leaves (parameters, inputs) are counted by the caller
    if (!buffers.has(t.data.buffer)) {  // views (reshape) share their input's buffer
      buffers.add(t.data.buffer);
      bytes += t.data.byteLength;
    }
    stack.push(...t.node.inputs);
  }
  return bytes;
}

export interface MemoryEstimate {
  parameters: number;        // trainable scalars
  weightBytes: number;       // parameters + gradients + AdamW m and v: 16 bytes per scalar
  activationBytes: number;   // kept for the backward of one step at the given batch size
  totalBytes: number;        // weights + 2 × activations (their gradients exist alongside during the backward)
}

export function trainingMemory(
  params: readonly Tensor[],
  activationBytesPerItem: number,
  batch: number,
): MemoryEstimate {
  const parameters = params.reduce((n, p) => n + p.size, 0);
  const weightBytes = 16 * parameters,
    activationBytes = activationBytesPerItem * batch;
  return { parameters, weightBytes, activationBytes, totalBytes: weightBytes + 2 * activationBytes };
}
