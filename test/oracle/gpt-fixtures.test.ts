// The whole-model fixtures (test/fixtures/gpt_*.safetensors) are consistent, and LlamaGen's GPT composed
// from plain engine ops reproduces their logits, loss and parameter gradients. This checks the fixtures and
// the ops together; src/models/gpt.ts has its own test against the same files.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backward, noGrad } from '../../src/engine/autograd.js';
import { attention } from '../../src/engine/ops/attention.js';
import { add, addScalar, div, mul, silu, sqrt } from '../../src/engine/ops/elementwise.js';
import { embedding } from '../../src/engine/ops/embedding.js';
import { linear } from '../../src/engine/ops/matmul.js';
import { mean } from '../../src/engine/ops/reduce.js';
import { rope2d, ropeTable2d, type RopeTable } from '../../src/engine/ops/rope.js';
import { concat, reshape, slice, transpose } from '../../src/engine/ops/shape.js';
import { crossEntropy } from '../../src/engine/ops/softmax.js';
import { Tensor } from '../../src/engine/tensor.js';
import type { SafetensorsFile } from '../../src/io/safetensors.js';
import { assertClose } from '../helpers.js';
import { fx, loadFixture } from './fixtures.js';

interface Config {
  vocab_size: number;
  out_vocab_size: number;
  n_layer: number;
  n_head: number;
  dim: number;
  num_classes: number;
  block_size: number;
  multiple_of: number;
  norm_eps: number;
  rope_base: number;
  causal: boolean;
  cls_token_num: number;
  ffn_hidden: number;
}

function config(f: SafetensorsFile): Config {
  return JSON.parse(f.metadata['config']!) as Config;
}

function expectedShapes(c: Config): Map<string, number[]> {
  const m = new Map<string, number[]>([
    ['cls_embedding.embedding_table.weight', [c.num_classes + 1, c.dim]],
    ['tok_embeddings.weight', [c.vocab_size, c.dim]],
  ]);
  for (let i = 0; i < c.n_layer; i++) {
    m.set(`layers.${i}.attention.wqkv.weight`, [3 * c.dim, c.dim]);
    m.set(`layers.${i}.attention.wo.weight`, [c.dim, c.dim]);
    m.set(`layers.${i}.feed_forward.w1.weight`, [c.ffn_hidden, c.dim]);
    m.set(`layers.${i}.feed_forward.w3.weight`, [c.ffn_hidden, c.dim]);
    m.set(`layers.${i}.feed_forward.w2.weight`, [c.dim, c.ffn_hidden]);
    m.set(`layers.${i}.attention_norm.weight`, [c.dim]);
    m.set(`layers.${i}.ffn_norm.weight`, [c.dim]);
  }
  m.set('norm.weight', [c.dim]);
  m.set('output.weight', [c.out_vocab_size, c.dim]);
  return m;
}

function rmsNorm(x: Tensor, w: Tensor, eps: number): Tensor {
  return mul(div(x, sqrt(addScalar(mean(mul(x, x), -1, true), eps))), w);
}

/** LlamaGen's forward from engine ops: labels (B), tokens (B, L) -> logits (B, 1 + L, out_vocab). */
function forward(p: Map<string, Tensor>, c: Config, labels: Tensor, tokens: Tensor, table: RopeTable): Tensor {
  const B = labels.dim(0), T = 1 + tokens.dim(1), H = c.n_head, hd = c.dim / c.n_head;
  const P = (n: string): Tensor => p.get(n)!;
  let h = concat([reshape(embedding(P('cls_embedding.embedding_table.weight'), labels), [B, 1, c.dim]),
    embedding(P('tok_embeddings.weight'), tokens)], 1);
  for (let i = 0; i < c.n_layer; i++) {
    const L = (n: string): Tensor => P(`layers.${i}.${n}.weight`);
    const qkv = linear(rmsNorm(h, L('attention_norm'), c.norm_eps), L('attention.wqkv'));
    const heads = (k: number, rotate: boolean): Tensor => {
      const x = reshape(slice(qkv, -1, k * c.dim, (k + 1) * c.dim), [B, T, H, hd]);
      return transpose(rotate ? rope2d(x, table) : x, 1, 2);
    };
    const a = attention(heads(0, true), heads(1, true), heads(2, false), { causal: c.causal });
    h = add(h, linear(reshape(transpose(a, 1, 2), [B, T, c.dim]), L('attention.wo')));
    const n = rmsNorm(h, L('ffn_norm'), c.norm_eps);
    h = add(
      h,
      linear(mul(silu(linear(n, L('feed_forward.w1'))), linear(n, L('feed_forward.w3'))), L('feed_forward.w2')),
    );
  }
  return linear(rmsNorm(h, P('norm.weight'), c.norm_eps), P('output.weight'));
}

