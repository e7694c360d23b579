import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Rng } from '../../src/engine/rng.js';
import { Tensor, intTensor } from '../../src/engine/tensor.js';
import { decodeSafetensors, encodeSafetensors, type StTensorInput } from '../../src/io/safetensors.js';
import {
  decodeTokenizer,
  encodeTokenizer,
  loadTokenizer,
  saveTokenizer,
  tokenizerHash,
} from '../../src/tokenizer/checkpoint.js';
import { tokenizerConfig } from '../../src/tokenizer/config.js';
import { dataIdentity } from '../../src/tokenizer/data-identity.js';
import { encodeSplit } from '../../src/tokenizer/encode.js';
import { VqTokenizer } from '../../src/tokenizer/model.js';
import { loadTokens, parseTokens, saveTokens } from '../../src/tokenizer/tokens-file.js';
import { throwsCtf } from '../helpers.js';
import { syntheticDataset } from './synthetic.js';

const config = tokenizerConfig('tiny', { inChannels: 1, imageSize: 32 }, { codebookSize: 64 });

/** Re-encodes checkpoint bytes after editing its tensors and metadata. */
function edit(bytes: Uint8Array, f: (t: Map<string, StTensorInput>, m: Record<string, string>) => void): Uint8Array {
  const file = decodeSafetensors(bytes, 'x');
  const tensors = new Map<string, StTensorInput>(
    [...file.tensors].map(([n, t]) => [n, { dtype: t.dtype, shape: t.shape, data: t.data.slice() }]),
  );
  const meta = { ...file.metadata };
  f(tensors, meta);
  return encodeSafetensors(tensors, meta);
}

