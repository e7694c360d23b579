// The evaluation classifier: a small CNN trained on the dataset's training split, standing in for
// InceptionV3 (whose weights cannot be had here). Its penultimate layer is the feature vector of FID and
// precision/recall; its softmax feeds the Inception Score and the class accuracy of samples.
//
//   per stage s, per conv j:  h = relu(groupNorm(conv3×3(h)))    (stride 2 for j = 0 of stages s ≥ 1)
//   pooled   = mean of h over H, W (B, widths[-1]), or h flattened (B, widths[-1]·side²)
//   features = relu(fc · pooled + b)                               (B, featureDim)
//   logits   = head · dropout(features) + b                        (B, numClasses)
//
// Images are what the tokenizer sees and decodes: (B, C, S, S) in [−1, 1] (u8 v ↦ v / 127.5 − 1).
// The checkpoint is a safetensors file: parameters by name, metadata kind = ctfgen.classifier, format,
// config (JSON), hash (sha256 of the weights: the identity the feature caches are keyed by), data (the
// training split's identity) and what the trainer adds (training, eval).
import { noGrad } from '../engine/autograd.js';
import { add, dropout, relu } from '../engine/ops/elementwise.js';
import { linear } from '../engine/ops/matmul.js';
import { mean } from '../engine/ops/reduce.js';
import { reshape } from '../engine/ops/shape.js';
import { softmax } from '../engine/ops/softmax.js';
import { Rng } from '../engine/rng.js';
import { Tensor } from '../engine/tensor.js';
import { CtfError } from '../errors.js';
import {
  loadInto,
  loadSafetensors,
  saveSafetensors,
  type SafetensorsFile,
  type StTensorInput,
} from '../io/safetensors.js';
import { Conv2d, GroupNorm } from '../nn/conv.js';
import { countParameters, namedParameters, param, uniformInit, weightsHash, type Module } from '../nn/module.js';

export interface ClassifierConfig {
  inChannels: number;     // image channels (1 for Fashion-MNIST)
  imageSize: number;      // square input side (32: Fashion-MNIST padded by 2, as the tokenizer sees it)
  numClasses: number;
  widths: number[];       // channels of each stage; every stage after the first halves the resolution
  convsPerStage: number;  // 3×3 conv + GroupNorm + ReLU units per stage
  pool: 'mean' | 'flatten';  // last stage → fc: global average, or every position (keeps where things are)
  featureDim: number;     // width of the penultimate layer = the feature vector of FID and precision/recall
  normGroups: number;     // GroupNorm groups (capped at the channel count)
  dropout: number;        // on the features before the output layer, training only
}

/** Sizes only; combine with the data via classifierConfig(). */
export const CLASSIFIER_PRESETS = {
  tiny: { widths: [4, 8], convsPerStage: 1, pool: 'mean', featureDim: 16, normGroups: 2, dropout: 0 },  // tests
  // 0.60 M; docs/eval.md
  S: { widths: [16, 32, 64], convsPerStage: 2, pool: 'flatten', featureDim: 128, normGroups: 8, dropout: 0.1 },
} as const satisfies Record<string, Partial<ClassifierConfig>>;
export type ClassifierPreset = keyof typeof CLASSIFIER_PRESETS;
export const DEFAULT_CLASSIFIER_PRESET: ClassifierPreset = 'S';

export type ClassifierData = Pick<ClassifierConfig, 'inChannels' | 'imageSize' | 'numClasses'>;

export function classifierConfig(
  preset: string,
  data: ClassifierData,
  overrides: Partial<ClassifierConfig> = {},
): ClassifierConfig {
  if (!Object.hasOwn(CLASSIFIER_PRESETS, preset))
    throw new CtfError(`classifier: unknown preset "${preset}" (known: ${Object.keys(CLASSIFIER_PRESETS).join(', ')})`);
  const sizes = CLASSIFIER_PRESETS[preset as ClassifierPreset];
  const c: ClassifierConfig = { ...sizes, widths: [...sizes.widths], ...data, ...overrides };
  validateClassifierConfig(c);
  return c;
}