for (const name of ['gpt_causal', 'gpt_bidir']) {
  const file = loadFixture(`${name}.safetensors`);
  const c = config(file);

  test(`${name}: LlamaGen state_dict names and shapes, input and output shapes`, () => {
    const shapes = expectedShapes(c);
    assert.deepEqual(JSON.parse(file.metadata['params']!), [...shapes.keys()]);
    for (const [n, s] of shapes) {
      fx(file, n);
      assert.deepEqual(file.tensors.get(n)!.shape, s, n);
      assert.deepEqual(file.tensors.get(`grad.${n}`)!.shape, s, `grad.${n}`);
    }
    const T = c.block_size, L = c.causal ? T - 1 : T;
    assert.deepEqual(fx(file, 'input.tokens').shape, [3, L]);
    assert.deepEqual(fx(file, 'input.targets').shape, [3, T]);
    assert.deepEqual(fx(file, 'logits').shape, [3, 1 + L, c.out_vocab_size]);
    assert.ok(fx(file, 'input.labels').toArray().includes(c.num_classes), 'the batch includes the null class');
    assert.ok(fx(file, 'output.weight').toArray().some((v) => v !== 0), 'output head is non-zero');
  });

  test(`${name}: engine ops reproduce logits, loss and every parameter gradient`, () => {
    const params = new Map<string, Tensor>();
    for (const n of expectedShapes(c).keys()) {
      const t = fx(file, n);
      params.set(n, new Tensor(t.f32.slice(), t.shape, { requiresGrad: true, name: n }));
    }
    const table = ropeTable2d(Math.round(Math.sqrt(c.block_size)), c.dim / c.n_head, {
      base: c.rope_base,
      prefix: c.cls_token_num,
    });
    const logits = forward(params, c, fx(file, 'input.labels'), fx(file, 'input.tokens'), table);
    assertClose(logits.f32, fx(file, 'logits').f32, { atol: 1e-5, rtol: 1e-4, what: 'logits' });
    const first = Number(file.metadata['loss_first_position']);
    const pred = slice(logits, 1, first, first + c.block_size);
    const loss = crossEntropy(pred, fx(file, 'input.targets'));
    assertClose(loss.f32, fx(file, 'loss').f32, { atol: 1e-5, rtol: 1e-5, what: 'loss' });
    backward(loss);
    for (const [n, p] of params)
      assertClose(p.grad ?? new Float32Array(p.size), fx(file, `grad.${n}`).f32, {
        atol: 1e-6,
        rtol: 1e-4,
        what: `grad.${n}`,
      });
  });
}

test('gpt_causal: greedy CFG generation record is self-consistent (tokens = argmax of guided logits)', () => {
  const file = loadFixture('gpt_causal.safetensors');
  const gen = JSON.parse(file.metadata['generate']!) as { cfg_scale: number; min_top2_margin: number };
  assert.equal(gen.cfg_scale, 2);
  const toks = fx(file, 'generate.tokens'), logits = fx(file, 'generate.logits');
  const [B, T, V] = logits.shape as [number, number, number];
  assert.deepEqual(toks.shape, [B, T]);
  noGrad(() => {
    for (let i = 0; i < B * T; i++) {
      const row = logits.f32.subarray(i * V, (i + 1) * V);
      assert.equal(toks.i32[i], row.indexOf(Math.max(...row)), `step ${i % T} of sample ${Math.floor(i / T)}`);
    }
  });
  assert.ok(gen.min_top2_margin > 1e-3);
});
