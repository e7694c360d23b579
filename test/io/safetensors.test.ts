import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decodeSafetensors, encodeSafetensors, expectTensor, loadInto, loadSafetensors, loadSafetensorsSync,
  saveSafetensors, saveSafetensorsSync,
} from '../../src/io/safetensors.js';
import { Tensor, intTensor, tensor } from '../../src/engine/tensor.js';
import { fixturePath, loadFixture } from '../oracle/fixtures.js';

/** A safetensors file from a raw header (object or text) and a data buffer. */
function raw(header: unknown, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const js = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const out = new Uint8Array(8 + js.length + data.length);
  new DataView(out.buffer).setUint32(0, js.length, true);
  out.set(js, 8);
  out.set(data, 8 + js.length);
  return out;
}

function f32Bytes(v: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(v).buffer);
}

const decode = (b: Uint8Array): ReturnType<typeof decodeSafetensors> => decodeSafetensors(b, 'mem.safetensors');

test('round trip of every dtype; F16/BF16 exact on representable values', () => {
  const f16Exact = [
    0,
    -0,
    1,
    -2,
    0.5,
    65504,
    -65504,
    2 ** -14,
    2 ** -24,
    3 * 2 ** -24,
    1 + 2 ** -10,
    1025,
    Infinity,
    -Infinity,
  ];
  const bf16Exact = [
    0,
    -0,
    1,
    -3,
    2 ** -126,
    2 ** -133,
    1 + 2 ** -7,
    3.3895313892515355e38,
    1e-40 - (1e-40 % 2 ** -133),
    Infinity,
  ];
  const i32 = [0, 1, -1, 2147483647, -2147483648, 123456];
  const bytes = encodeSafetensors({
    a: { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1.5, -2, 3e-30, 4e30, NaN, 0]) },
    h: { dtype: 'F16', shape: [f16Exact.length], data: Float32Array.from(f16Exact) },
    b: { dtype: 'BF16', shape: [bf16Exact.length], data: Float32Array.from(bf16Exact) },
    i: { dtype: 'I32', shape: [2, 3], data: Int32Array.from(i32) },
    l: { dtype: 'I64', shape: [6], data: Int32Array.from(i32) },
    s: { shape: [], data: Float32Array.from([7]) },
    e: { shape: [0, 4], data: new Float32Array(0) },
  });
  const f = decode(bytes);
  const get = (n: string) => f.tensors.get(n)!;
  assert.deepEqual([...get('a').data], [...Float32Array.from([1.5, -2, 3e-30, 4e30, NaN, 0])]);
  assert.deepEqual(get('a').shape, [2, 3]);
  assert.deepEqual([...get('h').data], f16Exact);
  assert.ok(Object.is(get('h').data[1], -0));
  assert.deepEqual([...get('b').data], [...Float32Array.from(bf16Exact)]);
  assert.deepEqual([...get('i').data], i32);
  assert.deepEqual([...get('l').data], i32);
  assert.equal(get('l').dtype, 'I64');
  assert.ok(get('l').data instanceof Int32Array && get('h').data instanceof Float32Array);
  assert.deepEqual(get('s').shape, []);
  assert.deepEqual(get('e').shape, [0, 4]);
  // Header: padded with spaces to a multiple of 8, starting with "{".
  const n = new DataView(bytes.buffer).getUint32(0, true);
  assert.equal(n % 8, 0);
  assert.equal(bytes[8], 0x7b);
});

test('F16/BF16 rounding is nearest-even; NaN stays NaN; finite overflow is an error', () => {
  const f = decode(
    encodeSafetensors({
      h: {
        dtype: 'F16',
        shape: [5],
        data: Float32Array.from([1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -25, 3 * 2 ** -25, NaN]),
      },
      b: { dtype: 'BF16', shape: [3], data: Float32Array.from([1 + 2 ** -8, 1 + 3 * 2 ** -8, NaN]) },
    }),
  );
  const h = [...f.tensors.get('h')!.data], b = [...f.tensors.get('b')!.data];
  assert.deepEqual(h.slice(0, 4), [1, 1 + 2 ** -9, 0, 2 ** -23]);
  assert.ok(Number.isNaN(h[4]));
  assert.deepEqual(b.slice(0, 2), [1, 1 + 2 ** -6]);
  assert.ok(Number.isNaN(b[2]));
  assert.throws(
    () => encodeSafetensors({ big: { dtype: 'F16', shape: [2], data: Float32Array.from([1, 70000]) } }, {}, 'out.st'),
    /out\.st: tensor "big": element 1 = 70000 overflows F16/,
  );
});

