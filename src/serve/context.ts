// What the demo's sampler thread holds for the whole session: the run's pieces (every method whose checkpoints
// exist, loaded and cross-checked once by src/sample/run-dir.ts), the codeword each cluster is drawn with in the
// stage-1 preview, the class names, and the test split of the tokenizer's dataset for the "why it works" view.
import { existsSync } from 'node:fs';
import { type CoarseMap } from '../cluster/coarse-map.js';
import { classNamesOf, loadDataset, type Dataset } from '../data/dataset.js';
import { CtfError } from '../errors.js';
import { clusterRepresentatives } from '../sample/images.js';
import {
  RUN_LAYOUT, SAMPLER_METHODS, loadSampler, piecesOf, resolveSamplerPaths, type SamplerMethod, type SamplerPieces,
} from '../sample/run-dir.js';
import type { DataIdentity } from '../tokenizer/data-identity.js';
import type { RunInfo } from './protocol.js';

export interface ServeContext {
  info: RunInfo;
  pieces: SamplerPieces;
  map: (CoarseMap & { path: string }) | null;
  representatives: Int32Array | null;  // (K) the member codeword drawn for each cluster in previews
  testSet: Dataset | null;             // the tokenizer's dataset, test split, prepared as for its training
}

/** The methods whose checkpoint files are all in the run directory. */
export function availableMethods(run: string): SamplerMethod[] {
  return SAMPLER_METHODS.filter((m) => {
    const { paths } = resolveSamplerPaths([m], run, {});
    return Object.values(paths).every((p) => existsSync(p));
  });
}

/** The test split of the dataset a tokenizer was trained on, prepared the same way; null when not installed. */
async function loadTestSet(data: DataIdentity | null): Promise<Dataset | null> {
  if (!data) return null;
  try {
    const resize = data.preprocessing.resize ?? undefined;
    const { pad, padValue } = data.preprocessing;
    return await loadDataset(data.name, 'test', { pad, padValue, resize });
  } catch {
    return null;  // the demo works without it: the "why" view then explains generated images only
  }
}

export async function loadServeContext(run: string, shownRun: string = run): Promise<ServeContext> {
  const methods = availableMethods(run);
  if (methods.length === 0) {
    const need = SAMPLER_METHODS.map((m) => `${m}: ${piecesOf(m).map((p) => RUN_LAYOUT[p]).join(', ')}`).join('; ');
    throw new CtfError(`${run} holds no complete set of checkpoints (${need}) — make one with \`npm run demo\` ` +
      '(or `ctfgen demo --run DIR`)');
  }
  const { paths } = resolveSamplerPaths(methods, run, {});
  const pieces = await loadSampler(methods, paths);
  const tok = pieces.tokenizer.model;
  const dataJson = pieces.tokenizer.metadata['data'];
  const data = dataJson ? (JSON.parse(dataJson) as DataIdentity) : null;
  const testSet = await loadTestSet(data);
  const n = pieces.numClasses;
  const named = testSet?.classNames ?? (data ? await classNamesOf(data.name) : null);
  const classNames = named?.length === n ? named : Array.from({ length: n }, (_, c) => `class ${c}`);
  const map = pieces.map ?? null;
  const { inChannels, imageSize } = tok.config;
  const fits = testSet !== null && testSet.channels === inChannels && testSet.height === imageSize &&
    testSet.width === imageSize && testSet.numClasses === n;
  return {
    info: {
      run: shownRun, classNames, methods, grid: tok.grid, imageSize, channels: inChannels,
      v: tok.config.codebookSize, k: map?.k ?? null, maskedAux: pieces.aux?.model.fineTable != null,
      testImages: fits && map ? `${data!.name} test split` : null,
    },
    pieces, map,
    representatives: map ? clusterRepresentatives(map, tok.quantizer.normalizedCodebook().f32) : null,
    testSet: fits ? testSet : null,
  };
}