export function validateClassifierConfig(c: ClassifierConfig): void {
  for (const k of ['inChannels', 'imageSize', 'numClasses', 'convsPerStage', 'featureDim', 'normGroups'] as const)
    if (!Number.isInteger(c[k]) || c[k] < 1)
      throw new CtfError(`classifier config: ${k} = ${c[k]} must be a positive integer`);
  if (c.numClasses < 2) throw new CtfError(`classifier config: numClasses = ${c.numClasses} must be ≥ 2`);
  if (!Array.isArray(c.widths) || c.widths.length < 1 || c.widths.some((w) => !Number.isInteger(w) || w < 1))
    throw new CtfError(
      `classifier config: widths ${JSON.stringify(c.widths)} must be a non-empty list of positive integers`,
    );
  for (const w of c.widths)
    if (w % Math.min(c.normGroups, w) !== 0)
      throw new CtfError(
        `classifier config: width ${w} is not divisible by ${Math.min(c.normGroups, w)} GroupNorm groups`,
      );
  if (c.imageSize >> (c.widths.length - 1) < 1)
    throw new CtfError(
      `classifier config: ${c.widths.length} stages halve a ${c.imageSize}-pixel image below one pixel`,
    );
  if (c.pool !== 'mean' && c.pool !== 'flatten')
    throw new CtfError(`classifier config: pool "${String(c.pool)}" must be mean or flatten`);
  if (!(c.dropout >= 0 && c.dropout < 1))
    throw new CtfError(`classifier config: dropout = ${c.dropout} must be in [0, 1)`);
}

/** conv3×3 (no bias: the norm follows) → GroupNorm → ReLU. */
class ConvUnit implements Module {
  readonly conv: Conv2d;
  readonly norm: GroupNorm;

  constructor(name: string, inC: number, outC: number, stride: number, groups: number, rng: Rng) {
    this.conv = new Conv2d(`${name}.conv`, inC, outC, 3, rng, { stride, padding: 1, bias: false });
    this.norm = new GroupNorm(`${name}.norm`, outC, groups, 1e-5);
  }

  forward(x: Tensor): Tensor {
    return relu(this.norm.forward(this.conv.forward(x)));
  }

  parameters(): Tensor[] {
    return [...this.conv.parameters(), ...this.norm.parameters()];
  }
}

export interface ClassifierOutput {
  features: Tensor;  // (B, featureDim)
  logits: Tensor;    // (B, numClasses)
}

export class Classifier implements Module {
  readonly config: ClassifierConfig;
  readonly units: ConvUnit[] = [];
  readonly fcWeight: Tensor;    // (featureDim, widths[-1]) or (featureDim, widths[-1]·side²) flattened
  readonly fcBias: Tensor;      // (featureDim)
  readonly headWeight: Tensor;  // (numClasses, featureDim)
  readonly headBias: Tensor;    // (numClasses)

  /** torch's default initialisation (conv and linear: U(±1/sqrt(fan_in))). */
  constructor(config: ClassifierConfig, rng: Rng = new Rng(0)) {
    validateClassifierConfig(config);
    this.config = { ...config, widths: [...config.widths] };
    let width = config.inChannels;
    config.widths.forEach((w, s) => {
      for (let j = 0; j < config.convsPerStage; j++) {
        this.units.push(new ConvUnit(`stages.${s}.${j}`, width, w, s > 0 && j === 0 ? 2 : 1, config.normGroups, rng));
        width = w;
      }
    });
    let side = config.imageSize;
    // stride-2 3×3 convs, padding 1
    for (let s = 1; s < config.widths.length; s++) side = Math.floor((side - 1) / 2) + 1;
    const fcIn = config.pool === 'mean' ? width : width * side * side;
    const fcBound = 1 / Math.sqrt(fcIn), headBound = 1 / Math.sqrt(config.featureDim);
    this.fcWeight = param('fc.weight', [config.featureDim, fcIn], uniformInit(rng, 'fc.weight', fcBound));
    this.fcBias = param('fc.bias', [config.featureDim], uniformInit(rng, 'fc.bias', fcBound));
    this.headWeight = param(
      'head.weight',
      [config.numClasses, config.featureDim],
      uniformInit(rng, 'head.weight', headBound),
    );
    this.headBias = param('head.bias', [config.numClasses], uniformInit(rng, 'head.bias', headBound));
  }

  /** x (B, C, S, S) in [−1, 1] -> features and logits; `rng` draws the dropout mask in training. */
  forward(x: Tensor, o: { training?: boolean; rng?: Rng } = {}): ClassifierOutput {
    const { inChannels: C, imageSize: S } = this.config;
    if (x.dtype !== 'f32' || x.ndim !== 4 || x.dim(1) !== C || x.dim(2) !== S || x.dim(3) !== S)
      throw new CtfError(`classifier: images ${x.describe()} must be f32 (B, ${C}, ${S}, ${S})`);
    const training = o.training ?? false;
    if (training && this.config.dropout > 0 && !o.rng)
      throw new CtfError('classifier: training with dropout needs an rng');
    let h = x;
    for (const u of this.units) h = u.forward(h);
    const pooled = this.config.pool === 'mean' ? mean(h, [2, 3]) : reshape(h, [h.dim(0), -1]);
    const features = relu(add(linear(pooled, this.fcWeight), this.fcBias));
    const dropped = training && o.rng ? dropout(features, this.config.dropout, o.rng, true) : features;
    return { features, logits: add(linear(dropped, this.headWeight), this.headBias) };
  }

