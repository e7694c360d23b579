// The VQ tokenizer's typed config and named size presets (LlamaGen's VQ-16 design scaled down to
// 32×32 images and 8×8 token grids). Everything that changes the function is in the config, and the
// config is stored in every checkpoint.
import { CtfError } from '../errors.js';

export interface TokenizerConfig {
  inChannels: number;     // image channels: 1 grey, 3 colour (from the dataset)
  imageSize: number;      // square input side in pixels (Fashion-MNIST: 28 padded to 32)
  channels: number;       // width at full resolution (LlamaGen: 128)
  channelMult: number[];  // width multiplier per resolution level; one downsampling ×2 between levels
  resBlocks: number;      // ResBlocks per level in the encoder; the decoder mirrors it
  midBlocks: number;      // ResBlocks at the token resolution (LlamaGen: 2, with attention between; none here)
  zChannels: number;      // encoder output channels before the 1×1 conv to the code dim
  codeDim: number;        // dimension of codes and codewords (paper: 8)
  codebookSize: number;   // V, number of codewords (default 4096; the paper uses 16384)
  normGroups: number;     // GroupNorm groups, capped at the channel count (LlamaGen: 32)
  beta: number;           // commitment weight (0.25)
}

/** Sizes only; combine with the data and codebook via tokenizerConfig(). */
export const TOKENIZER_PRESETS = {
  tiny: { channels: 8, channelMult: [1, 2, 2], resBlocks: 1, midBlocks: 0, zChannels: 16, normGroups: 4 },   // tests
  S: { channels: 16, channelMult: [1, 2, 4], resBlocks: 1, midBlocks: 1, zChannels: 64, normGroups: 8 },
  M: { channels: 32, channelMult: [1, 2, 2], resBlocks: 1, midBlocks: 1, zChannels: 64, normGroups: 16 },
  L: { channels: 64, channelMult: [1, 1, 2], resBlocks: 2, midBlocks: 2, zChannels: 128, normGroups: 32 },
} as const satisfies Record<string, Partial<TokenizerConfig>>;
export type TokenizerPreset = keyof typeof TOKENIZER_PRESETS;
export const DEFAULT_TOKENIZER_PRESET: TokenizerPreset = 'S';

export type TokenizerData = Pick<TokenizerConfig, 'inChannels' | 'imageSize'>;

/** A full config from a preset, the data's shape and any overrides (e.g. codebookSize); validated. */
export function tokenizerConfig(preset: string, data: TokenizerData, overrides: Partial<TokenizerConfig> = {}): TokenizerConfig {
  if (!Object.hasOwn(TOKENIZER_PRESETS, preset))
    throw new CtfError(`tokenizer: unknown preset "${preset}" (known: ${Object.keys(TOKENIZER_PRESETS).join(', ')})`);
  const sizes = TOKENIZER_PRESETS[preset as TokenizerPreset];
  const c: TokenizerConfig = { codeDim: 8, codebookSize: 4096, beta: 0.25, ...sizes, channelMult: [...sizes.channelMult], ...data, ...overrides };
  validateTokenizerConfig(c);
  return c;
}

/** Tokens per side: imageSize / 2^(levels − 1). */
export function tokenGrid(c: Pick<TokenizerConfig, 'imageSize' | 'channelMult'>): number {
  return c.imageSize / 2 ** (c.channelMult.length - 1);
}

export function validateTokenizerConfig(c: TokenizerConfig): void {
  const ints = ['inChannels', 'imageSize', 'channels', 'resBlocks', 'zChannels', 'codeDim', 'codebookSize', 'normGroups'] as const;
  for (const k of ints)
    if (!Number.isInteger(c[k]) || c[k] < 1) throw new CtfError(`tokenizer config: ${k} = ${c[k]} must be a positive integer`);
  if (!Number.isInteger(c.midBlocks) || c.midBlocks < 0) throw new CtfError(`tokenizer config: midBlocks = ${c.midBlocks} must be an integer ≥ 0`);
  if (!Array.isArray(c.channelMult) || c.channelMult.length < 1 || c.channelMult.some((m) => !Number.isInteger(m) || m < 1))
    throw new CtfError(`tokenizer config: channelMult ${JSON.stringify(c.channelMult)} must be a non-empty list of positive integers`);
  const down = 2 ** (c.channelMult.length - 1);
  if (c.imageSize % down !== 0)
    throw new CtfError(`tokenizer config: imageSize ${c.imageSize} is not divisible by the downsampling factor ${down} (${c.channelMult.length} levels)`);
  for (const w of [...c.channelMult.map((m) => m * c.channels), c.zChannels])
    if (w % Math.min(c.normGroups, w) !== 0)
      throw new CtfError(`tokenizer config: width ${w} is not divisible by ${Math.min(c.normGroups, w)} GroupNorm groups`);
  if (c.codebookSize > 2 ** 31 - 1) throw new CtfError(`tokenizer config: codebookSize ${c.codebookSize} is too large`);
  if (!(c.beta >= 0)) throw new CtfError(`tokenizer config: beta = ${c.beta} must be ≥ 0`);
}
