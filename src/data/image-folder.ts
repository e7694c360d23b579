// `folder:PATH` datasets in the ImageFolder convention: one sub-folder per class, class ids in sorted
// (code point) order of the folder names. The rules, all deterministic:
//  - Layout. If PATH has sub-folders `train/` and `test/`, each holds the class folders of its split and
//    both must have the same classes (nothing else may sit beside them but files, which are ignored).
//    Otherwise the class folders are at PATH and the split is made per class: the files of a class
//    (in sorted walk order) are shuffled by Rng(splitSeed).split('folder-split').split(className) and the first
//    round(n · testFraction) go to `test` (defaults 0 and 0.1), the rest to `train`.
//  - Files. Class folders are searched recursively; names starting with "." are skipped (.DS_Store);
//    plain files beside the class folders (README, LICENSE at PATH or in train/, test/) are ignored; every
//    file inside a class folder must be .png, .jpg or .jpeg and decode, or the load fails naming it. An
//    empty class folder is an error.
//  - Channels. Transparent pixels are composited over `alphaBackground` (default 255, white). If every
//    image of the dataset (both splits) is then grey (R = G = B), the dataset has 1 channel, else 3 and
//    grey images are replicated to RGB. Both splits always get the same channels and size.
//  - Size. All images must have the same size unless `resize` [height, width] is given, which resizes
//    every image bilinearly (image-ops.resizeBilinear).
// Within a split images are ordered by class, then in sorted walk order (names sorted in each folder).
import { readdir, stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { CtfError } from '../errors.js';
import { Rng } from '../engine/rng.js';
import { decodeImageFile } from '../io/png.js';
import { copyPlanes, resizeBilinear, toPlanar, type PlanarImage } from './image-ops.js';
import type { Split } from './dataset.js';

export interface FolderOptions {
  resize?: [number, number] | undefined;  // [height, width]; required when image sizes differ
  testFraction?: number | undefined;      // share of each class held out as `test` without train/test folders (0.1)
  splitSeed?: number | undefined;         // seed of that hold-out (0)
  alphaBackground?: number | undefined;   // grey level transparent pixels are composited over (255)
  allowEmptySplit?: boolean | undefined;  // return 0 images instead of failing when the split is empty (false)
}

export interface FolderData {
  root: string;
  layout: 'train-test-folders' | 'held-out-fraction';
  classNames: string[];
  channels: 1 | 3;
  height: number;
  width: number;
  images: Uint8Array;   // (N, C, H, W) of the requested split
  labels: Int32Array;
  files: string[];      // the source file of each image, relative to root
}

const IMAGE_EXT = /\.(png|jpe?g)$/i;

async function isDir(path: string): Promise<boolean> {
  try { return (await stat(path)).isDirectory(); } catch { return false; }
}

async function entries(dir: string): Promise<{ name: string; dir: boolean }[]> {
  let list;
  try {
    list = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    throw new CtfError(`cannot list folder ${dir}: ${(e as Error).message}`);
  }
  const out: { name: string; dir: boolean }[] = [];
  for (const d of list) {
    if (d.name.startsWith('.')) continue;
    // Follow symlinks: a class folder may be a link into another tree.
    const dirLike = d.isDirectory() || (d.isSymbolicLink() && (await isDir(join(dir, d.name))));
    out.push({ name: d.name, dir: dirLike });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await entries(dir)) {
    const p = join(dir, e.name);
    if (e.dir) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

async function classFolders(dir: string): Promise<string[]> {
  const names = (await entries(dir)).filter((e) => e.dir).map((e) => e.name);
  if (names.length === 0)
    throw new CtfError(`folder dataset ${dir}: no class sub-folders (expected one folder of images per class)`);
  return names;
}

async function classFiles(dir: string, cls: string): Promise<string[]> {
  const folder = join(dir, cls);
  const files = await filesUnder(folder);
  if (files.length === 0)
    throw new CtfError(`folder dataset: class folder ${folder} is empty (every class needs at least one image)`);
  for (const f of files)
    if (!IMAGE_EXT.test(f))
      throw new CtfError(
        `folder dataset: ${f} is not an image (expected .png, .jpg or .jpeg; remove it or hide it with a leading ".")`,
      );
  return files;
}

/** The class names of a folder dataset, in label order (train/'s class folders when it has train/ and test/). */
export async function folderClassNames(root: string): Promise<string[]> {
  const topDirs = (await entries(root)).filter((e) => e.dir).map((e) => e.name);
  return classFolders(topDirs.includes('train') && topDirs.includes('test') ? join(root, 'train') : root);
}

/** Every image file of the dataset, with its class and split. */
async function listFiles(
  root: string,
  o: FolderOptions,
): Promise<{
  layout: FolderData['layout'];
  classNames: string[];
  items: { path: string; label: number; split: Split }[];
}> {
  const items: { path: string; label: number; split: Split }[] = [];
  const top = await entries(root);
  const topDirs = top.filter((e) => e.dir).map((e) => e.name);
  if (topDirs.includes('train') && topDirs.includes('test')) {
    const others = topDirs.filter((d) => d !== 'train' && d !== 'test');
    if (others.length > 0)
      throw new CtfError(
        `folder dataset ${root}: has train/ and test/ and also ${others.map((d) => d + '/').join(', ')} — with ` +
        `train/ and test/ the class folders go inside them`,
      );
    const classNames = await classFolders(join(root, 'train'));
    const testClasses = await classFolders(join(root, 'test'));
    if (testClasses.join('\n') !== classNames.join('\n')) {
      const missing = classNames.filter((c) => !testClasses.includes(c)),
        extra = testClasses.filter((c) => !classNames.includes(c));
      throw new CtfError(
        `folder dataset ${root}: train/ and test/ have different classes` +
          (missing.length ? `; missing in test/: ${missing.join(', ')}` : '') +
          (extra.length ? `; only in test/: ${extra.join(', ')}` : ''),
      );
    }
    for (const split of ['train', 'test'] as const)
      for (const [label, cls] of classNames.entries())
        for (const path of await classFiles(join(root, split), cls)) items.push({ path, label, split });
    return { layout: 'train-test-folders', classNames, items };
  }
  const fraction = o.testFraction ?? 0.1;
  if (!(fraction >= 0 && fraction < 1))
    throw new CtfError(`folder dataset: testFraction must be in [0, 1), got ${fraction}`);
  const classNames = await classFolders(root);
  const splitRng = new Rng(o.splitSeed ?? 0).split('folder-split');
  for (const [label, cls] of classNames.entries()) {
    const files = await classFiles(root, cls);
    const perm = splitRng.split(cls).permutation(files.length);
    const nTest = Math.round(files.length * fraction);
    const isTest = new Uint8Array(files.length);
    for (let i = 0; i < nTest; i++) isTest[perm[i]!] = 1;
    files.forEach((path, i) => items.push({ path, label, split: isTest[i] ? 'test' : 'train' }));
  }
  return { layout: 'held-out-fraction', classNames, items };
}

export async function loadImageFolder(path: string, split: Split, o: FolderOptions = {}): Promise<FolderData> {
  const root = resolve(path);
  if (!(await isDir(root))) throw new CtfError(`folder dataset ${root}: not a directory`);
  if (o.resize && !o.resize.every((v) => Number.isInteger(v) && v > 0))
    throw new CtfError(
      `folder dataset: resize must be two positive integers [height, width], got [${o.resize.join(', ')}]`,
    );
  const { layout, classNames, items } = await listFiles(root, o);

  // Decode everything (both splits) so channels and size are decided the same way for each split.
  const decoded: PlanarImage[] = [];
  let first: { path: string; w: number; h: number } | undefined;
  for (const it of items) {
    const img = toPlanar(await decodeImageFile(it.path), o.alphaBackground ?? 255);
    if (!first) first = { path: it.path, w: img.width, h: img.height };
    else if (!o.resize && (img.width !== first.w || img.height !== first.h))
      throw new CtfError(`folder dataset ${root}: mixed image sizes: ${it.path} is ${img.width}×${img.height} but ` +
        `${first.path} is ${first.w}×${first.h}; give a resize option (--resize HxW) to resize every image bilinearly`);
    decoded.push(img);
  }
  const channels: 1 | 3 = decoded.every((d) => d.grey) ? 1 : 3;
  const [height, width] = o.resize ?? [first!.h, first!.w];

  const chosen = items.map((it, i) => ({ ...it, i })).filter((it) => it.split === split);
  if (chosen.length === 0 && !o.allowEmptySplit)
    throw new CtfError(`folder dataset ${root}: the ${split} split is empty` +
      (layout === 'held-out-fraction' ? ` (testFraction ${o.testFraction ?? 0.1} of each class rounds to 0 images; ` +
        `add images or raise the fraction)` : ''));
  const plane = height * width;
  const images = new Uint8Array(chosen.length * channels * plane);
  const labels = new Int32Array(chosen.length);
  chosen.forEach((it, k) => {
    let img = decoded[it.i]!;
    if (img.height !== height || img.width !== width)
      img = {
        width,
        height,
        grey: img.grey,
        data: resizeBilinear(img.data, img.grey ? 1 : 3, img.height, img.width, height, width),
      };
    copyPlanes(img, channels, images, k * channels * plane);
    labels[k] = it.label;
  });
  return {
    root,
    layout,
    classNames,
    channels,
    height,
    width,
    images,
    labels,
    files: chosen.map((it) => relative(root, it.path)),
  };
}
