// Conv2d and GroupNorm layers with torch's default initialisation, so a layer here and a torch layer
// seeded alike start from the same distribution.
import { conv2d } from '../engine/ops/conv.js';
import { groupNorm, groupNormSilu } from '../engine/ops/norm.js';
import type { Rng } from '../engine/rng.js';
import type { Tensor } from '../engine/tensor.js';
import { CtfError } from '../errors.js';
import { param, uniformInit, type Module } from './module.js';

export interface Conv2dOptions {
  stride?: number;   // default 1
  padding?: number;  // default kernel >> 1 ("same" for odd kernels at stride 1)
  bias?: boolean;    // default true
}

export class Conv2d implements Module {
  readonly weight: Tensor;       // (out, in, k, k)
  readonly bias: Tensor | null;  // (out)
  readonly stride: number;
  readonly padding: number;

  /** torch.nn.Conv2d init: weight and bias ~ U(±1/sqrt(in·k·k)) (kaiming_uniform with a = √5). */
  constructor(name: string, inChannels: number, outChannels: number, kernel: number, rng: Rng, o: Conv2dOptions = {}) {
    const bound = 1 / Math.sqrt(inChannels * kernel * kernel);
    this.weight = param(
      `${name}.weight`,
      [outChannels, inChannels, kernel, kernel],
      uniformInit(rng, `${name}.weight`, bound),
    );
    this.bias = o.bias === false ? null : param(`${name}.bias`, [outChannels], uniformInit(rng, `${name}.bias`, bound));
    this.stride = o.stride ?? 1;
    this.padding = o.padding ?? kernel >> 1;
  }

  /** x (N, in, H, W) -> (N, out, H', W') */
  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding });
  }

  parameters(): Tensor[] {
    return this.bias ? [this.weight, this.bias] : [this.weight];
  }
}

export class GroupNorm implements Module {
  readonly weight: Tensor;  // (C), ones
  readonly bias: Tensor;    // (C), zeros
  readonly groups: number;

  /** groups = min(maxGroups, channels), which must divide channels; eps 1e-6 as in LlamaGen's Normalize(). */
  constructor(name: string, channels: number, maxGroups: number, readonly eps = 1e-6) {
    this.groups = Math.min(maxGroups, channels);
    if (channels % this.groups !== 0)
      throw new CtfError(`${name}: ${this.groups} groups do not divide ${channels} channels; pick a width that is a ` +
        `multiple of the group count`);
    this.weight = param(`${name}.weight`, [channels], (d) => d.fill(1));
    this.bias = param(`${name}.bias`, [channels]);
  }

  forward(x: Tensor): Tensor {
    return groupNorm(x, this.groups, this.weight, this.bias, this.eps);
  }

  /** silu(forward(x)), one pass at inference. */
  forwardSilu(x: Tensor): Tensor {
    return groupNormSilu(x, this.groups, this.weight, this.bias, this.eps);
  }

  parameters(): Tensor[] {
    return [this.weight, this.bias];
  }
}
