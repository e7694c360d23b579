// Through --resume: a train state's config is checked against its model.* tensors, and its
// extra, rng and tensors by type, before a resuming run builds anything from them.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { AdamW } from '../../src/engine/optim.js';
import { Rng } from '../../src/engine/rng.js';
import { decodeSafetensors, encodeSafetensors, type StTensorInput } from '../../src/io/safetensors.js';
import { Gpt, gptConfig } from '../../src/models/gpt.js';
import { tokenizerConfig } from '../../src/tokenizer/config.js';
import { VqTokenizer } from '../../src/tokenizer/model.js';
import { DEFAULT_TOKENIZER_TRAIN } from '../../src/tokenizer/train.js';
import { loadTrainState, saveTrainState } from '../../src/train/checkpoint.js';
import { DEFAULT_GPT_TRAIN } from '../../src/train/gpt-train.js';
import { rejectsCtf } from '../helpers.js';

type Edit = (t: Map<string, StTensorInput>, m: Record<string, string>) => void;

function edited(path: string, out: string, f: Edit): string {
  const file = decodeSafetensors(readFileSync(path), path);
  const tensors = new Map<string, StTensorInput>();
  for (const [n, t] of file.tensors) tensors.set(n, { dtype: t.dtype, shape: t.shape, data: t.data.slice() });
  const meta = { ...file.metadata };
  f(tensors, meta);
  writeFileSync(out, encodeSafetensors(tensors, meta));
  return out;
}

const json = (key: string, g: (v: Record<string, unknown>) => unknown): Edit => (_t, m) => {
  m[key] = JSON.stringify(g(JSON.parse(m[key]!) as Record<string, unknown>));
};
const config = (over: Record<string, unknown>): Edit => json('config', (c) => ({ ...c, ...over }));

async function refusals(path: string, task: string, cases: [Edit, RegExp][]): Promise<void> {
  const rss0 = process.memoryUsage().rss;
  for (const [i, [f, re]] of cases.entries())
    await rejectsCtf(loadTrainState(edited(path, `${path}.case${i}`, f), task), re);
  assert.ok(process.memoryUsage().rss - rss0 < 200e6, 'no lie was allocated');
}

test('a GPT train state with a lying config, extra, rng or a NaN is refused before a resume builds it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-state-'));
  try {
    const model = new Gpt(gptConfig('tiny', { inVocab: 16, outVocab: 16, numClasses: 3, grid: 4, causal: true }));
    const path = join(dir, 'baseline.train-state.safetensors');
    await saveTrainState(path, {
      task: 'gpt:baseline', step: 3, config: model.config, options: DEFAULT_GPT_TRAIN, rng: {},
      data: { epoch: 0, index: 3 },
      extra: { tokenizer_hash: 'ab'.repeat(32) }, model: model.stateDict(),
      optimizer: new AdamW(model.parameters(), { lr: 1e-3 }).stateDict(),
    });
    assert.equal((await loadTrainState(path, 'gpt:baseline')).step, 3);
    await refusals(path, 'gpt:baseline', [
      [config({ layers: 1e7 }), /train state .*case0: stored config is invalid: gpt config: layers = 10000000/],
      [config({ dim: 2 ** 20 }), /dim = 1048576, expected an integer in \[1, 16384\]/],
      [config({ inVocab: 2 ** 31 }), /inVocab = 2147483648/],
      [config({ grid: 1e5 }), /grid = 100000/],
      [config({ ropeBase: 'x' }), /ropeBase = "x", expected a finite number > 1/],
      [config({ layers: 3 }), /case5: the stored config says layers = 3, but the file holds tensors of 2 layers/],
      [config({ inVocab: 4096 }), /says inVocab = 4096, but tensor "tok_embeddings.weight" has 16 rows/],
      [json('extra', (e) => ({ ...e, tokenizer_hash: 5 })), /case7: extra\.tokenizer_hash is 5, expected a string/],
      [(_t, m) => { m['extra'] = '"x"'; }, /metadata "extra" is "x", expected an object/],
      [json('rng', () => ({ dropout: { key0: 'a' } })), /rng\.dropout is \{"key0":"a"\}, expected \{key0,key1/],
      [json('rng', () => null), /metadata "rng" is null, expected RNG states by name/],
      [(t) => { (t.get('optim.exp_avg.output.weight')!.data as Float32Array)[2] = NaN; },
        /tensor "optim\.exp_avg\.output\.weight" holds NaN at element 2/],
      [(t) => { t.set('optim.exp_avg.norm.weight', { dtype: 'I32', shape: [64], data: new Int32Array(64) }); },
        /tensor "optim\.exp_avg\.norm\.weight" is I32, expected a float tensor/],
      [(t) => { new Uint32Array((t.get('model.norm.weight')!.data as Float32Array).buffer)[0]! ^= 1; },
        /case13: its tensors hash to [0-9a-f]{16}…, the metadata says [0-9a-f]{16}… — the file is corrupted/],
      [(_t, m) => { m['step'] = ''; }, /step "", optimizer_step "0", expected integers/],
      [(_t, m) => { m['options'] = 'null'; }, /metadata "options" is null, expected an object/],
      [json('options', () => ({})), /case16: options: epochs = missing, expected a positive integer/],
      [json('options', (o) => ({ ...o, seed: -1 })), /options: seed = -1, expected an integer ≥ 0/],
      [json('options', (o) => ({ ...o, lr: 1e999 })), /options: lr = null, expected a finite number > 0/],
    ]);
    // States written before the hash existed still load.
    const old = edited(path, `${path}.old`, (_t, m) => { delete m['hash']; });
    assert.equal((await loadTrainState(old, 'gpt:baseline')).step, 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a tokenizer train state with a lying config or data identity is refused before a resume builds it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-state-'));
  try {
    const model = new VqTokenizer(tokenizerConfig('tiny', { inChannels: 1, imageSize: 32 }, { codebookSize: 64 }));
    const path = join(dir, 'tokenizer.train-state.safetensors');
    const preprocessing = { pad: 0, padValue: 0, resize: null };
    const data = {
      name: 'x', split: 'train', count: 4, channels: 1, height: 32, width: 32, numClasses: 2, sha256: '', preprocessing,
    };
    await saveTrainState(path, {
      task: 'tokenizer', step: 0, config: model.config, options: DEFAULT_TOKENIZER_TRAIN,
      rng: { deadCode: new Rng(2).getState() },
      data: { epoch: 0, index: 0 }, extra: { data }, model: model.stateDict(),
      optimizer: new AdamW(model.parameters(), { lr: 1e-3 }).stateDict(),
    });
    assert.equal((await loadTrainState(path, 'tokenizer')).step, 0);
    await refusals(path, 'tokenizer', [
      [config({ codebookSize: 2 ** 30 }), /case0: stored config is invalid: .*codebookSize = 1073741824/],
      [config({ channels: 2 ** 16 }), /channels = 65536, expected an integer in \[1, 1024\]/],
      [config({ codebookSize: 4096 }), /says codebookSize = 4096, but tensor "quantize\.embedding\.weight" has 64/],
      [json('extra', () => ({ data: { ...data, sha256: 7 } })), /case3: extra\.data: sha256 is 7, expected a string/],
      [json('extra', () => ({ data: { ...data, preprocessing: { ...preprocessing, pad: -1 } } })),
        /extra\.data: preprocessing\.pad is -1, expected an integer ≥ 0/],
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