  /** No graph: x (B, C, S, S) -> features (B, featureDim) and class probabilities (B, numClasses). */
  embed(x: Tensor): { features: Float32Array; probs: Float32Array } {
    return noGrad(() => {
      const out = this.forward(x);
      return { features: out.features.f32, probs: softmax(out.logits).f32 };
    });
  }

  parameters(): Tensor[] {
    return [...this.units.flatMap((u) => u.parameters()), this.fcWeight, this.fcBias, this.headWeight, this.headBias];
  }

  stateDict(): Map<string, Tensor> {
    return namedParameters(this);
  }

  numParameters(): number {
    return countParameters(this);
  }
}

// ---- checkpoint -------------------------------------------------------------------------------------

export const CLASSIFIER_KIND = 'ctfgen.classifier';
export const CLASSIFIER_FORMAT = '1';

export function classifierHash(model: Classifier): string {
  return weightsHash(model.stateDict());
}

export async function saveClassifier(
  path: string,
  model: Classifier,
  extra: Record<string, unknown> = {},
): Promise<void> {
  for (const k of ['kind', 'format', 'config', 'hash'])
    if (k in extra) throw new CtfError(`classifier checkpoint: metadata key "${k}" is reserved`);
  const meta: Record<string, string> = {};
  for (const [k, v] of Object.entries(extra)) meta[k] = typeof v === 'string' ? v : JSON.stringify(v);
  const tensors = new Map([...model.stateDict()].map(([n, t]) => [n, t as StTensorInput]));
  await saveSafetensors(path, tensors, {
    ...meta,
    kind: CLASSIFIER_KIND,
    format: CLASSIFIER_FORMAT,
    config: JSON.stringify(model.config),
    hash: classifierHash(model),
  });
}

export interface LoadedClassifier {
  model: Classifier;
  hash: string;
  path: string;
  metadata: Record<string, string>;
}

/**
 * A classifier from a checkpoint: kind and format checked, the stored config builds the model, every
 * parameter must be present with its shape and nothing else may be, and the weights must hash to the
 * stored hash.
 */
export function classifierFromFile(file: SafetensorsFile): LoadedClassifier {
  const m = file.metadata, src = file.source;
  if (m['kind'] !== CLASSIFIER_KIND)
    throw new CtfError(
      `classifier ${src}: not a classifier checkpoint (metadata kind ` +
      `${m['kind'] === undefined ? 'missing' : `"${m['kind']}"`}, expected "${CLASSIFIER_KIND}")` +
        (m['kind'] === 'ctfgen.train-state'
          ? ' — this is the training state; pass the classifier file written beside it'
          : ' — train one with `ctfgen eval classifier train`'),
    );
  if (m['format'] !== CLASSIFIER_FORMAT)
    throw new CtfError(
      `classifier ${src}: format ${m['format']} is not supported (this build reads format ${CLASSIFIER_FORMAT})`,
    );
  let config: ClassifierConfig;
  try {
    config = JSON.parse(m['config'] ?? '') as ClassifierConfig;
    validateClassifierConfig(config);
  } catch (e) {
    throw new CtfError(`classifier ${src}: stored config is invalid: ${(e as Error).message}`);
  }
  const model = new Classifier(config);
  try {
    loadInto(model.stateDict(), file);
  } catch (e) {
    throw new CtfError(`classifier ${(e as Error).message.replace(/^safetensors /, '')}`);
  }
  const hash = classifierHash(model);
  if (m['hash'] !== hash)
    throw new CtfError(`classifier ${src}: the weights hash to ${hash.slice(0, 16)}…, the metadata says ` +
      `${m['hash'] === undefined ? 'nothing' : m['hash'].slice(0, 16) + '…'} — the file is corrupted or was edited`);
  return { model, hash, path: src, metadata: { ...m } };
}

export async function loadClassifier(path: string): Promise<LoadedClassifier> {
  return { ...classifierFromFile(await loadSafetensors(path)), path };
}
