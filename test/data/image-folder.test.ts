import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import jpeg from 'jpeg-js';
import { CtfError } from '../../src/errors.js';
import { loadDataset } from '../../src/data/dataset.js';
import { encodePng } from '../../src/io/png.js';

/** A grey w×h image whose pixel (y, x) is f(y, x). */
function greyPng(w: number, h: number, f: (y: number, x: number) => number): Buffer {
  const data = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[y * w + x] = f(y, x);
  return encodePng({ width: w, height: h, channels: 1, data });
}
function rgbaPng(w: number, h: number, rgba: [number, number, number, number]): Buffer {
  const data = new Uint8Array(w * h * 4);
  for (let p = 0; p < w * h; p++) data.set(rgba, 4 * p);
  return encodePng({ width: w, height: h, channels: 4, data });
}
function jpegOf(w: number, h: number, rgb: [number, number, number]): Buffer {
  const data = Buffer.alloc(w * h * 4);
  for (let p = 0; p < w * h; p++) {
    data[4 * p] = rgb[0];
    data[4 * p + 1] = rgb[1];
    data[4 * p + 2] = rgb[2];
    data[4 * p + 3] = 255;
  }
  return jpeg.encode({ width: w, height: h, data }, 95).data;
}

type Tree = Record<string, Uint8Array | string | null>;  // relative path → content; null = empty folder

async function withTree(tree: Tree, fn: (root: string) => Promise<void>): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'ctf-folder-'));
  try {
    for (const [rel, content] of Object.entries(tree)) {
      const p = join(root, rel);
      if (content === null) { mkdirSync(p, { recursive: true }); continue; }
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, content);
    }
    await fn(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

async function rejectsWith(p: Promise<unknown>, ...fragments: string[]): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof CtfError, `expected CtfError, got ${String(e)}`);
    for (const f of fragments) assert.ok(e.message.includes(f), `message "${e.message}" lacks "${f}"`);
    return true;
  });
}

test('train/ and test/ folders: classes from sorted folder names, grey → 1 channel, exact pixels', () => withTree({
  'train/zebra/1.png': greyPng(4, 3, (y, x) => 10 * y + x),
  'train/zebra/0.png': greyPng(4, 3, () => 200),
  'train/ant/a.PNG': greyPng(4, 3, () => 7),
  'train/ant/.DS_Store': 'junk',          // hidden: ignored
  'train/ant/sub/b.png': greyPng(4, 3, () => 9),   // nested folders are searched
  'test/zebra/t.png': greyPng(4, 3, () => 1),
  'test/ant/t.png': greyPng(4, 3, () => 2),
  'README.md': 'ignored at the root',
}, async (root) => {
  const train = await loadDataset(`folder:${root}`, 'train');
  assert.equal(train.name, `folder:${root}`);
  assert.deepEqual(train.classNames, ['ant', 'zebra']);
  assert.deepEqual([train.count, train.channels, train.height, train.width], [4, 1, 3, 4]);
  // by class, then path: ant/a.PNG, ant/sub/b.png, zebra/0.png, zebra/1.png
  assert.deepEqual([...train.labels], [0, 0, 1, 1]);
  assert.deepEqual([...train.images.subarray(0, 12)], new Array(12).fill(7));
  assert.deepEqual([...train.images.subarray(12, 24)], new Array(12).fill(9));
  assert.deepEqual([...train.images.subarray(24, 36)], new Array(12).fill(200));
  assert.deepEqual([...train.images.subarray(36, 48)], [0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23]);
  const test = await loadDataset(`folder:${root}`, 'test', { pad: 1, padValue: 255 });
  assert.deepEqual([test.count, test.height, test.width], [2, 5, 6]);
  assert.equal(test.images[0], 255);
  assert.equal(test.images[1 * 6 + 1], 2);
}));

test('one colour image makes the dataset RGB; grey images are replicated, alpha is composited on white', () =>
  withTree(
    {
      'cats/grey.png': greyPng(8, 8, () => 100),
      'cats/half-transparent.png': rgbaPng(8, 8, [0, 0, 0, 128]),
      'dogs/red.jpg': jpegOf(8, 8, [220, 30, 30]),
      'dogs/grey.jpeg': jpegOf(8, 8, [60, 60, 60]),
    },
    async (root) => {
      const ds = await loadDataset(`folder:${root}`, 'train', { testFraction: 0 });
      assert.deepEqual([ds.count, ds.channels, ds.numClasses], [4, 3, 2]);
      const plane = 64,
        img = (i: number, c: number): number => ds.images[(i * 3 + c) * plane + 9]!;
      for (let c = 0; c < 3; c++) assert.equal(img(0, c), 100); // cats/grey.png: R = G = B
      for (let c = 0; c < 3; c++) assert.equal(img(1, c), 127); // black at alpha 128 over white: round(255·127/255)
      assert.ok(
        Math.abs(img(3, 0) - 220) <= 3 && Math.abs(img(3, 1) - 30) <= 3,
        `JPEG red is (${img(3, 0)}, ${img(3, 1)}, ${img(3, 2)})`,
      );
      // Alpha composited on black instead:
      const black = await loadDataset(`folder:${root}`, 'train', { testFraction: 0, alphaBackground: 0 });
      assert.equal(black.images[1 * 3 * plane + 9], 0);
    },
  ));

