// The ctfgen library, grouped by what a user does with it (docs/api.md). The tensor engine is the subpath
// `ctfgen/engine`; everything else stays internal to keep this surface small.

// Errors: bad input is a CtfError (the message names the file, the field and what was expected); a run stopped by a
// signal after saving is Interrupted.
export { CtfError, Interrupted } from './errors.js';

// Load a run and sample images: the pieces of a run directory, checked to belong together, then one request end to
// end (stage 1 → stage 2 → decoder, or the baseline), per-image random streams named by (seed, class, index).
export { RUN_FILES, runPath, trainStatePath } from './io/run-dir.js';
export {
  RUN_LAYOUT,
  loadPieces,
  loadSampler,
  resolveSamplerPaths,
  type SamplerMethod,
  type SamplerPaths,
  type SamplerPieces,
} from './sample/run-dir.js';
export { sampleImages, type SamplingProgress, type SamplingRequest, type SamplingResult } from './sample/pipeline.js';
export { ctfSample, type CtfSample, type CtfSampleOptions } from './ctf/ctf.js';
export { refine, type RefineOptions, type RoundEvent } from './ctf/stage2.js';
export { baselineSample } from './ctf/baseline.js';
export { generate, type GenerateOptions, type TokenEvent } from './ctf/generate.js';
export { decodeTokens, progressivePreview } from './sample/images.js';
export { quantizeImages } from './eval/features.js';
export { encodePng, imageGrid, writeImageGrid, writePng, type DecodedImage, type GridOptions } from './io/png.js';

// The models and their files.
export { GPT_PRESETS, Gpt, gptConfig, type GptConfig, type GptPreset, type NamedWeight } from './models/gpt.js';
export {
  decodeGptCheckpoint,
  encodeGptCheckpoint,
  loadGptCheckpoint,
  saveGptCheckpoint,
} from './models/gpt-checkpoint.js';
export { VqTokenizer } from './tokenizer/model.js';
export { tokenizerConfig, type TokenizerConfig } from './tokenizer/config.js';
export { loadTokenizer, saveTokenizer } from './tokenizer/checkpoint.js';
export { loadTokens, saveTokens, type TokenSet } from './tokenizer/tokens-file.js';
export { encodeSplit } from './tokenizer/encode.js';
export {
  buildCoarseMap, defaultClusterCount, loadCoarseMap, saveCoarseMap, type CoarseMap,
} from './cluster/coarse-map.js';

// Data.
export {
  NAMED_DATASETS,
  classNamesOf,
  loadDataset,
  type Dataset,
  type LoadOptions,
  type Split,
} from './data/dataset.js';

// Train: the GPT trainers on token files (kinds baseline, stage1, aux), the run on disk (outputs, lock, exact resume,
// identity checks, snapshots, stop on a signal, report) and the loop under it.
export { GPT_KINDS, type GptKind } from './models/gpt-kind.js';
export { DEFAULT_GPT_TRAIN, GptTrainTask, gptTask, validationLoss, type GptTrainOptions } from './train/gpt-train.js';
export { trainRun, type ResumableTask, type TrainRunPlan, type TrainRunSetup } from './train/run.js';
export { runTraining, type TrainLoopOptions, type TrainLoopResult } from './train/loop.js';
export { StopRequest } from './train/interrupt.js';

// Evaluate: sample quality against a real split with the evaluation classifier, and the stage-2 ceiling.
export { loadClassifier } from './eval/classifier.js';
export { realReference, sampleForEval, scoreImages, type SampleQuality } from './eval/evaluate.js';
export { stage2Ceiling, type CeilingRow } from './eval/ceiling.js';
export { nllSplit, type NllSplit } from './eval/nll-split.js';
