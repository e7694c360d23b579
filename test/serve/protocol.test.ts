// The pure parts of the demo: server-sent events survive any split into chunks, schema errors read as sentences,
// and the members shown for a token start with its own codeword and spread over its cluster.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  GENERATE_DEFAULTS, SseParser, formatSse, generateSchema, type RunInfo, type StreamEvent,
} from '../../src/serve/protocol.js';
import { validationMessage, type SchemaError } from '../../src/serve/server.js';
import { pickMembers } from '../../src/serve/why.js';

const RUN: RunInfo = {
  run: 'runs/x', classNames: ['a', 'b'], methods: ['ctf', 'baseline'], grid: 2, imageSize: 8, channels: 1, v: 16, k: 4,
  maskedAux: false, testImages: null,
};

test('SSE: formatSse then SseParser gives the events back, however the text is cut', () => {
  const events: StreamEvent[] = [
    { type: 'queued', ahead: 2 },
    { type: 'start', method: 'ctf' },
    { type: 'preview', method: 'ctf', phase: 'stage1', first: 0, step: 1, steps: 4, pixels: ['AAEC', 'AwQF'] },
    { type: 'error', status: 400, error: 'line one\nline two: "quoted"' },
    { type: 'done', request: { ...GENERATE_DEFAULTS, class: 1 } },
  ];
  const text = events.map(formatSse).join(': a comment line\n\n');
  for (const size of [1, 2, 7, 64, text.length]) {
    const p = new SseParser(), got: StreamEvent[] = [];
    for (let i = 0; i < text.length; i += size) got.push(...p.push(text.slice(i, i + size)));
    assert.deepEqual(got, events, `chunks of ${size}`);
  }
});

test('validation errors name the field, the problem and what is allowed', () => {
  const schema = generateSchema(RUN, { maxImages: 4, maxRounds: 8, maxMembers: 8, queue: 1, bodyBytes: 1024 });
  const err = (instancePath: string, keyword: string, message: string, params = {}): SchemaError =>
    ({ instancePath, keyword, message, params });
  assert.equal(validationMessage([err('/n', 'maximum', 'must be <= 4')], schema),
    'n: must be <= 4 — expected images per request, 1…4');
  assert.equal(validationMessage([err('', 'additionalProperties', '', { additionalProperty: 'z' })], schema),
    'unknown field "z"; the fields are class, method, cfg, t1, t2, topK, topP, seed, n, rounds');
  const both = [err('/class', 'type', 'must be integer'), err('/class', 'oneOf', 'must match one')];
  assert.match(validationMessage(both, schema),
    /^class: matches none of the allowed forms — expected an id in 0…1 or one of the names \["a","b"\]$/);
  assert.equal(schema.properties?.['rounds']?.maximum, 1, 'a plain aux allows one round only');
});

test('members shown: the own codeword first, then others spread over the cluster, at most max', () => {
  const members = Int32Array.from({ length: 40 }, (_, i) => 3 * i);
  const picked = pickMembers(members, 30, 8);
  assert.equal(picked.length, 8);
  assert.equal(picked[0], 30);
  assert.equal(new Set(picked).size, 8);
  assert.ok(picked.slice(1).every((m, i, a) => i === 0 || m > a[i - 1]!), 'ascending after the own codeword');
  assert.ok(picked.at(-1)! > 90, 'spread to the end of the list');
  assert.deepEqual(pickMembers(Int32Array.from([5]), 5, 8), [5]);
  assert.deepEqual(pickMembers(Int32Array.from([1, 5, 9]), 5, 8), [5, 1, 9]);
});
