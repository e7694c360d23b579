// `ctfgen serve`'s API on a tiny run: answers equal `ctfgen sample`'s pieces (ids and names, streamed or not, one
// method or both), every bad input is a 4xx JSON error naming what was wrong (never a 500), static paths are a
// fixed table (traversal is a 404), the queue answers 429 with Retry-After, a client that leaves cancels its job,
// and the server stays responsive while it samples.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runServeLoad } from '../../bench/serve-load.js';
import { isLoopback } from '../../src/cli/serve.js';
import { Rng } from '../../src/engine/rng.js';
import {
  GENERATE_DEFAULTS, SseParser, type ErrorResponse, type GenerateResponse, type HealthResponse, type InfoResponse,
  type MembersResponse,
  type StreamEvent, type WhyResponse,
} from '../../src/serve/protocol.js';
import type { DemoServer } from '../../src/serve/server.js';
import { CLI, makeTinyRun, postJson, raw, startServer } from './helpers.js';

let dir = '', run = '', server: DemoServer, port = 0;
before(async () => {
  [dir, run] = makeTinyRun('ctfgen-serve-api-');
  ({ server, port } = await startServer({ run, queue: 2, maxImages: 16 }));
});
after(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Streamed { status: number; events: StreamEvent[]; json?: unknown }

/** A streamed generate; `stopAfter` closes the connection once that many preview frames have arrived. */
function stream(body: unknown, stopAfter = Infinity): Promise<Streamed> {
  return streamFrom(port, body, stopAfter);
}

function streamFrom(port: number, body: unknown, stopAfter = Infinity): Promise<Streamed> {
  return new Promise((resolve, reject) => {
    const events: StreamEvent[] = [], parser = new SseParser();
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/api/generate',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        if (res.statusCode !== 200) return;
        events.push(...parser.push(chunk));
        if (events.filter((e) => e.type === 'preview').length >= stopAfter) {
          req.destroy();
          resolve({ status: 200, events });
        }
      });
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, events, json: res.statusCode === 200 ? undefined : JSON.parse(text) });
      });
    });
    req.on('error', (e) => { if (events.length === 0) reject(e); });
    req.end(JSON.stringify(body));
  });
}

const health = async (): Promise<HealthResponse> => (await raw(port, 'GET', '/api/health')).json as HealthResponse;
async function until(what: string, ok: () => Promise<boolean>, ms = 20000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 25)))
    if (await ok()) return;
  assert.fail(`timed out waiting until ${what}`);
}

