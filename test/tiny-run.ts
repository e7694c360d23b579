// A tiny run directory made in-process in well under a second, for tests that need real files of every kind:
// a random (untrained) tokenizer on 16×16 synthetic images (4×4 tokens, codebook 32) with its train state, its token
// file, a coarse map (K 4), and a baseline GPT checkpoint with its train state, named as `ctfgen train --run` expects.
import { join } from 'node:path';
import { buildCoarseMap, saveCoarseMap } from '../src/cluster/coarse-map.js';
import { Rng } from '../src/engine/rng.js';
import { loadSafetensors } from '../src/io/safetensors.js';
import { Gpt, gptConfig } from '../src/models/gpt.js';
import { saveGptCheckpoint } from '../src/models/gpt-checkpoint.js';
import { saveTokenizer, tokenizerHash } from '../src/tokenizer/checkpoint.js';
import { tokenizerConfig } from '../src/tokenizer/config.js';
import { dataIdentity } from '../src/tokenizer/data-identity.js';
import { encodeSplit } from '../src/tokenizer/encode.js';
import { VqTokenizer } from '../src/tokenizer/model.js';
import { parseTokens, saveTokens } from '../src/tokenizer/tokens-file.js';
import { saveTrainState } from '../src/train/checkpoint.js';
import { DEFAULT_GPT_TRAIN, GptTrainTask, gptTask } from '../src/train/gpt-train.js';
import { DEFAULT_TOKENIZER_TRAIN, TokenizerTrainTask } from '../src/tokenizer/train.js';
import type { Dataset } from '../src/data/dataset.js';
import { syntheticDataset } from './tokenizer/synthetic.js';

export const TINY_RUN_FILES = {
  tokenizer: 'tokenizer.safetensors', tokenizerState: 'tokenizer.train-state.safetensors',
  tokens: 'tokens-train.safetensors', clusters: 'clusters.safetensors',
  baseline: 'baseline.safetensors', baselineState: 'baseline.train-state.safetensors',
} as const;

/** The images the tiny run's tokenizer was "trained" on: 48 synthetic 16×16 greys, 3 classes. */
export function tinyDataset(): Dataset {
  return syntheticDataset(48, { size: 16, seed: 1, numClasses: 3 });
}

export type TinyRun = Record<keyof typeof TINY_RUN_FILES, string>;

/** Writes the tiny run into `dir` (which must exist); returns the paths by TINY_RUN_FILES key. */
export async function makeTinyRun(dir: string): Promise<TinyRun> {
  const paths = Object.fromEntries(Object.entries(TINY_RUN_FILES).map(([k, f]) => [k, join(dir, f)])) as TinyRun;
  const ds = tinyDataset();
  const tokConfig = tokenizerConfig('tiny', { inChannels: 1, imageSize: 16 }, { codebookSize: 32 });
  const tok = new VqTokenizer(tokConfig, new Rng(2));
  const hash = tokenizerHash(tok), data = dataIdentity(ds);
  await saveTokenizer(paths.tokenizer, tok, { data });
  const tokOptions = { ...DEFAULT_TOKENIZER_TRAIN, batchSize: 8, epochs: 1, warmup: 1 };
  const tokTask = new TokenizerTrainTask(tok, ds, tokOptions, async () => paths.tokenizerState);
  await saveTrainState(paths.tokenizerState, { ...tokTask.trainState(0), extra: { data } });
  const { tokens: grids, labels, flipped } = encodeSplit(tok, ds, { batchSize: 64 });
  const tokenSet = { tokens: grids, labels, flipped, tokenizerHash: hash, tokenizerConfig: tokConfig, data };
  await saveTokens(paths.tokens, tokenSet);
  const km = buildCoarseMap(tok.quantizer.codebook, { k: 4, seed: 0, restarts: 1, maxIter: 20, tokenizerHash: hash });
  await saveCoarseMap(paths.clusters, km.map);

  const tokens = parseTokens(await loadSafetensors(paths.tokens));
  const model = new Gpt(gptConfig('tiny', gptTask('baseline', tokens, null)), new Rng(3));
  new Rng(4).fillNormal(model.output.f32, 0, 0.1);  // a zero head would make every logit equal
  const options = { ...DEFAULT_GPT_TRAIN, batchSize: 8, epochs: 1, warmup: 1 };
  const task = new GptTrainTask('baseline', model, tokens, null, options, async () => paths.baselineState);
  const identity = { ctf_kind: 'baseline', tokenizer_hash: hash, tokens_data: JSON.stringify(data) };
  await saveTrainState(paths.baselineState, { ...task.trainState(0), extra: identity });
  await saveGptCheckpoint(paths.baseline, model, { ...identity, step: '0', options: JSON.stringify(options) });
  return paths;
}