test('all-grey JPEGs and opaque RGB PNGs with R = G = B give 1 channel', () => withTree({
  'a/1.jpg': jpegOf(8, 8, [90, 90, 90]),
  'b/1.png': rgbaPng(8, 8, [33, 33, 33, 255]),
}, async (root) => {
  const ds = await loadDataset(`folder:${root}`, 'train', { testFraction: 0 });
  assert.equal(ds.channels, 1);
  assert.equal(ds.images[64], 33);
}));

test('mixed sizes are an error naming both files unless resize is given (bilinear)', () => withTree({
  'a/small.png': greyPng(4, 4, () => 50),
  'b/large.png': greyPng(8, 6, (_y, x) => (x < 4 ? 0 : 200)),
}, async (root) => {
  await rejectsWith(
    loadDataset(`folder:${root}`, 'train'),
    'mixed image sizes',
    'large.png is 8×6',
    'small.png is 4×4',
    'resize',
  );
  const ds = await loadDataset(`folder:${root}`, 'train', { resize: [3, 4], testFraction: 0 });
  assert.deepEqual([ds.height, ds.width, ds.preprocessing.resize], [3, 4, [3, 4]]);
  assert.deepEqual([...ds.images.subarray(0, 12)], new Array(12).fill(50));  // a constant stays constant
  // 8 → 4 columns: output centres sit at source x = 0.5, 2.5, 4.5, 6.5 → 0, 0, 200, 200.
  assert.deepEqual([...ds.images.subarray(12, 16)], [0, 0, 200, 200]);
}));

test('empty class folder, non-image file, corrupt or truncated image: errors naming the culprit', async () => {
  await withTree({ 'a/1.png': greyPng(2, 2, () => 0), 'empty': null }, async (root) => {
    await rejectsWith(loadDataset(`folder:${root}`, 'train'), `class folder ${join(root, 'empty')} is empty`);
  });
  await withTree({ 'a/1.png': greyPng(2, 2, () => 0), 'a/notes.txt': 'hello' }, async (root) => {
    await rejectsWith(loadDataset(`folder:${root}`, 'train'), `${join(root, 'a', 'notes.txt')} is not an image`);
  });
  await withTree({ 'a/1.png': greyPng(2, 2, () => 0), 'a/2.png': 'not really a png' }, async (root) => {
    await rejectsWith(loadDataset(`folder:${root}`, 'train'), join(root, 'a', '2.png'), 'not a PNG or JPEG');
  });
  const png = greyPng(16, 16, (y, x) => x * y);
  await withTree({ 'a/1.png': png.subarray(0, png.length - 20) }, async (root) => {
    await rejectsWith(loadDataset(`folder:${root}`, 'train'), join(root, 'a', '1.png'), 'corrupt PNG');
  });
  const jpg = jpegOf(16, 16, [1, 2, 3]);
  await withTree({ 'a/1.jpg': jpg.subarray(0, jpg.length >> 1) }, async (root) => {
    await rejectsWith(loadDataset(`folder:${root}`, 'train'), join(root, 'a', '1.jpg'), 'corrupt JPEG');
  });
  await withTree({ 'train/a/1.png': greyPng(2, 2, () => 0), 'test/b/1.png': greyPng(2, 2, () => 0) }, async (root) => {
    await rejectsWith(
      loadDataset(`folder:${root}`, 'test'),
      'different classes',
      'missing in test/: a',
      'only in test/: b',
    );
  });
  await withTree({ 'x.png': greyPng(2, 2, () => 0) }, async (root) => {
    await rejectsWith(loadDataset(`folder:${root}`, 'train'), 'no class sub-folders');
  });
  await rejectsWith(loadDataset('folder:/nonexistent/ctf-data', 'train'), '/nonexistent/ctf-data', 'not a directory');
});

test('without train/ and test/: a seeded, stratified 10% hold-out, disjoint and complete', async () => {
  const tree: Tree = {};
  for (const cls of ['p', 'q'])
    for (let i = 0; i < 20; i++)
      tree[`${cls}/${String(i).padStart(2, '0')}.png`] = greyPng(2, 1, () => i + (cls === 'q' ? 100 : 0));
  await withTree(tree, async (root) => {
    const ids = (ds: { images: Uint8Array; count: number }): number[] =>
      Array.from({ length: ds.count }, (_, i) => ds.images[2 * i]!);
    const train = await loadDataset(`folder:${root}`, 'train'), test = await loadDataset(`folder:${root}`, 'test');
    assert.deepEqual([train.count, test.count], [36, 4]);
    assert.deepEqual([...test.labels], [0, 0, 1, 1]);
    const all = [...ids(train), ...ids(test)].sort((a, b) => a - b);
    assert.deepEqual(all, [...Array(20).keys(), ...Array.from({ length: 20 }, (_, i) => 100 + i)]);
    const again = await loadDataset(`folder:${root}`, 'test');
    assert.deepEqual(ids(again), ids(test));
    const other = await loadDataset(`folder:${root}`, 'test', { splitSeed: 1 });
    assert.notDeepEqual(ids(other), ids(test));
    const quarter = await loadDataset(`folder:${root}`, 'test', { testFraction: 0.25 });
    assert.equal(quarter.count, 10);
    await rejectsWith(loadDataset(`folder:${root}`, 'test', { testFraction: 0 }), 'the test split is empty');
  });
});
