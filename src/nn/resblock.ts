// LlamaGen's ResnetBlock (tokenizer/tokenizer_image/vq_model.py) without dropout:
//   h = conv1(silu(norm1(x)));  h = conv2(silu(norm2(h)));  out = shortcut(x) + h
// where shortcut is a 1×1 conv when the channel count changes, else the identity.
import { add } from '../engine/ops/elementwise.js';
import type { Rng } from '../engine/rng.js';
import type { Tensor } from '../engine/tensor.js';
import { Conv2d, GroupNorm } from './conv.js';
import type { Module } from './module.js';

export class ResBlock implements Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly shortcut: Conv2d | null;

  constructor(name: string, inChannels: number, outChannels: number, groups: number, rng: Rng) {
    this.norm1 = new GroupNorm(`${name}.norm1`, inChannels, groups);
    this.conv1 = new Conv2d(`${name}.conv1`, inChannels, outChannels, 3, rng);
    this.norm2 = new GroupNorm(`${name}.norm2`, outChannels, groups);
    this.conv2 = new Conv2d(`${name}.conv2`, outChannels, outChannels, 3, rng);
    this.shortcut =
      inChannels === outChannels ? null : new Conv2d(`${name}.nin_shortcut`, inChannels, outChannels, 1, rng);
  }

  /** x (N, in, H, W) -> (N, out, H, W) */
  forward(x: Tensor): Tensor {
    const h = this.conv2.forward(this.norm2.forwardSilu(this.conv1.forward(this.norm1.forwardSilu(x))));
    return add(this.shortcut ? this.shortcut.forward(x) : x, h);
  }

  parameters(): Tensor[] {
    return [this.norm1, this.conv1, this.norm2, this.conv2, ...(this.shortcut ? [this.shortcut] : [])].flatMap((m) =>
      m.parameters(),
    );
  }
}
