// `ctfgen data info DATASET`: counts per split and class, image size and channels, and a PNG grid of
// examples (one row per class). The numbers come from src/data; this file only renders them.
import {
  classCounts, indicesByClass, loadDataset, parseSize, DATASET_SPECS_HELP, NAMED_DATASETS, SPLITS, type Dataset,
  type LoadOptions, type Split,
} from '../data/dataset.js';
import { checkOutputs } from '../io/outputs.js';
import { writeImageGrid } from '../io/png.js';
import { CtfError } from '../errors.js';
import type { DataIdentity } from '../tokenizer/data-identity.js';
import { UsageError, type ParsedFlags } from './args.js';
import type { Command } from './main.js';

export interface DataInfo {
  dataset: string;
  channels: number;
  height: number;
  width: number;
  numClasses: number;
  classNames: string[];
  flipPreservesClass: boolean;
  preprocessing: Dataset['preprocessing'];
  splits: Partial<Record<Split, { count: number; perClass: number[] }>>;
  grid: { path: string; split: Split; perClass: number } | null;
}

/**
 * A dataset named on the command line: a known name or folder:PATH, else a UsageError (`flag` names where it came
 * from). Whether the folder exists is a question about the disk, answered (exit 1) when it is loaded.
 */
export function datasetSpec(spec: string, flag = '--data'): string {
  if (Object.hasOwn(NAMED_DATASETS, spec)) return spec;
  if (spec.startsWith('folder:') && spec.length > 'folder:'.length) return spec;
  throw new UsageError(`${flag}: unknown dataset "${spec}" (expected ${DATASET_SPECS_HELP})`);
}

/** The load options every data-reading command shares (same flags, same validation) for the dataset `spec`. */
/**
 * The dataset and load options for images a tokenizer is applied to: --data, else the dataset it was trained on
 * (`trainedOn`, its checkpoint's data identity); every option the flags do not give (padding, resize) as its training
 * data had it, so the images are prepared as the tokenizer saw them. Without an identity the named 28×28 datasets get
 * a 2-pixel border (to 32×32), as `tokenizer train` gives them.
 */
export function tokenizerDataOptions(
  f: ParsedFlags,
  trainedOn: DataIdentity | null,
): { spec: string; options: LoadOptions } {
  const spec = typeof f['data'] === 'string' ? f['data'] : (trainedOn?.name ?? 'fashion-mnist');
  const options = loadOptionsFromFlags(f, spec);
  const same = trainedOn?.name === spec;
  options.pad ??= same ? trainedOn!.preprocessing.pad : spec === 'fashion-mnist' || spec === 'mnist' ? 2 : 0;
  if (options.resize === undefined && same && trainedOn!.preprocessing.resize)
    options.resize = trainedOn!.preprocessing.resize;
  return { spec, options };
}

export function loadOptionsFromFlags(f: ParsedFlags, spec: string): LoadOptions {
  const o: LoadOptions = {};
  if (typeof f['resize'] === 'string') {
    if (!spec.startsWith('folder:')) throw new UsageError(`--resize: applies to folder datasets only, not to ${spec}`);
    try { o.resize = parseSize(f['resize'], '--resize'); } catch (e) { throw new UsageError((e as Error).message); }
  }
  if (f['pad'] !== undefined) o.pad = f['pad'] as number;
  if (f['testFraction'] !== undefined) {
    const t = f['testFraction'] as number;
    if (!(t >= 0 && t < 1)) throw new UsageError(`--test-fraction: must be in [0, 1), got ${t}`);
    o.testFraction = t;
  }
  if (f['splitSeed'] !== undefined) o.splitSeed = f['splitSeed'] as number;
  return o;
}

export const DATA_LOAD_FLAGS = {
  pad: { type: 'int', min: 0, help: 'pixels of black border added on every side (2 turns 28×28 into 32×32)' },
  resize: {
    type: 'string',
    help: 'folder datasets: resize every image bilinearly to N or HxW (needed when sizes differ)',
  },
  testFraction: {
    type: 'number',
    help: 'folder datasets without train/ and test/: share of each class held out as test (default 0.1)',
  },
  splitSeed: {
    type: 'int',
    min: 0,
    help: 'folder datasets without train/ and test/: seed of that hold-out (default 0)',
  },
} as const;