describe('answers', () => {
  test('info and health describe the run and the limits', async () => {
    const info = (await raw(port, 'GET', '/api/info')).json as InfoResponse;
    assert.deepEqual(info.run.classNames.slice(0, 2), ['T-shirt/top', 'Trouser']);
    assert.deepEqual(info.run.methods, ['ctf', 'baseline']);
    assert.equal(info.run.grid, 8);
    assert.deepEqual(info.limits.maxImages, 16);
    assert.equal(info.schemas.generate.properties?.['rounds']?.maximum, 1, 'a plain aux refines in one pass');
    const h = await health();
    assert.equal(h.status, 'ok');
    assert.ok(h.rssMb > 10);
  });

  test('a class by name and by id give the same images; streaming does not change them', async () => {
    const byName = await postJson(port, '/api/generate', { class: 'Trouser', n: 2, seed: 5 });
    const byId = await postJson(port, '/api/generate', { class: 1, n: 2, seed: 5, cfg: GENERATE_DEFAULTS.cfg });
    assert.equal(byName.status, 200, byName.text);
    const a = byName.json as GenerateResponse, b = byId.json as GenerateResponse;
    assert.deepEqual(a.request, { ...GENERATE_DEFAULTS, class: 1, n: 2, seed: 5 });
    assert.equal(a.results.length, 1);
    assert.deepEqual(a.results[0]!.pixels, b.results[0]!.pixels);
    assert.equal(a.results[0]!.pixels.length, 2);
    assert.equal(Buffer.from(a.results[0]!.pixels[0]!, 'base64').length, 32 * 32);
    const cfg = String(GENERATE_DEFAULTS.cfg).replace('.', '\\.');
    const expected = `^ctfgen sample --run \\S+ --method ctf --class 1 --n 2 --seed 5 --cfg ${cfg} `;
    assert.match(a.results[0]!.command, new RegExp(expected));
    const s = await stream({ class: 'Trouser', n: 2, seed: 5 });
    const result = s.events.find((e) => e.type === 'result');
    assert.ok(result && result.type === 'result');
    assert.deepEqual(result.result.pixels, a.results[0]!.pixels);
    assert.deepEqual(result.result.tokens, a.results[0]!.tokens);
  });

  test('the stream: queued, start, previews as stage-1 tokens arrive, the result, done', async () => {
    const s = await stream({ class: 0, n: 3, seed: 1, method: 'both' });
    assert.equal(s.status, 200);
    const types = s.events.map((e) => e.type);
    assert.equal(types[0], 'queued');
    assert.equal(types.at(-1), 'done');
    for (const method of ['ctf', 'baseline']) {
      const previews = s.events.filter((e) => e.type === 'preview' && e.method === method);
      const steps = previews.map((e) => (e.type === 'preview' ? e.step : -1));
      assert.ok(previews.length >= 3, `${method}: ${previews.length} frames`);
      const rising = steps.every((t, i) => t >= 1 && t <= 63 && (i === 0 || t > steps[i - 1]!));
      assert.ok(rising, `${method}: tokens known, rising: ${steps}`);
      assert.equal(steps[0], 1, 'the first frame comes after the first token');
      const first = previews[0]!;
      assert.ok(first.type === 'preview' && first.pixels.length === 3 && first.steps === 64);
      // After one token, all but the first 4×4 cell is the unknown grey.
      const px = Buffer.from(first.pixels[0]!, 'base64');
      assert.equal(px[31 * 32 + 31], 128);
      const r = s.events.find((e) => e.type === 'result' && e.result.method === method);
      assert.ok(r && r.type === 'result' && r.result.frames === previews.length);
    }
    const alone = (await postJson(port, '/api/generate', { class: 0, n: 3, seed: 1, method: 'baseline' }))
      .json as GenerateResponse;
    const both = s.events.find((e) => e.type === 'result' && e.result.method === 'baseline');
    assert.ok(both && both.type === 'result');
    assert.deepEqual(both.result.pixels, alone.results[0]!.pixels, 'side by side = the same seed and options alone');
  });

  test('why it works: a test image and a generated one; a token\'s cluster members decoded in place', async () => {
    const t = await postJson(port, '/api/why', { source: 'test', class: 'Sneaker', index: 1 });
    assert.equal(t.status, 200, t.text);
    const w = t.json as WhyResponse;
    assert.deepEqual(w.rows.map((r) => r.name), ['original', 'reconstruction', 'k-means swap', 'random swap']);
    assert.equal(w.tokens.length, 64);
    const gen = (await postJson(port, '/api/generate', { class: 7, seed: 2 })).json as GenerateResponse;
    const g = (await postJson(port, '/api/why', { source: 'tokens', tokens: gen.results[0]!.tokens[0] }))
      .json as WhyResponse;
    assert.deepEqual(g.rows.map((r) => r.name), ['reconstruction', 'k-means swap', 'random swap']);
    assert.equal(g.rows[0]!.pixels, gen.results[0]!.pixels[0], 'a generated image\'s reconstruction is itself');
    const m = (await postJson(port, '/api/members', { tokens: g.tokens, position: 10 })).json as MembersResponse;
    assert.equal(m.token, g.tokens[10]);
    assert.equal(m.kmeans.cluster, g.clusters[10]);
    assert.equal(m.kmeans.members[0]!.id, m.token);
    assert.equal(m.kmeans.members[0]!.pixels, g.rows[0]!.pixels, 'its own codeword decodes to the image itself');
    assert.ok(m.kmeans.members.length >= 1 && m.random.members.length >= 1);
  });

  test('static files: the page, its style and scripts; nothing else', async () => {
    const page = await raw(port, 'GET', '/');
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-type']), /text\/html/);
    assert.match(String(page.headers['content-security-policy']), /default-src 'self'/);
    assert.match(page.text, /src="\/js\/web\/main\.js"/);
    assert.equal((await raw(port, 'GET', '/style.css')).status, 200);
    const js = await raw(port, 'GET', '/js/web/main.js');
    assert.equal(js.status, 200);
    assert.match(String(js.headers['content-type']), /javascript/);
    assert.equal((await raw(port, 'GET', '/js/src/serve/protocol.js')).status, 200);
  });
});

