// What a tokenizer was trained on, or what a token file encodes: the dataset's name, split, size and
// preprocessing, and a sha256 of its pixels and labels, so "the same data" can be checked, not assumed.
import { createHash } from 'node:crypto';
import type { Dataset } from '../data/dataset.js';

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