function table(info: DataInfo): string {
  const splits = SPLITS.filter((s) => info.splits[s]);
  const nameW = Math.max(5, ...info.classNames.map((c) => c.length)) + 4;
  const lines = [
    `${info.dataset}: ${info.height}×${info.width}, ${info.channels} ` +
    `channel${info.channels === 1 ? ' (grey)' : 's (RGB)'}, ${info.numClasses} classes` +
      (info.preprocessing.pad ? `, padded by ${info.preprocessing.pad}` : '') +
      (info.preprocessing.resize ? `, resized to ${info.preprocessing.resize.join('×')}` : '') +
      `; horizontal flips ${info.flipPreservesClass ? 'keep' : 'change'} the class`,
    `${'id  class'.padEnd(nameW)}${splits.map((s) => s.padStart(9)).join('')}`,
  ];
  info.classNames.forEach((name, c) =>
    lines.push(`${String(c).padStart(2)}  ` +
      `${name.padEnd(nameW - 4)}${splits.map((s) => String(info.splits[s]!.perClass[c]).padStart(9)).join('')}`));
  lines.push(`${'    total'.padEnd(nameW)}${splits.map((s) => String(info.splits[s]!.count).padStart(9)).join('')}`);
  if (info.grid) lines.push(`grid: ${info.grid.path} (${info.grid.split} split, first ${info.grid.perClass} images ` +
    `of each class, one row per class)`);
  return lines.join('\n') + '\n';
}

export const dataInfoCommand: Command = {
  spec: {
    name: 'data info',
    brief: 'counts per split and class of a dataset, and a PNG of examples',
    summary: `Counts per split and class, image size and channels, and an optional PNG grid of examples.\nDATASET: ` +
      `${DATASET_SPECS_HELP} (one sub-folder of PNG/JPEG images per class).`,
    usage: 'ctfgen data info DATASET [options]',
    positionals: ['DATASET'],
    flags: {
      split: { type: 'string', default: 'all', help: 'train, test or all' },
      grid: { type: 'string', help: 'write a PNG of examples here (one row per class; from train when --split all)' },
      perClass: { type: 'int', default: 8, min: 1, help: 'examples per class in the grid' },
      scale: {
        type: 'int',
        default: 1,
        min: 1,
        help: 'enlarge the grid tiles by this integer factor (nearest neighbour)',
      },
      json: { type: 'boolean', help: 'print machine-readable JSON to stdout instead of the table' },
      ...DATA_LOAD_FLAGS,
    },
  },
  async run(f, positionals) {
    if (positionals.length !== 1)
      throw new UsageError(`expected one DATASET (${DATASET_SPECS_HELP}), got ${positionals.length}`);
    const spec = datasetSpec(positionals[0]!, 'DATASET');
    checkOutputs({ inputs: [], outputs: [typeof f['grid'] === 'string' ? { role: '--grid', path: f['grid'] } : null] });
    const splitFlag = String(f['split']);
    if (splitFlag !== 'train' && splitFlag !== 'test' && splitFlag !== 'all')
      throw new UsageError(`--split: expected train, test or all, got "${splitFlag}"`);
    const splits: Split[] = splitFlag === 'all' ? [...SPLITS] : [splitFlag];
    // With --split all an empty held-out split (--test-fraction 0) is shown as zeros, not an error.
    const opts = { ...loadOptionsFromFlags(f, spec), allowEmptySplit: splitFlag === 'all' };
    const loaded: Dataset[] = [];
    for (const s of splits) {
      const t0 = performance.now();
      const ds = await loadDataset(spec, s, opts);
      process.stderr.write(
        `loaded ${ds.name} ${s}: ${ds.count} images in ${((performance.now() - t0) / 1000).toFixed(2)} s\n`,
      );
      loaded.push(ds);
    }
    const first = loaded[0]!;
    for (const ds of loaded.slice(1))
      if (
        ds.channels !== first.channels ||
        ds.height !== first.height ||
        ds.width !== first.width ||
        ds.numClasses !== first.numClasses
      )
        throw new CtfError(
          `dataset ${spec}: the ${ds.split} split is ${ds.channels}×${ds.height}×${ds.width} with ${ds.numClasses} ` +
          `classes, the ${first.split} split ${first.channels}×${first.height}×${first.width} with ${first.numClasses}`,
        );
    const info: DataInfo = {
      dataset: first.name,
      channels: first.channels,
      height: first.height,
      width: first.width,
      numClasses: first.numClasses,
      classNames: first.classNames,
      flipPreservesClass: first.flipPreservesClass,
      preprocessing: first.preprocessing,
      splits: {},
      grid: null,
    };
    for (const ds of loaded) info.splits[ds.split] = { count: ds.count, perClass: classCounts(ds) };
    if (typeof f['grid'] === 'string') {
      const perClass = f['perClass'] as number;
      const order = indicesByClass(first).flatMap((idx) => Array.from({ length: perClass }, (_, k) => idx[k] ?? -1));
      await writeImageGrid(f['grid'], first.images, [first.count, first.channels, first.height, first.width], {
        cols: perClass,
        order,
        scale: f['scale'] as number,
      });
      info.grid = { path: f['grid'], split: first.split, perClass };
    }
    process.stdout.write(f['json'] ? JSON.stringify(info, null, 2) + '\n' : table(info));
  },
};