test('metadata round trip; files without metadata give {}', () => {
  const meta = { kind: 'gpt', config: JSON.stringify({ dim: 64, layers: 2 }), note: 'ünïcødé ✓' };
  const f = decode(encodeSafetensors({ x: tensor([1, 2], [2]) }, meta));
  assert.deepEqual(f.metadata, meta);
  assert.deepEqual(decode(encodeSafetensors({ x: tensor([1], [1]) })).metadata, {});
  assert.throws(
    () => encodeSafetensors({ x: tensor([1], [1]) }, { n: 3 as unknown as string }),
    /metadata "n" must be a string/,
  );
});

test('engine Tensors encode directly; offsets that are not 4-aligned decode into aligned arrays', () => {
  const t = tensor([1, 2, 3], [3]);
  const ids = intTensor([4, 5], [2]);
  const f = decode(encodeSafetensors(new Map<string, Tensor>([['t', t], ['ids', ids]])));
  assert.equal(f.tensors.get('t')!.dtype, 'F32');
  assert.equal(f.tensors.get('ids')!.dtype, 'I32');
  // A 3-byte hole-free layout: 1 F16 (2 bytes) then an F32 at offset 2.
  const data = new Uint8Array(6);
  data.set([0x00, 0x3c]); // F16 1.0
  data.set(f32Bytes([-1.25]), 2);
  const g = decode(
    raw(
      { h: { dtype: 'F16', shape: [1], data_offsets: [0, 2] }, x: { dtype: 'F32', shape: [1], data_offsets: [2, 6] } },
      data,
    ),
  );
  assert.deepEqual([...g.tensors.get('h')!.data], [1]);
  assert.deepEqual([...g.tensors.get('x')!.data], [-1.25]);
  assert.equal(g.tensors.get('x')!.data.byteOffset % 4, 0);
});