test('tokenizer checkpoint round trip: same config, weights, hash and outputs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-tokck-'));
  try {
    const model = new VqTokenizer(config, new Rng(3));
    const path = join(dir, 't.safetensors');
    const data = dataIdentity(syntheticDataset(4, { seed: 2 }));
    await saveTokenizer(path, model, { data, note: 'hello' });
    const loaded = await loadTokenizer(path);
    assert.deepEqual(loaded.model.config, model.config);
    assert.equal(loaded.hash, tokenizerHash(model));
    assert.match(loaded.hash, /^[0-9a-f]{64}$/);
    assert.equal(loaded.metadata['note'], 'hello');
    assert.deepEqual(JSON.parse(loaded.metadata['data']!), data);
    // Commands read the data identity to find the dataset again: one that is not is refused by field.
    const partial = edit(readFileSync(path), (_t, m) => { m['data'] = JSON.stringify({ name: 'synthetic' }); });
    throwsCtf(() => decodeTokenizer(partial, 'p'), /tokenizer p: metadata "data": split is missing, expected a string/);
    const torn = edit(readFileSync(path), (_t, m) => { m['data'] = '{'; });
    throwsCtf(() => decodeTokenizer(torn, 'p'), /"data" is not valid JSON/);
    const x = new Tensor(new Rng(0).fillUniform(new Float32Array(2 * 1024), -1, 1), [2, 1, 32, 32]);
    assert.deepEqual(Array.from(loaded.model.encode(x).i32), Array.from(model.encode(x).i32));
    assert.notEqual(tokenizerHash(new VqTokenizer(config, new Rng(4))), loaded.hash, 'other weights, other hash');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tokenizer checkpoint mismatches are refused with the reason', () => {
  const bytes = encodeTokenizer(new VqTokenizer(config, new Rng(3)));
  assert.throws(
    () =>
      decodeTokenizer(
        edit(bytes, (_t, m) => {
          m['kind'] = 'ctfgen.gpt';
        }),
        'f',
      ),
    /not a tokenizer checkpoint \(metadata kind "ctfgen.gpt"/,
  );
  assert.throws(
    () =>
      decodeTokenizer(
        edit(bytes, (_t, m) => {
          m['kind'] = 'ctfgen.train-state';
        }),
        'f',
      ),
    /this is the training state/,
  );
  assert.throws(
    () =>
      decodeTokenizer(
        edit(bytes, (_t, m) => {
          m['format'] = '9';
        }),
        'f',
      ),
    /format 9 is not supported/,
  );
  assert.throws(
    () =>
      decodeTokenizer(
        edit(bytes, (_t, m) => {
          m['config'] = JSON.stringify({ ...config, codebookSize: 128 });
        }),
        'f',
      ),
    /f: the stored config says codebookSize = 128, but tensor "quantize\.embedding\.weight" has 64 rows/,
  );
  assert.throws(
    () =>
      decodeTokenizer(
        edit(bytes, (t) => {
          t.delete('decoder.conv_out.bias');
        }),
        'f',
      ),
    /"decoder\.conv_out\.bias" is missing/,
  );
  assert.throws(
    () =>
      decodeTokenizer(
        edit(bytes, (t) => {
          t.set('extra.weight', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
        }),
        'f',
      ),
    /"extra\.weight" is not a parameter/,
  );
  assert.throws(
    () =>
      decodeTokenizer(
        edit(bytes, (t) => {
          (t.get('quant_conv.bias')!.data as Float32Array)[0]! += 1;
        }),
        'f',
      ),
    /the weights hash to .* the metadata says .* corrupted or was edited/,
  );
  assert.throws(
    () =>
      decodeTokenizer(
        edit(bytes, (_t, m) => {
          m['config'] = '{';
        }),
        'f',
      ),
    /"config" is not valid JSON/,
  );
});

test('encode a split → token file → decode: shapes, labels, flips, and the ' +
  'tokenizer identity is enforced', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-tokens-'));
  try {
    const ds = syntheticDataset(10, { seed: 5 });
    const model = new VqTokenizer(config, new Rng(3));
    const r = encodeSplit(model, ds, { flip: true, batchSize: 4 });
    assert.deepEqual(r.tokens.shape, [20, 8, 8]);
    assert.deepEqual(Array.from(r.labels), [...ds.labels, ...ds.labels]);
    assert.deepEqual(Array.from(r.flipped), [...Array(10).fill(0), ...Array(10).fill(1)]);
    assert.ok(r.imagesPerSec > 0);
    const path = join(dir, 'tokens.safetensors');
    const hash = tokenizerHash(model);
    await saveTokens(path, {
      tokens: r.tokens,
      labels: r.labels,
      flipped: r.flipped,
      tokenizerHash: hash,
      tokenizerConfig: model.config,
      data: dataIdentity(ds),
    });
    const t = await loadTokens(path, { tokenizerHash: hash });
    assert.deepEqual(Array.from(t.tokens.i32), Array.from(r.tokens.i32));
    assert.equal(t.data.count, 10);
    assert.match(t.data.sha256, /^[0-9a-f]{64}$/);
    const images = model.decode(intTensor(t.tokens.i32.subarray(0, 3 * 64), [3, 8, 8]));
    assert.deepEqual(images.shape, [3, 1, 32, 32]);
    await assert.rejects(
      loadTokens(path, { tokenizerHash: tokenizerHash(new VqTokenizer(config, new Rng(9))) }),
      /were made by tokenizer .* not by the given tokenizer/,
    );
    const bad = edit(readFileSync(path), (tensors) => {
      (tensors.get('tokens')!.data as Int32Array)[5] = 64;
    });
    writeFileSync(join(dir, 'bad.safetensors'), bad);
    await assert.rejects(
      loadTokens(join(dir, 'bad.safetensors')),
      /token 64 at position 5 is outside the codebook \[0, 64\)/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const withConfig = (bytes: Uint8Array, over: Record<string, unknown>, key = 'config'): Uint8Array =>
  edit(bytes, (_t, m) => { m[key] = JSON.stringify({ ...JSON.parse(m[key]!), ...over }); });

test('a lying tokenizer config is refused by field and value before anything is allocated', () => {
  const bytes = encodeTokenizer(new VqTokenizer(config, new Rng(3)));
  const rss0 = process.memoryUsage().rss;
  const refused: [Record<string, unknown>, RegExp][] = [
    [{ codebookSize: 2 ** 30 }, /tokenizer f: stored config is invalid: .*codebookSize = 1073741824, expected/],
    [{ channels: 2 ** 16 }, /channels = 65536, expected an integer in \[1, 1024\]/],
    [{ codeDim: 'eight' }, /codeDim = "eight", expected an integer/],
    [{ channelMult: [1, 2, 2, 2, 2, 2, 2, 2, 2] }, /channelMult = \[1,2,2,2,2,2,2,2,2\], expected a list of 1 to 8/],
    [{ imageSize: 1024 }, /imageSize 1024 gives 256×256 tokens, expected at most 64×64/],
    [{ beta: null }, /beta = null, expected a number in \[0, 10\]/],
    [{ beta: 1e308 }, /beta = 1e\+308, expected a number in \[0, 10\]/],
    [{ channels: 16, normGroups: 4 }, /f: the stored config says channels = 16, but tensor "encoder.conv_in.weight"/],
    [{ channelMult: [1, 2, 4] }, /channelMult\[2\] = 4 \(a level 32 wide\), but tensor "encoder.conv_blocks.2.res/],
    [{ channelMult: [1, 2] }, /says channelMult = \[1,2\] \(2 levels\), but the file holds 3 encoder levels/],
    [{ midBlocks: 16 }, /says midBlocks = 16, but the file holds 0 encoder mid blocks/],
    [{ codebookSize: 128 }, /says codebookSize = 128, but tensor "quantize\.embedding\.weight" has 64 rows/],
    [{ inChannels: 3 }, /says inChannels = 3, but tensor "encoder.conv_in.weight" has 1 input channels/],
  ];
  for (const [over, re] of refused) throwsCtf(() => decodeTokenizer(withConfig(bytes, over), 'f'), re);
  assert.ok(process.memoryUsage().rss - rss0 < 200e6, 'no lie was allocated');
});

test('a token file is checked against its own config and data identity', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-tokens-'));
  try {
    const ds = syntheticDataset(6, { seed: 1 });
    const model = new VqTokenizer(config, new Rng(3));
    const r = encodeSplit(model, ds, { flip: false, batchSize: 6 });
    const path = join(dir, 'tokens.safetensors');
    const { tokens, labels, flipped } = r;
    const hash = tokenizerHash(model), data = dataIdentity(ds);
    const tokenSet = { tokens, labels, flipped, tokenizerHash: hash, tokenizerConfig: model.config, data };
    await saveTokens(path, tokenSet);
    const bytes = readFileSync(path);
    const refused: [Uint8Array, RegExp][] = [
      [withConfig(bytes, { codebookSize: 2 ** 31 }, 'tokenizer_config'), /"tokenizer_config" is invalid: .*2147483648/],
      [withConfig(bytes, { imageSize: 64 }, 'tokenizer_config'), /t: tokens tokens i32\[6,8,8\], expected \(N, 16/],
      [withConfig(bytes, { numClasses: 2 ** 31 }, 'data'), /t: metadata "data": numClasses is 2147483648, expected/],
      [withConfig(bytes, { numClasses: 2 }, 'data'), /t: label 2 of row 2 is outside the 2 classes \[0, 2\)/],
      [withConfig(bytes, { preprocessing: null }, 'data'), /t: metadata "data": preprocessing is null, expected an/],
      [edit(bytes, (_t, m) => { m['tokenizer_hash'] = '5'; }), /t: metadata "tokenizer_hash" is "5", expected a hash/],
      [edit(bytes, (t) => { (t.get('flipped')!.data as Int32Array)[1] = 7; }), /t: flip mark 7 of row 1 is outside/],
    ];
    for (const [b, re] of refused) throwsCtf(() => parseTokens(decodeSafetensors(b, 't')), re);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