describe('bad input is a 4xx JSON error, never a 500', () => {
  const bad: [string, string | object, number, RegExp][] = [
    ['missing class', {}, 400, /missing field "class"/],
    ['class of the wrong type', { class: true }, 400,
      /class: matches none of the allowed forms — expected an id in 0…9 or one of the names/],
    ['unknown class name', { class: 'Unicorn' }, 400, /class: matches none/],
    ['class id out of range', { class: 10 }, 400, /class: matches none/],
    ['negative class id', { class: -1 }, 400, /class: matches none/],
    ['cfg as a string', { class: 0, cfg: '2' }, 400, /cfg: must be number — expected guidance scale in \[0, 20\]/],
    ['cfg out of range', { class: 0, cfg: 25 }, 400, /cfg: must be <= 20/],
    ['a non-finite cfg (1e999 parses to Infinity)', '{"class": 0, "cfg": 1e999}', 400, /cfg: must be number/],
    ['negative τ1', { class: 0, t1: -0.5 }, 400, /t1: must be >= 0/],
    ['τ2 too large', { class: 0, t2: 11 }, 400, /t2: must be <= 10/],
    ['fractional top-k', { class: 0, topK: 1.5 }, 400, /topK: must be integer/],
    ['top-p of 0', { class: 0, topP: 0 }, 400, /topP: must be > 0/],
    ['top-p above 1', { class: 0, topP: 1.01 }, 400, /topP: must be <= 1/],
    ['negative seed', { class: 0, seed: -1 }, 400, /seed: must be >= 0/],
    ['seed beyond 2^31 - 1', { class: 0, seed: 2 ** 31 }, 400, /seed: must be <= 2147483647/],
    ['no images', { class: 0, n: 0 }, 400, /n: must be >= 1/],
    ['more images than the cap', { class: 0, n: 17 }, 400, /n: must be <= 16 — expected images per request, 1…16/],
    ['rounds with a plain aux', { class: 0, rounds: 2 }, 400,
      /rounds: must be <= 1 — expected 1 \(this run's aux refines in one pass/],
    ['an unknown method', { class: 0, method: 'gan' }, 400, /method: must be equal to one of the allowed values/],
    ['an unknown field', { class: 0, temperature: 1 }, 400, /unknown field "temperature"; the fields are class, /],
    ['a prototype-poisoning key', '{"class": 0, "__proto__": {"n": 16}}', 400, /not valid JSON/],
    ['an array body', [], 400, /the body must be a JSON object/],
    ['a number body', '3', 400, /the body must be a JSON object/],
    ['null', 'null', 400, /the body must be a JSON object/],
    ['broken JSON', '{"class": ', 400, /JSON/],
    ['an empty body', '', 400, /empty/i],
    ['an oversized body', `{"class": 0, "pad": "${'x'.repeat(20000)}"}`, 413, /too large/i],
  ];
  for (const [name, body, status, message] of bad)
    test(`generate: ${name} → ${status}`, async () => {
      const r = await postJson(port, '/api/generate', body);
      assert.equal(r.status, status, r.text);
      const e = r.json as ErrorResponse;
      assert.equal(e.status, status);
      assert.match(e.error, message);
      assert.match(String(r.headers['content-type']), /application\/json/);
    });

  test('generate: another content type → 415', async () => {
    const r = await raw(port, 'POST', '/api/generate', {
      body: '{"class": 0}', headers: { 'content-type': 'text/plain'  },
    });
    assert.equal(r.status, 415);
    assert.match((r.json as ErrorResponse).error, /Unsupported Media Type/i);
  });

  const whyBad: [string, string, object, RegExp][] = [
    ['why', 'an unknown source', { source: 'file', path: '/etc/passwd' }, /unknown field "path"|source: must be equal/],
    ['why', 'an unknown source alone', { source: 'file' },
      /source: must be equal to one of the allowed values — expected "test"/],
    ['why', 'a test image without its class', { source: 'test' }, /missing field "class" — body: \{"source": "test"/],
    ['why', 'tokens of the wrong length', { source: 'tokens', tokens: [1, 2, 3] },
      /tokens: must NOT have fewer than 64 items —\s*expected 64 codebook ids \(a 8×8 grid, row-major\), each in 0…63/],
    ['why', 'a token outside the codebook', { source: 'tokens', tokens: Array(64).fill(64) },
      /tokens\.0: must be <= 63/],
    ['why', 'a test index past the class', { source: 'test', class: 0, index: 99999 },
      /index 99999: class 0 \(T-shirt\/top\) has \d+ test images/],
    ['members', 'a position outside the grid', { tokens: Array(64).fill(0), position: 64 }, /position: must be <= 63/],
    ['members', 'missing tokens', { position: 3 }, /missing field "tokens"/],
  ];
  for (const [route, name, body, message] of whyBad)
    test(`${route}: ${name} → 400`, async () => {
      const r = await postJson(port, `/api/${route}`, body);
      assert.equal(r.status, 400, r.text);
      assert.match((r.json as ErrorResponse).error, message);
    });

  const paths = [
    '/../package.json', '/js/../../package.json', '/js/%2e%2e/%2e%2e/package.json', '/%2e%2e%2fpackage.json',
    '/js/web/..%2f..%2f..%2fpackage.json', '/..%5c..%5cpackage.json', '/js/web/main.js%00.html', '//etc/passwd',
    '/api/generate/../info', '/index.html', '/web/main.ts', '/dist/src/cli/main.js', '/.git/config',
  ];
  for (const p of paths)
    test(`static: ${p} → 404`, async () => {
      const r = await raw(port, 'GET', p);
      assert.equal(r.status, 404, r.text);
      assert.match((r.json as ErrorResponse).error, /no GET .* here/);
    });

  test('static: a malformed percent-encoding → 400', async () => {
    const r = await raw(port, 'GET', '/js/%E0%A4%A');
    assert.equal(r.status, 400, r.text);
    assert.equal((r.json as ErrorResponse).status, 400);
  });

  test('wrong methods → 404; a foreign Host header → 400', async () => {
    assert.equal((await raw(port, 'GET', '/api/generate')).status, 404);
    assert.equal((await raw(port, 'DELETE', '/')).status, 404);
    const r = await raw(port, 'GET', '/api/info', { headers: { host: 'attacker.example:7860' } });
    assert.equal(r.status, 400);
    assert.match((r.json as ErrorResponse).error, /Host "attacker\.example" is not this server's/);
  });

  test('random bodies never make a 500 or a crash', async () => {
    const rng = new Rng(14);
    const fields = ['class', 'method', 'cfg', 't1', 't2', 'topK', 'topP', 'seed', 'n', 'rounds', 'x'];
    const values = [(): unknown => rng.int(40) - 10, () => rng.uniform() * 4 - 1, () => 'Bag', () => 'both', () => '',
      () => null, () => true, () => [1], () => ({ a: 1 }), () => 1e308, () => -0, () => 2 ** 53 + 1];
    for (let i = 0; i < 120; i++) {
      const body: Record<string, unknown> = {};
      for (let j = rng.int(4); j >= 0; j--) body[fields[rng.int(fields.length)]!] = values[rng.int(values.length)]!();
      if ('n' in body && typeof body['n'] === 'number' && body['n'] > 2) body['n'] = 2;  // keep the valid ones quick
      const r = await postJson(port, '/api/generate', body);
      assert.ok([200, 400, 429].includes(r.status), `${JSON.stringify(body)} → ${r.status} ${r.text.slice(0, 200)}`);
    }
    assert.equal((await health()).served.failed, 0);
  });
});

describe('queue, cancellation, responsiveness', () => {
  test('a full queue answers 429 with Retry-After; the server answers health checks while it samples', async () => {
    // Three long streamed jobs: one runs, two wait (queue 2); the next request is refused.
    const long = { class: 0, n: 16, method: 'both' };
    const jobs = [stream(long), stream(long), stream(long)];
    await until('one runs and two wait', async () => {
      const q = (await health()).queue;
      return q.running === 1 && q.waiting === 2;
    });
    const refused = await postJson(port, '/api/generate', { class: 0 });
    assert.equal(refused.status, 429, refused.text);
    assert.match(String(refused.headers['retry-after']), /^\d+$/);
    assert.ok(Number(refused.headers['retry-after']) >= 1);
    assert.match((refused.json as ErrorResponse).error, /busy: 2 requests are waiting/);
    const h = await health();
    assert.equal(h.queue.running, 1, 'health answered while a job ran');
    for (const j of await Promise.all(jobs)) assert.equal(j.events.at(-1)?.type, 'done');
    assert.ok((await health()).served.rejected >= 1);
  });

  test('a client that goes away cancels its job; the next request is served', async () => {
    const before = (await health()).served.cancelled;
    const gone = await stream({ class: 2, n: 16, method: 'both' }, 3);
    assert.equal(gone.events.filter((e) => e.type === 'preview').length >= 3, true);
    await until('the job is cancelled', async () => {
      const h = await health();
      return h.served.cancelled > before && h.queue.running === 0;
    });
    const next = await postJson(port, '/api/generate', { class: 2 });
    assert.equal(next.status, 200);
  });

  test('a waiting job whose client leaves is dropped from the queue', async () => {
    const before = (await health()).served.cancelled;
    const first = stream({ class: 0, n: 16, method: 'both' });
    await until('the first runs', async () => (await health()).queue.running === 1);
    await new Promise<void>((resolve) => {
      const req = httpRequest({
        host: '127.0.0.1', port, method: 'POST', path: '/api/generate', headers: { 'content-type': 'application/json' },
      });
      req.on('error', () => resolve());
      req.end(JSON.stringify({ class: 1, n: 16 }));
      setTimeout(() => { req.destroy(); resolve(); }, 50);
    });
    await until('the waiting job is dropped', async () => (await health()).served.cancelled > before);
    assert.equal((await first).events.at(-1)?.type, 'done');
  });
});

describe('stage-2 rounds with a masked-refinement aux', () => {
  test('round previews stream, and the images are `ctfgen sample --refine-rounds 3`\'s', async () => {
    // The tiny run with its aux retrained to read chosen fine tokens (seconds), served from a run of its own.
    const masked = join(dir, 'masked');
    mkdirSync(masked);
    for (const f of ['tokenizer', 'clusters', 'stage1', 'baseline'])
      copyFileSync(join(run, `${f}.safetensors`), join(masked, `${f}.safetensors`));
    const trained = spawnSync(process.execPath, [CLI, 'train', 'aux', '--refine', 'masked',
      '--tokens', join(run, 'tokens-train.safetensors'), '--clusters', join(run, 'clusters.safetensors'),
      '--out', join(masked, 'aux.safetensors'), '--preset', 'tiny', '--epochs', '1', '--batch', '32',
      '--warmup', '2', '--val-limit', '0'], { encoding: 'utf8' });
    assert.equal(trained.status, 0, trained.stderr);
    const other = await startServer({ run: masked });
    try {
      assert.equal(other.server.info.maskedAux, true);
      const s = await streamFrom(other.port, { class: 2, n: 2, seed: 4, rounds: 3 });
      const rounds = s.events.filter((e) => e.type === 'preview' && e.phase === 'stage2');
      assert.deepEqual(rounds.map((e) => (e.type === 'preview' ? [e.step, e.steps] : [])), [[1, 3], [2, 3]],
        'rounds 1 and 2 as previews; round 3 is the final image');
      const px = Buffer.from((rounds[0] as { pixels: string[] }).pixels[0]!, 'base64');
      assert.ok(px.some((v) => v !== 128), 'masked cells show their cluster\'s representative, not grey');
      const result = s.events.find((e) => e.type === 'result');
      assert.ok(result && result.type === 'result');
      assert.match(result.result.command, / --refine-rounds 3 /);
      const cwd = join(dir, 'masked-cli');
      mkdirSync(cwd);
      const r = spawnSync('bash', ['-c', `ctfgen() { "${process.execPath}" "${CLI}" "$@"; }; ${result.result.command}`],
        { cwd, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(readFileSync(join(cwd, 'ctf-tokens.json'), 'utf8'), result.result.tokensJson);
      const one = (await postJson(other.port, '/api/generate', { class: 2, n: 2, seed: 4, rounds: 1 }))
        .json as GenerateResponse;
      assert.notDeepEqual(one.results[0]!.tokens, result.result.tokens, 'three rounds are not the single pass');
      const tooMany = await postJson(other.port, '/api/generate', { class: 2, rounds: 9 });
      assert.equal(tooMany.status, 400);
      assert.match((tooMany.json as ErrorResponse).error, /rounds: must be <= 8 — expected stage-2 rounds, 1…8/);
    } finally {
      await other.server.close();
    }
  });
});

describe('the command', () => {
  test('the load test in miniature (npm run bench:serve): 8 clients for 2 s; the server survives', async () => {
    const r = await runServeLoad({ run, connections: 8, duration: 2, queue: 2 });
    assert.deepEqual(r.problems, []);
    assert.ok(r.ok && r.requests.ok > 0 && r.afterLoad.generateStatus === 200);
    assert.ok(r.requests.tooMany > 0, '8 clients against 1 running + 2 waiting: some get 429');
  });

  test('ctfgen serve listens on loopback, answers, and exits 143 on SIGTERM', async () => {
    const args = [CLI, 'serve', '--run', run, '--port', '0', '--quiet'];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', () => {
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)\//.exec(err);
        if (m) resolve(m[1]!);
      });
      child.on('exit', () => reject(new Error(`serve exited early: ${err}`)));
    });
    const h = (await (await fetch(`${url}/api/health`)).json()) as HealthResponse;
    assert.equal(h.status, 'ok');
    const code = await new Promise<number | null>((resolve) => {
      child.on('exit', (c) => resolve(c));
      child.kill('SIGTERM');
    });
    assert.equal(code, 143, err);
  });

  test('bad usage exits 2; a directory without checkpoints exits 1 naming what is missing', async () => {
    const run1 = (args: string[]): Promise<{ code: number | null; err: string }> => new Promise((resolve) => {
      const c = spawn(process.execPath, [CLI, 'serve', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      c.stderr.on('data', (d: Buffer) => { err += d.toString(); });
      c.on('exit', (code) => resolve({ code, err }));
    });
    assert.equal((await run1([])).code, 2);
    const empty = await run1(['--run', dir, '--port', '0']);
    assert.equal(empty.code, 1);
    assert.match(empty.err,
      /holds no complete set of checkpoints \(ctf: tokenizer\.safetensors, clusters\.safetensors/);
  });

  test('loopback hosts are told apart from the rest', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1']) assert.ok(isLoopback(h), h);
    for (const h of ['0.0.0.0', '192.168.1.2', '::', 'example.com']) assert.ok(!isLoopback(h), h);
  });
});