test('malformed files: each error names the file and what is wrong', () => {
  const ok = { x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const d8 = f32Bytes([1, 2]);
  assert.throws(() => decode(new Uint8Array(5)), /mem\.safetensors: file is 5 bytes, too short/);
  const full = raw(ok, d8);
  assert.throws(
    () => decode(full.subarray(0, 20)),
    /mem\.safetensors: header length \d+ runs past the end of the 20-byte file: truncated/,
  );
  assert.throws(
    () => decode(full.subarray(0, full.length - 1)),
    /tensor "x": data_offsets \[0,8\] run past the 7-byte data buffer/,
  );
  assert.throws(() => decode(raw('{"x": {"dtype": "F32",', d8)), /mem\.safetensors: header is not valid UTF-8 JSON/);
  assert.throws(() => decode(raw('[1,2]')), /header does not start with "\{"/);
  assert.throws(
    () => decode(raw({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 12] } }, d8)),
    /tensor "x": data_offsets \[0,12\] run past the 8-byte data buffer/,
  );
  assert.throws(
    () => decode(raw({ x: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, d8)),
    /tensor "x": data_offsets \[8,0\] is not \[begin, end\]/,
  );
  assert.throws(
    () =>
      decode(
        raw(
          {
            x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
            y: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
          },
          d8,
        ),
      ),
    /tensor "y" data_offsets \[4,8\] overlap tensor "x"/,
  );
  assert.throws(
    () => decode(raw({ x: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, d8)),
    /bytes \[0,4\) of the data buffer belong to no tensor/,
  );
  assert.throws(
    () => decode(raw({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, d8)),
    /data buffer is 8 bytes but the tensors cover only 4/,
  );
  assert.throws(
    () => decode(raw({ x: { dtype: 'F64', shape: [1], data_offsets: [0, 8] } }, d8)),
    /tensor "x": dtype "F64" is not supported \(F32, F16, BF16, I32, I64\)/,
  );
  assert.throws(
    () => decode(raw({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, d8)),
    /tensor "x": shape \[3\] F32 needs 12 bytes, data_offsets \[0,8\] hold 8/,
  );
  assert.throws(
    () => decode(raw({ x: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, d8)),
    /tensor "x": shape \[-2\] is not a list of integers/,
  );
  assert.throws(
    () => decode(raw({ __metadata__: { a: 1 }, ...ok }, d8)),
    /metadata "a" is a number, expected a string/,
  );
  const i64 = new Uint8Array(16);
  new DataView(i64.buffer).setBigInt64(8, 2n ** 31n, true);
  assert.throws(() => decode(raw({ ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, i64)),
    /tensor "ids" \(I64\): element 1 = 2147483648 does not fit in int32/);
});

test('foreign files (PNG, pickle, random bytes) are refused with a hint', () => {
  const png = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489', 'hex');
  assert.throws(
    () => decodeSafetensors(png, 'img.png'),
    /safetensors img\.png: header length \d+ runs past the end .*not a safetensors file \(it starts like a PNG image\)/,
  );
  const pickle = Buffer.from([0x80, 0x04, 0x95, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.throws(() => decodeSafetensors(pickle, 'w.pkl'), /not a safetensors file \(it starts like a Python pickle\)/);
  let s = 12345;
  const noise = Uint8Array.from({ length: 4096 }, () => (s = (s * 1103515245 + 12345) >>> 0) >>> 24);
  assert.throws(() => decodeSafetensors(noise, 'noise.bin'), /safetensors noise\.bin: .*not a safetensors file/);
  // A small header length that lands on garbage rather than "{".
  noise.set([16, 0, 0, 0, 0, 0, 0, 0]);
  assert.throws(() => decodeSafetensors(noise, 'noise.bin'), /noise\.bin: header (does not start with|is not valid)/);
});

test('expectTensor and loadInto check names, shapes and dtypes', () => {
  const f = decode(encodeSafetensors({
    'w.weight': tensor([1, 2, 3, 4, 5, 6], [2, 3]),
    'h.weight': { dtype: 'F16', shape: [2], data: Float32Array.from([0.5, 1]) },
    ids: intTensor([3, 4], [2]),
  }));
  assert.deepEqual(expectTensor(f, 'w.weight', [2, 3], 'f32').toArray(), [1, 2, 3, 4, 5, 6]);
  assert.equal(expectTensor(f, 'h.weight', [2], 'f32').dtype, 'f32');
  assert.throws(() => expectTensor(f, 'h.weight', [2], 'F32'), /tensor "h\.weight" is F16, expected F32/);
  assert.throws(() => expectTensor(f, 'nope'), /mem\.safetensors: tensor "nope" is missing \(the file has 3: /);
  assert.throws(() => expectTensor(f, 'w.weight', [3, 2]), /tensor "w\.weight" has shape \[2,3\], expected \[3,2\]/);
  assert.throws(() => expectTensor(f, 'ids', [2], 'f32'), /tensor "ids" is I32, expected f32/);

  const w = new Tensor(new Float32Array(6), [2, 3]),
    h = new Tensor(new Float32Array(2), [2]),
    ids = new Tensor(new Int32Array(2), [2]);
  const before = w.data;
  const r = loadInto(new Map([['w.weight', w], ['h.weight', h], ['ids', ids]]), f);
  assert.deepEqual(r, { loaded: ['w.weight', 'h.weight', 'ids'], unexpected: [] });
  assert.equal(w.data, before, 'loaded in place');
  assert.deepEqual(w.toArray(), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(h.toArray(), [0.5, 1]);
  assert.deepEqual(ids.toArray(), [3, 4]);

  assert.throws(
    () => loadInto(new Map([['w.weight', w]]), f),
    /2 tensors do not match the model: "ids" is not a parameter of the model; "h\.weight" is not/,
  );
  assert.deepEqual(loadInto(new Map([['w.weight', w]]), f, { strict: false }).unexpected, ['ids', 'h.weight']);
  assert.throws(() => loadInto(new Map([['w.weight', new Tensor(new Float32Array(6), [3, 2])]]), f, { strict: false }),
    /"w\.weight" has shape \[2,3\], expected \[3,2\]/);
  assert.throws(
    () => loadInto(new Map([['missing.weight', w]]), f, { strict: false }),
    /"missing\.weight" is missing \(expected f32\[2,3\]\)/,
  );
  assert.throws(
    () => loadInto(new Map([['ids', new Tensor(new Float32Array(2), [2])]]), f, { strict: false }),
    /"ids" is I32, expected f32/,
  );
});

test('save/load through files: atomic, no temp files left, old file kept when a save fails', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctf-st-'));
  try {
    const p = join(dir, 'm.safetensors');
    await saveSafetensors(p, { x: tensor([1, 2], [2]) }, { v: '1' });
    assert.deepEqual([...(await loadSafetensors(p)).tensors.get('x')!.data], [1, 2]);
    saveSafetensorsSync(p, { x: tensor([3, 4], [2]) }, { v: '2' });
    assert.deepEqual(loadSafetensorsSync(p).metadata, { v: '2' });
    // Encoding fails (F16 overflow) before anything touches the disk: the old file stays.
    await assert.rejects(
      saveSafetensors(p, { x: { dtype: 'F16', shape: [1], data: Float32Array.from([1e6]) } }),
      /overflows F16/,
    );
    assert.deepEqual([...loadSafetensorsSync(p).tensors.get('x')!.data], [3, 4]);
    // A missing directory: the error names the target and no temp file is left behind.
    await assert.rejects(
      saveSafetensors(join(dir, 'nodir', 'a.safetensors'), { x: tensor([1], [1]) }),
      /cannot write .*nodir.*a\.safetensors/,
    );
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), []);
    await assert.rejects(
      loadSafetensors(join(dir, 'absent.safetensors')),
      /safetensors file .*absent\.safetensors does not exist/,
    );
    assert.throws(() => loadSafetensorsSync(join(dir, 'absent.safetensors')), /absent\.safetensors does not exist/);
    // A truncated file on disk.
    const bytes = readFileSync(p);
    writeFileSync(join(dir, 'cut.safetensors'), bytes.subarray(0, bytes.length - 3));
    await assert.rejects(
      loadSafetensors(join(dir, 'cut.safetensors')),
      /cut\.safetensors: tensor "x": data_offsets \[0,8\] run past the 5-byte data buffer/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file written by PyTorch (oracle/st.py) loads with identical values', () => {
  const f = loadFixture('safetensors_torch.safetensors');
  assert.equal(f.source, fixturePath('safetensors_torch.safetensors'));
  assert.deepEqual(f.metadata, { format: 'ctfgen-test', note: 'unicode ✓', writer: 'oracle/st.py' });
  const t = (n: string) => f.tensors.get(n)!;
  assert.equal(t('f16').dtype, 'F16');
  assert.equal(t('bf16').dtype, 'BF16');
  assert.equal(t('i64').dtype, 'I64');
  assert.deepEqual([...t('f16').data], [...t('f16_as_f32').data]);
  assert.deepEqual([...t('bf16').data], [...t('bf16_as_f32').data]);
  assert.deepEqual(t('bf16').shape, [2, 3]);
  assert.deepEqual([...t('i64').data], [-(2 ** 31), 2 ** 31 - 1, 0, -1, 123456789]);
  assert.equal(t('i32').data.length, 4);
  assert.deepEqual([...t('scalar').data], [2.5]);
  assert.deepEqual(t('empty').shape, [0, 3]);
  // Our F32 → F16/BF16 rounding gives torch's bits on values spanning the whole range, ties included.
  const ours = decode(encodeSafetensors({
    h: { dtype: 'F16', shape: t('half_src').shape, data: t('half_src').data },
    b: { dtype: 'BF16', shape: t('bf16_src').shape, data: t('bf16_src').data },
  }));
  assert.deepEqual([...ours.tensors.get('h')!.data], [...t('half_src.f16').data]);
  assert.deepEqual([...ours.tensors.get('b')!.data], [...t('bf16_src.bf16').data]);
  // And we write what torch reads: our bytes for the F16 tensor equal the file's.
  const enc = encodeSafetensors({
    'half_src.f16': { dtype: 'F16', shape: t('half_src').shape, data: t('half_src').data },
  });
  const fileBytes = readFileSync(fixturePath('safetensors_torch.safetensors'));
  const hdrLen = Number(fileBytes.readBigUInt64LE(0));
  const hdr = JSON.parse(fileBytes.subarray(8, 8 + hdrLen).toString('utf8')) as Record<
    string,
    { data_offsets: [number, number] }
  >;
  const [b0, b1] = hdr['half_src.f16']!.data_offsets;
  const encHdr = Number(Buffer.from(enc).readBigUInt64LE(0));
  assert.deepEqual(Buffer.from(enc.subarray(8 + encHdr)), fileBytes.subarray(8 + hdrLen + b0, 8 + hdrLen + b1));
});
