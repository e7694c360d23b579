// What a tokenizer was trained on, or what a token file encodes: the dataset's name, split, size and
// preprocessing, and a sha256 of its pixels and labels, so "the same data" can be checked, not assumed.
import { createHash } from 'node:crypto';
import type { Dataset } from '../data/dataset.js';
import { CtfError } from '../errors.js';

export interface DataIdentity {
  name: string;
  split: string;
  count: number;
  channels: number;
  height: number;
  width: number;
  numClasses: number;
  preprocessing: Dataset['preprocessing'];
  sha256: string;  // of images (N, C, H, W) u8 then labels (N) i32 little-endian
}

export function dataIdentity(ds: Dataset): DataIdentity {
  const h = createHash('sha256');
  h.update(ds.images);
  h.update(new Uint8Array(ds.labels.buffer, ds.labels.byteOffset, ds.labels.byteLength));
  return {
    name: ds.name, split: ds.split, count: ds.count, channels: ds.channels, height: ds.height, width: ds.width,
    numClasses: ds.numClasses, preprocessing: ds.preprocessing, sha256: h.digest('hex'),
  };
}

/** "fashion-mnist (256 images, sha256 0123456789ab…)", for messages. */
export function describeData(d: Pick<DataIdentity, 'name' | 'count' | 'sha256'>): string {
  return `${d.name} (${d.count} images, sha256 ${d.sha256.slice(0, 12)}…)`;
}

/** More classes than this in a data identity read from a file is a lie (a GPT allocates a row per class). */
const MAX_CLASSES = 1 << 16;

/**
 * Refuses a DataIdentity read from a file (token file, train state) that is not one: every field present with its
 * type, counts in range. `where` names the file and the field in errors.
 */
export function validateDataIdentity(x: unknown, where: string): asserts x is DataIdentity {
  const bad = (field: string, v: unknown, expected: string): CtfError =>
    new CtfError(`${where}: ${field} is ${JSON.stringify(v)?.slice(0, 60) ?? 'missing'}, expected ${expected}`);
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(x)) throw bad('the data identity', x, 'an object');
  for (const k of ['name', 'split', 'sha256'] as const) if (typeof x[k] !== 'string') throw bad(k, x[k], 'a string');
  for (const k of ['count', 'channels', 'height', 'width', 'numClasses'] as const) {
    const v = x[k], most = k === 'numClasses' ? MAX_CLASSES : Number.MAX_SAFE_INTEGER;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > most)
      throw bad(k, v, k === 'numClasses' ? `an integer in [1, ${most}]` : 'a positive integer');
  }
  const p = x['preprocessing'];
  if (!isObject(p)) throw bad('preprocessing', p, 'an object {pad, padValue, resize}');
  for (const k of ['pad', 'padValue'] as const)
    if (typeof p[k] !== 'number' || !Number.isSafeInteger(p[k]) || (p[k] as number) < 0)
      throw bad(`preprocessing.${k}`, p[k], 'an integer ≥ 0');
  const r = p['resize'];
  const isSize = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 1;
  if (r !== null && !(Array.isArray(r) && r.length === 2 && r.every(isSize)))
    throw bad('preprocessing.resize', r, 'null or [height, width]');
}
