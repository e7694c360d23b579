// LlamaGen's VQ tokenizer (tokenizer/tokenizer_image/vq_model.py) scaled down, without attention:
//
//   encoder:  conv_in → per level: resBlocks × ResBlock, then a stride-2 3×3 conv (not after the last)
//             → midBlocks × ResBlock → GroupNorm, SiLU, conv_out (zChannels) → quant_conv 1×1 (codeDim)
//   quantize: l2-normalise every code and codeword, nearest codeword (a GEMM), straight-through
//   decoder:  post_quant_conv 1×1 (zChannels) → conv_in → midBlocks × ResBlock → per level, coarse to
//             fine: resBlocks × ResBlock, then nearest ×2 upsampling + 3×3 conv (not after the finest)
//             → GroupNorm, SiLU, conv_out (inChannels)
//   loss:     mean((x̂ − x)²) + mean((zq − sg z)²) + β · mean((sg zq − z)²)
//
// Images are (B, C, S, S) in [−1, 1]; tokens are (B, g, g) codebook indices, g = S / 2^(levels − 1).
import { noGrad } from '../engine/autograd.js';
import { upsampleNearest2d } from '../engine/ops/conv.js';
import { add, mul, mulScalar, sub } from '../engine/ops/elementwise.js';
import { embedding } from '../engine/ops/embedding.js';
import { mean } from '../engine/ops/reduce.js';
import { permute, reshape } from '../engine/ops/shape.js';
import { Rng } from '../engine/rng.js';
import { Tensor, intTensor } from '../engine/tensor.js';
import { CtfError } from '../errors.js';
import { Conv2d, GroupNorm } from '../nn/conv.js';
import { countParameters, namedParameters, type Module } from '../nn/module.js';
import { ResBlock } from '../nn/resblock.js';
import { tokenGrid, validateTokenizerConfig, type TokenizerConfig } from './config.js';
import { Quantizer } from './quantizer.js';

class Encoder implements Module {
  readonly convIn: Conv2d;
  readonly levels: { blocks: ResBlock[]; down: Conv2d | null }[] = [];
  readonly mid: ResBlock[] = [];
  readonly normOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(c: TokenizerConfig, rng: Rng) {
    this.convIn = new Conv2d('encoder.conv_in', c.inChannels, c.channels, 3, rng);
    let width = c.channels;
    c.channelMult.forEach((m, i) => {
      const blocks = Array.from({ length: c.resBlocks }, (_, j) => {
        const b = new ResBlock(`encoder.conv_blocks.${i}.res.${j}`, width, c.channels * m, c.normGroups, rng);
        width = c.channels * m;
        return b;
      });
      const last = i === c.channelMult.length - 1;
      const down = last
        ? null
        : new Conv2d(`encoder.conv_blocks.${i}.downsample.conv`, width, width, 3, rng, { stride: 2, padding: 1 });
      this.levels.push({ blocks, down });
    });
    for (let j = 0; j < c.midBlocks; j++)
      this.mid.push(new ResBlock(`encoder.mid.${j}`, width, width, c.normGroups, rng));
    this.normOut = new GroupNorm('encoder.norm_out', width, c.normGroups);
    this.convOut = new Conv2d('encoder.conv_out', width, c.zChannels, 3, rng);
  }

  /** x (B, C, S, S) -> (B, zChannels, g, g) */
  forward(x: Tensor): Tensor {
    let h = this.convIn.forward(x);
    for (const level of this.levels) {
      for (const b of level.blocks) h = b.forward(h);
      if (level.down) h = level.down.forward(h);
    }
    for (const b of this.mid) h = b.forward(h);
    return this.convOut.forward(this.normOut.forwardSilu(h));
  }

  parameters(): Tensor[] {
    return [
      this.convIn,
      ...this.levels.flatMap((l) => [...l.blocks, ...(l.down ? [l.down] : [])]),
      ...this.mid,
      this.normOut,
      this.convOut,
    ].flatMap((m) => m.parameters());
  }
}

class Decoder implements Module {
  readonly convIn: Conv2d;
  readonly mid: ResBlock[] = [];
  readonly levels: { blocks: ResBlock[]; up: Conv2d | null }[] = [];  // coarse to fine
  readonly normOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(c: TokenizerConfig, rng: Rng) {
    const L = c.channelMult.length;
    let width = c.channels * c.channelMult[L - 1]!;
    this.convIn = new Conv2d('decoder.conv_in', c.zChannels, width, 3, rng);
    for (let j = 0; j < c.midBlocks; j++)
      this.mid.push(new ResBlock(`decoder.mid.${j}`, width, width, c.normGroups, rng));
    for (let k = 0; k < L; k++) {
      const i = L - 1 - k, out = c.channels * c.channelMult[i]!;
      const blocks = Array.from({ length: c.resBlocks }, (_, j) => {
        const b = new ResBlock(`decoder.conv_blocks.${k}.res.${j}`, width, out, c.normGroups, rng);
        width = out;
        return b;
      });
      const up = i === 0 ? null : new Conv2d(`decoder.conv_blocks.${k}.upsample.conv`, width, width, 3, rng);
      this.levels.push({ blocks, up });
    }
    this.normOut = new GroupNorm('decoder.norm_out', width, c.normGroups);
    this.convOut = new Conv2d('decoder.conv_out', width, c.inChannels, 3, rng);
  }

