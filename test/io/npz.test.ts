import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { crc32, decodeNpz, encodeNpz, readNpz, writeNpz, type NpyArray } from '../../src/io/npz.js';
import { CtfError } from '../../src/errors.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'ctfgen-npz-'));
}

/** Samples-like arrays: uint8 NHWC images, labels, floats with NaN, −0 and infinities, a scalar, an empty array. */
function sampleArrays(): Record<string, NpyArray> {
  const images = new Uint8Array(3 * 4 * 5 * 1);
  for (let i = 0; i < images.length; i++) images[i] = (i * 37) % 256;
  return {
    arr_0: { data: images, shape: [3, 4, 5, 1] },
    labels: { data: Int32Array.from([0, -1, 2147483647, -2147483648]), shape: [4] },
    floats: { data: Float32Array.from([1.5, -0, NaN, Infinity, -Infinity, 3e-39]), shape: [2, 3] },
    scalar: { data: Float32Array.from([7]), shape: [] },
    empty: { data: new Float32Array(0), shape: [0, 3] },
  };
}

test('crc32 of known strings', () => {
  assert.equal(crc32(new Uint8Array(0)), 0);
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  assert.equal(crc32(Buffer.from('The quick brown fox jumps over the lazy dog')), 0x414fa339);
});

test('npz round trip keeps dtype, shape and every bit; output is deterministic', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'samples.npz'), arrays = sampleArrays();
    await writeNpz(path, arrays);
    assert.deepEqual(readdirSync(dir), ['samples.npz'], 'no temporary file left behind');
    const back = await readNpz(path);
    assert.deepEqual(Object.keys(back), Object.keys(arrays));
    for (const [name, a] of Object.entries(arrays)) {
      const b = back[name]!;
      assert.equal(b.data.constructor, a.data.constructor, `${name}: type`);
      assert.deepEqual(b.shape, a.shape, `${name}: shape`);
      assert.deepEqual(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength),
        Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength), `${name}: bytes`);
    }
    assert.deepEqual(readFileSync(path), Buffer.from(encodeNpz(sampleArrays())));
    // Members are arr_0.npy, ... and each .npy header pads the data start to 64 bytes.
    const bytes = readFileSync(path);
    assert.equal(bytes.subarray(30, 30 + 9).toString(), 'arr_0.npy');
    const headerLen = bytes.readUInt16LE(30 + 9 + 8);
    assert.equal((10 + headerLen) % 64, 0);
    assert.match(bytes.subarray(30 + 9 + 10, 30 + 9 + 10 + headerLen).toString('latin1'),
      /^\{'descr': '\|u1', 'fortran_order': False, 'shape': \(3, 4, 5, 1\), \} *\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('npz errors: bad shapes, names, corrupt and compressed archives', async () => {
  const bad = (f: () => unknown, re: RegExp) =>
    assert.throws(f, (e: unknown) => e instanceof CtfError && re.test(e.message), re.source);
  bad(
    () => encodeNpz({ x: { data: new Uint8Array(5), shape: [2, 3] } }),
    /array "x" has 5 elements, its shape \[2, 3\] needs 6/,
  );
  bad(() => encodeNpz({ x: { data: new Uint8Array(0), shape: [-1] } }), /expected non-negative integers/);
  bad(() => encodeNpz({ 'a/b': { data: new Uint8Array(1), shape: [1] } }), /array name "a\/b"/);
  bad(
    () => encodeNpz({ x: { data: new Float64Array(1) as unknown as Float32Array, shape: [1] } }),
    /Uint8Array, Float32Array or Int32Array/,
  );
  const bytes = encodeNpz(sampleArrays());
  const corrupt = bytes.slice();
  corrupt[120] = corrupt[120]! ^ 0xff;  // inside arr_0's data
  bad(() => decodeNpz(corrupt, 'x.npz'), /x\.npz: member arr_0\.npy fails its CRC-32 check/);
  bad(() => decodeNpz(bytes.subarray(0, 100), 'x.npz'), /not a ZIP archive/);
  const dir = tempDir();
  try {
    await assert.rejects(readNpz(join(dir, 'missing.npz')), /npz file .*missing\.npz does not exist/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** An interpreter with numpy: Debian's (CTFGEN_TORCH=1 bash scripts/setup.sh installs python3-numpy), else PATH's. */
function pythonWithNumpy(): string | undefined {
  for (const py of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(py, ['-c', 'import numpy'], { encoding: 'utf8' });
    if (r.status === 0) return py;
  }
  return undefined;
}
const python = pythonWithNumpy();
const noNumpy =
  python === undefined ? 'numpy not available (CTFGEN_TORCH=1 bash scripts/setup.sh installs python3-numpy)' : false;

function runPython(script: string, ...args: string[]): string {
  const r = spawnSync(python!, ['-c', script, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `python failed: ${r.stderr}`);
  return r.stdout;
}

test('numpy loads what writeNpz writes', { skip: noNumpy }, async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'samples.npz');
    await writeNpz(path, sampleArrays());
    const out = runPython(`
import json, sys, numpy as np
with np.load(sys.argv[1]) as f:
    print(json.dumps({k: [str(f[k].dtype), list(f[k].shape), f[k].ravel().tolist(), bool(f[k].flags.c_contiguous)]
                      for k in f.files}))
`, path);
    const got = JSON.parse(out.replace(/\bNaN\b/g, '"NaN"').replace(/-?Infinity/g, (m) => `"${m}"`)) as Record<
      string,
      [string, number[], unknown[], boolean]
    >;
    const toJson = (v: number) => (Number.isNaN(v) ? 'NaN' : Number.isFinite(v) ? v : String(v));
    for (const [name, a] of Object.entries(sampleArrays())) {
      const [dtype, shape, values, contiguous] = got[name]!;
      assert.equal(
        dtype,
        { Uint8Array: 'uint8', Int32Array: 'int32', Float32Array: 'float32' }[a.data.constructor.name],
        `${name}: dtype`,
      );
      assert.deepEqual(shape, a.shape, `${name}: shape`);
      assert.deepEqual(values, [...a.data].map(toJson), `${name}: values`);
      assert.ok(contiguous, `${name}: C order`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('readNpz reads np.savez archives and refuses np.savez_compressed clearly', { skip: noNumpy }, async () => {
  const dir = tempDir();
  try {
    const plain = join(dir, 'plain.npz'), packed = join(dir, 'packed.npz');
    runPython(`
import sys, numpy as np
imgs = (np.arange(2 * 3 * 3 * 3) % 251).astype(np.uint8).reshape(2, 3, 3, 3)
np.savez(sys.argv[1], imgs, feats=np.array([-1, -0.5, 0.25, 2, 3.5, 1e-3], dtype=np.float32).reshape(3, 2),
         ids=np.array([5, -7], dtype=np.int32))
np.savez_compressed(sys.argv[2], imgs)
`, plain, packed);
    const f = await readNpz(plain);
    assert.deepEqual(Object.keys(f).sort(), ['arr_0', 'feats', 'ids']);
    assert.deepEqual(f.arr_0!.shape, [2, 3, 3, 3]);
    assert.deepEqual([...f.arr_0!.data], Array.from({ length: 54 }, (_, i) => i % 251));
    assert.ok(f.feats!.data instanceof Float32Array);
    assert.deepEqual([...f.feats!.data], [...Float32Array.from([-1, -0.5, 0.25, 2, 3.5, 1e-3])]);
    assert.deepEqual([...f.ids!.data], [5, -7]);
    await assert.rejects(readNpz(packed), /compressed \(method 8\); only stored members/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
