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
export function tokenizerConfig(
  preset: string,
  data: TokenizerData,
  overrides: Partial<TokenizerConfig> = {},
): TokenizerConfig {
  if (!Object.hasOwn(TOKENIZER_PRESETS, preset))
    throw new CtfError(`tokenizer: unknown preset "${preset}" (known: ${Object.keys(TOKENIZER_PRESETS).join(', ')})`);
  const sizes = TOKENIZER_PRESETS[preset as TokenizerPreset];
  const c: TokenizerConfig = {
    codeDim: 8,
    codebookSize: 4096,
    beta: 0.25,
    ...sizes,
    channelMult: [...sizes.channelMult],
    ...data,
    ...overrides,
  };
  validateTokenizerConfig(c);
  return c;
}

/** Tokens per side: imageSize / 2^(levels − 1). */
export function tokenGrid(c: Pick<TokenizerConfig, 'imageSize' | 'channelMult'>): number {
  return c.imageSize / 2 ** (c.channelMult.length - 1);
}

/**
 * The largest values a config may hold, checked before anything is allocated (a checkpoint or token file can
 * claim anything). Far above every preset and LlamaGen's VQ-16 (128 channels, codebook 16384, 16×16 tokens).
 */
export const TOKENIZER_LIMITS = {
  inChannels: 4, imageSize: 1024, channels: 1024, resBlocks: 16, zChannels: 4096, codeDim: 1024, codebookSize: 1 << 18,
  normGroups: 1024, midBlocks: 16, levels: 8, width: 4096, grid: 64, beta: 10,
} as const;

/** Checks every field's type and range; `config` may come from a file, so nothing is assumed about it. */
export function validateTokenizerConfig(config: unknown): asserts config is TokenizerConfig {
  if (typeof config !== 'object' || config === null || Array.isArray(config))
    throw new CtfError(`tokenizer config: expected an object, got ${JSON.stringify(config)?.slice(0, 60)}`);
  const c = config as Record<string, unknown>;
  const show = (k: string): string => `${k} = ${JSON.stringify(c[k])?.slice(0, 60) ?? 'missing'}`;
  const ints = [
    'inChannels',
    'imageSize',
    'channels',
    'resBlocks',
    'zChannels',
    'codeDim',
    'codebookSize',
    'normGroups',
  ] as const;
  for (const k of [...ints, 'midBlocks'] as const) {
    const v = c[k], min = k === 'midBlocks' ? 0 : 1;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > TOKENIZER_LIMITS[k])
      throw new CtfError(`tokenizer config: ${show(k)}, expected an integer in [${min}, ${TOKENIZER_LIMITS[k]}]`);
  }
  const mult = c['channelMult'];
  if (!Array.isArray(mult) || mult.length < 1 || mult.length > TOKENIZER_LIMITS.levels ||
    mult.some((m) => typeof m !== 'number' || !Number.isInteger(m) || m < 1))
    throw new CtfError(`tokenizer config: ${show('channelMult')}, ` +
      `expected a list of 1 to ${TOKENIZER_LIMITS.levels} positive integers`);
  const t = config as TokenizerConfig, err = (s: string): CtfError => new CtfError(`tokenizer config: ${s}`);
  for (const m of t.channelMult)
    if (m * t.channels > TOKENIZER_LIMITS.width)
      throw err(`a level ${m} × ${t.channels} channels wide, expected at most ${TOKENIZER_LIMITS.width}`);
  const levels = t.channelMult.length, down = 2 ** (levels - 1), grid = t.imageSize / down;
  const most = TOKENIZER_LIMITS.grid;
  if (t.imageSize % down !== 0)
    throw err(`imageSize ${t.imageSize} is not divisible by the downsampling factor ${down} (${levels} levels)`);
  if (grid > TOKENIZER_LIMITS.grid)
    throw err(`imageSize ${t.imageSize} gives ${grid}×${grid} tokens, expected at most ${most}×${most}`);
  for (const w of [...t.channelMult.map((m) => m * t.channels), t.zChannels])
    if (w % Math.min(t.normGroups, w) !== 0)
      throw err(`width ${w} is not divisible by ${Math.min(t.normGroups, w)} GroupNorm groups`);
  if (typeof c['beta'] !== 'number' || !(t.beta >= 0 && t.beta <= TOKENIZER_LIMITS.beta))
    throw new CtfError(`tokenizer config: ${show('beta')}, expected a number in [0, ${TOKENIZER_LIMITS.beta}]`);
}