  /** (B, zChannels, g, g) -> (B, C, S, S) */
  forward(z: Tensor): Tensor {
    let h = this.convIn.forward(z);
    for (const b of this.mid) h = b.forward(h);
    for (const level of this.levels) {
      for (const b of level.blocks) h = b.forward(h);
      if (level.up) h = level.up.forward(upsampleNearest2d(h, 2));
    }
    return this.convOut.forward(this.normOut.forwardSilu(h));
  }

  parameters(): Tensor[] {
    return [
      this.convIn,
      ...this.mid,
      ...this.levels.flatMap((l) => [...l.blocks, ...(l.up ? [l.up] : [])]),
      this.normOut,
      this.convOut,
    ].flatMap((m) => m.parameters());
  }
}

export interface TokenizerOutput {
  recon: Tensor;         // (B, C, S, S)
  index: Int32Array;     // (B·g·g) token ids, row-major per image
  zn: Tensor;            // (B·g·g, D) unit encoder codes (dead-code re-initialisation draws from them)
  reconLoss: Tensor;     // mean((x̂ − x)²)
  codebookLoss: Tensor;  // mean((zq − sg z)²)
  commitLoss: Tensor;    // mean((sg zq − z)²)
  loss: Tensor;          // reconLoss + codebookLoss + β · commitLoss
}

export class VqTokenizer implements Module {
  readonly config: TokenizerConfig;
  readonly grid: number;
  readonly encoder: Encoder;
  readonly quantConv: Conv2d;
  readonly quantizer: Quantizer;
  readonly postQuantConv: Conv2d;
  readonly decoder: Decoder;

  constructor(config: TokenizerConfig, rng: Rng = new Rng(0)) {
    validateTokenizerConfig(config);
    this.config = { ...config, channelMult: [...config.channelMult] };
    this.grid = tokenGrid(config);
    this.encoder = new Encoder(config, rng);
    this.quantConv = new Conv2d('quant_conv', config.zChannels, config.codeDim, 1, rng);
    this.quantizer = new Quantizer(config.codebookSize, config.codeDim, rng);
    this.postQuantConv = new Conv2d('post_quant_conv', config.codeDim, config.zChannels, 1, rng);
    this.decoder = new Decoder(config, rng);
  }

  private checkImages(x: Tensor): number {
    const { inChannels: C, imageSize: S } = this.config;
    if (x.dtype !== 'f32' || x.ndim !== 4 || x.dim(1) !== C || x.dim(2) !== S || x.dim(3) !== S)
      throw new CtfError(`tokenizer: images ${x.describe()} must be f32 (B, ${C}, ${S}, ${S})`);
    return x.dim(0);
  }

  /** Encoder rows: x (B, C, S, S) -> (B·g·g, D), channels last. */
  private codes(x: Tensor): Tensor {
    const B = this.checkImages(x), D = this.config.codeDim;
    return reshape(permute(this.quantConv.forward(this.encoder.forward(x)), [0, 2, 3, 1]), [
      B * this.grid * this.grid,
      D,
    ]);
  }

  /** Rows (B·g·g, D) -> images (B, C, S, S). */
  private decodeRows(rows: Tensor, B: number): Tensor {
    const g = this.grid;
    const z = permute(reshape(rows, [B, g, g, this.config.codeDim]), [0, 3, 1, 2]);
    return this.decoder.forward(this.postQuantConv.forward(z));
  }

  /** The training forward: reconstruction, tokens and the three losses. */
  forward(x: Tensor): TokenizerOutput {
    const B = this.checkImages(x);
    const q = this.quantizer.forward(this.codes(x));
    const recon = this.decodeRows(q.zq, B);
    const diff = sub(recon, x);
    const reconLoss = mean(mul(diff, diff));
    const loss = add(add(reconLoss, q.codebookLoss), mulScalar(q.commitLoss, this.config.beta));
    return { recon, index: q.index, zn: q.zn, reconLoss, codebookLoss: q.codebookLoss, commitLoss: q.commitLoss, loss };
  }

  /** Images (B, C, S, S) -> tokens (B, g, g) i32. No graph. */
  encode(x: Tensor): Tensor {
    return noGrad(() => {
      const B = this.checkImages(x);
      return intTensor(this.quantizer.forward(this.codes(x)).index, [B, this.grid, this.grid], 'tokens');
    });
  }

  /** Tokens (B, g, g) or (B, g·g) i32 -> images (B, C, S, S). No graph. */
  decode(tokens: Tensor): Tensor {
    const g = this.grid;
    if (tokens.dtype !== 'i32' || tokens.ndim < 2 || tokens.size !== tokens.dim(0) * g * g)
      throw new CtfError(`tokenizer.decode: tokens ${tokens.describe()} must be i32 (B, ${g}, ${g})`);
    return noGrad(() => {
      const B = tokens.dim(0);
      const rows = embedding(this.quantizer.normalizedCodebook(), new Tensor(tokens.i32, [B * g * g]));
      return this.decodeRows(rows, B);
    });
  }

  /** Encode then decode, without a graph: (reconstruction, tokens). */
  reconstruct(x: Tensor): { recon: Tensor; index: Int32Array } {
    return noGrad(() => {
      const q = this.quantizer.forward(this.codes(x));
      return { recon: this.decodeRows(q.zq, x.dim(0)), index: q.index };
    });
  }

  parameters(): Tensor[] {
    return [this.encoder, this.quantConv, this.quantizer, this.postQuantConv, this.decoder].flatMap((m) =>
      m.parameters(),
    );
  }

  /** name → parameter, in a fixed order (the checkpoint layout). */
  stateDict(): Map<string, Tensor> {
    return namedParameters(this);
  }

  numParameters(): number {
    return countParameters(this);
  }
}
