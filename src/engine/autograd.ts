// Reverse-mode autodiff. Every op that sees an input requiring grad attaches a node to its output:
// the inputs and a backward closure that adds into the inputs' gradients. backward() walks the graph
// from the loss in reverse topological order; graphs nobody holds are simply garbage-collected.
import { CtfError } from '../errors.js';
import { Tensor } from './tensor.js';

export interface TapeNode {
  op: string;
  inputs: Tensor[];
  /** Adds d(loss)/d(input) into each input's gradient, given d(loss)/d(output). */
  backward: (gradOut: Float32Array) => void;
}

let recording = true;

export function isRecording(): boolean {
  return recording;
}

/** Runs fn without building a graph (inference, metrics, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = recording;
  recording = false;
  try {
    return fn();
  } finally {
    recording = prev;
  }
}

/** Attaches a backward to out if any input needs a gradient; returns out. */
export function record(op: string, out: Tensor, inputs: Tensor[], backward: (gradOut: Float32Array) => void): Tensor {
  if (recording && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward };
  }
  return out;
}

/** The gradient accumulator of t (allocated zeroed on first use), or null if t needs no gradient. */
export function gradOf(t: Tensor): Float32Array | null {
  if (!t.requiresGrad) return null;
  if (t.grad === null) t.grad = new Float32Array(t.size);
  return t.grad;
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // Iterative DFS: deep models would overflow the JS stack with recursion.
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1] = i + 1;
      const next = inputs[i]!;
      if (next.node !== null && !seen.has(next)) {
        seen.add(next);
        stack.push([next, 0]);
      }
    } else {
      order.push(t);
      stack.pop();
    }
  }
  return order;
}

/**
 * Backpropagates from loss (a scalar unless gradOut is given). Gradients accumulate into every
 * leaf with requiresGrad; the graph is released afterwards (intermediate nodes are detached).
 */
export function backward(loss: Tensor, gradOut?: Float32Array): void {
  if (!loss.requiresGrad)
    throw new CtfError(`backward: ${loss.describe()} does not depend on anything that requires a gradient`);
  if (gradOut === undefined && loss.size !== 1)
    throw new CtfError(`backward: ${loss.describe()} is not a scalar; pass the gradient of the output explicitly`);
  if (gradOut !== undefined && gradOut.length !== loss.size)
    throw new CtfError(`backward: gradient has ${gradOut.length} elements, ${loss.describe()} has ${loss.size}`);
  if (loss.grad === null && gradOut !== undefined) loss.grad = gradOut.slice();
  else {
    const g = gradOf(loss)!;
    if (gradOut === undefined) g[0] = g[0]! + 1;
    else for (let i = 0; i < g.length; i++) g[i] = g[i]! + gradOut[i]!;
  }
  const order = topoOrder(loss);
  for (let i = order.length - 1; i >= 0; i--) {
    const t = order[i]!;
    const node = t.node!;
    if (t.grad !== null) node.backward(t.grad);
    // Intermediates drop their graph and gradient so activations can be freed.
    t.node = null;
    if (t !== loss) t.grad = null;
  }
}
