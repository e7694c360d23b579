// `npm run bench:serve`: a bounded load test of `ctfgen serve` on 127.0.0.1. The server runs as its own process
// (`ctfgen serve --port 0`); autocannon keeps `connections` clients asking POST /api/generate for one image each
// (class and seed vary per request) for `duration` seconds and stops by itself; meanwhile a probe times GET
// /api/health every 100 ms. Clients retry a 429 at once (the worst case; Retry-After is not honoured).
// Afterwards the queue must drain, a normal request must succeed, no job may have failed and the server must
// still be running; then SIGTERM stops it. Writes the figures as JSON (--json FILE) and prints a summary.
//   node dist/bench/serve-load.js [--run DIR] [--connections 32] [--duration 20] [--queue Q] [--json FILE]
import autocannon from 'autocannon';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, getPriority, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { HealthResponse, InfoResponse } from '../src/serve/protocol.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

export interface ServeLoadOptions {
  run?: string;          // default runs/demo if it exists, else a tiny run made here
  connections: number;
  duration: number;      // seconds
  queue?: number;        // the server's --queue (default: its own default)
}

export interface Percentiles { p50: number; p90: number; p99: number; max: number; count: number }

export interface ServeLoadReport {
  kind: 'ctfgen.serve-load';
  date: string;
  command: string;
  machine: {
    cpus: number; cpu: string; node: string; nice: number; loadAverage1m: { before: number; after: number };
  };
  run: {
    dir: string; methods: string[]; classes: number; v: number; k: number | null; grid: number; imageSize: number;
  };
  load: { target: string; connections: number; seconds: number; queueLimit: number };
  requests: {
    total: number; perSecond: number; ok: number; tooMany: number; other: Record<string, number>; errors: number;
    timeouts: number;
  };
  images: { total: number; perSecond: number };
  latencyMs: { all: { p50: number; p99: number; max: number }; ok: Percentiles; tooMany: Percentiles };
  health: Percentiles & { failures: number };
  serverRssMb: { before: number; peak: number; after: number };
  afterLoad: { generateStatus: number; generateMs: number; served: HealthResponse['served']; serverRunning: boolean };
  ok: boolean;
  problems: string[];
}

/** Percentiles of a list of milliseconds (nearest rank), to 0.1 ms. */
function percentiles(ms: number[]): Percentiles {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number): number => (s.length ? s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]! : NaN);
  const r = (x: number): number => Math.round(x * 10) / 10;
  return { p50: r(at(0.5)), p90: r(at(0.9)), p99: r(at(0.99)), max: r(s.at(-1) ?? NaN), count: s.length };
}

/** /proc/PID/status in MiB: VmRSS now, VmHWM the peak since the process started. */
function procMb(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 102.4) / 10 : NaN;
}

function startServer(run: string, queue: number | undefined): Promise<{ child: ChildProcess; base: string }> {
  const args = [CLI, 'serve', '--run', run, '--host', '127.0.0.1', '--port', '0', '--quiet'];
  if (queue !== undefined) args.push('--queue', String(queue));
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)\//.exec(err);
      if (m) resolve({ child, base: m[1]! });
    });
    child.on('exit', (code) => reject(new Error(`ctfgen serve exited (${code}) before listening:\n${err}`)));
  });
}

async function timed(url: string, body?: string): Promise<{ ms: number; status: number; json: unknown }> {
  const t0 = performance.now();
  const headers = { 'content-type': 'application/json' };
  const init = body === undefined ? undefined : { method: 'POST', headers, body };
  const res = await fetch(url, init);
  const json = await res.json().catch(() => null);
  return { ms: performance.now() - t0, status: res.status, json };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runServeLoad(o: ServeLoadOptions): Promise<ServeLoadReport> {
  let run = o.run, tmp: string | null = null;
  if (run === undefined && existsSync('runs/demo/tokenizer.safetensors')) run = 'runs/demo';
  if (run === undefined) {
    tmp = mkdtempSync(join(tmpdir(), 'ctfgen-serve-load-'));
    run = join(tmp, 'run');
    const r = spawnSync(process.execPath, [CLI, 'demo', '--profile', 'tiny', '--run', run], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ctfgen demo --profile tiny failed:\n${r.stderr}`);
  }
  const { child, base } = await startServer(run, o.queue);
  let exited: number | null = null;
  child.on('exit', (code, signal) => { exited = code ?? (signal ? -1 : 0); });
  try {
    const info = (await timed(`${base}/api/info`)).json as InfoResponse;
    const body = (i: number): string => JSON.stringify({ class: i % info.run.classNames.length, seed: i, n: 1 });
    const warm = await timed(`${base}/api/generate`, body(0));
    if (warm.status !== 200) throw new Error(`the warm-up request got ${warm.status}: ${JSON.stringify(warm.json)}`);
    const rssBefore = procMb(child.pid!, 'VmRSS'), loadBefore = loadavg()[0]!;

    // The health probe: one request every 100 ms while the load runs.
    const health: number[] = [];
    let healthFailures = 0, probing = true;
    const probe = (async () => {
      for (; probing; await sleep(100)) {
        const t = await timed(`${base}/api/health`).catch(() => null);
        if (t?.status === 200) health.push(t.ms); else healthFailures++;
      }
    })();

    let seed = 1;
    const byStatus = new Map<number, number[]>();
    const result = await new Promise<autocannon.Result>((resolve, reject) => {
      const instance = autocannon({
        url: `${base}/api/generate`, method: 'POST', connections: o.connections, duration: o.duration, timeout: 60,
        headers: { 'content-type': 'application/json' },
        requests: [{ method: 'POST', setupRequest: (req) => ({ ...req, body: body(seed++) }) }],
      }, (err, res) => (err ? reject(err as Error) : resolve(res)));
      instance.on('response', (_client, status, _bytes, ms) => {
        const list = byStatus.get(status) ?? [];
        list.push(ms);
        byStatus.set(status, list);
      });
    });
    probing = false;
    await probe;

    // After the load: the queue drains, a normal request is answered, nothing failed, the server still runs.
    const queueOf = async (): Promise<HealthResponse> => (await timed(`${base}/api/health`)).json as HealthResponse;
    for (const end = Date.now() + 60000; Date.now() < end; await sleep(200)) {
      const q = (await queueOf()).queue;
      if (!q.running && !q.waiting) break;
    }
    const after = await timed(`${base}/api/generate`, body(10 ** 6));
    const h = await queueOf();
    const ok = byStatus.get(200)?.length ?? 0, busy = byStatus.get(429)?.length ?? 0;
    const others = [...byStatus].filter(([s]) => s !== 200 && s !== 429);
    const other = Object.fromEntries(others.map(([s, l]) => [s, l.length]));
    const seconds = result.duration, round = (x: number, d: number): number => Math.round(x * d) / d;
    const problems = [
      exited !== null && `the server exited (${exited})`,
      after.status !== 200 && `the request after the load got ${after.status}`,
      h.served.failed > 0 && `${h.served.failed} jobs failed`,
      healthFailures > 0 && `${healthFailures} health checks failed`,
      result.errors > 0 && `${result.errors} connection errors`,
      Object.keys(other).length > 0 && `unexpected statuses ${JSON.stringify(other)}`,
    ].filter((p): p is string => typeof p === 'string');
    const flags = `--connections ${o.connections} --duration ${o.duration}${o.run ? ` --run ${o.run}` : ''}`;
    return {
      kind: 'ctfgen.serve-load', date: new Date().toISOString(),
      command: `npm run bench:serve (node dist/bench/serve-load.js ${flags})`,
      // What else ran: the 1-minute load average before and after, and this process's nice level (the server's too).
      machine: {
        cpus: cpus().length, cpu: cpus()[0]?.model ?? '?', node: process.version, nice: getPriority(),
        loadAverage1m: { before: loadBefore, after: loadavg()[0]! },
      },
      run: {
        dir: tmp ? 'a tiny run made by the bench (ctfgen demo --profile tiny)' : run, methods: info.run.methods,
        classes: info.run.classNames.length, v: info.run.v, k: info.run.k, grid: info.run.grid,
        imageSize: info.run.imageSize,
      },
      load: {
        target: 'POST /api/generate {"class": i mod classes, "seed": i, "n": 1}', connections: o.connections, seconds,
        queueLimit: info.limits.queue,
      },
      requests: {
        total: result.requests.total, perSecond: round(result.requests.total / seconds, 10), ok, tooMany: busy, other,
        errors: result.errors, timeouts: result.timeouts,
      },
      images: { total: ok, perSecond: round(ok / seconds, 100) },
      latencyMs: {
        all: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max },
        ok: percentiles(byStatus.get(200) ?? []), tooMany: percentiles(byStatus.get(429) ?? []),
      },
      health: { ...percentiles(health), failures: healthFailures },
      serverRssMb: { before: rssBefore, peak: procMb(child.pid!, 'VmHWM'), after: procMb(child.pid!, 'VmRSS') },
      afterLoad: {
        generateStatus: after.status, generateMs: Math.round(after.ms), served: h.served,
        serverRunning: exited === null,
      },
      ok: problems.length === 0, problems,
    };
  } finally {
    child.kill('SIGTERM');
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}

function positiveInt(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (Number.isInteger(n) && n >= 1 && n <= 1000) return n;
  console.error(`serve-load: --${flag} must be an integer in 1…1000, got "${v}"`);
  process.exit(2);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values: v } = parseArgs({
    options: {
      run: { type: 'string' }, connections: { type: 'string', default: '32' },
      duration: { type: 'string', default: '20' },
      queue: { type: 'string' }, json: { type: 'string' },
    },
  });
  const r = await runServeLoad({
    run: v.run, connections: positiveInt('connections', v.connections)!, duration: positiveInt('duration', v.duration)!,
    queue: positiveInt('queue', v.queue),
  });
  if (v.json) {
    mkdirSync(dirname(v.json), { recursive: true });
    writeFileSync(v.json, JSON.stringify(r, null, 2) + '\n');
  }
  const l = r.latencyMs;
  console.error(`${r.requests.perSecond} requests/s, ${r.images.perSecond} images/s; ${r.requests.ok} served, ` +
    `${r.requests.tooMany} × 429; latency p50 ${l.all.p50} ms, p99 ${l.all.p99} ms (served: p50 ${l.ok.p50}, ` +
    `p99 ${l.ok.p99} ms); health p99 ${r.health.p99} ms; peak RSS ${r.serverRssMb.peak} MiB` +
    (v.json ? `; wrote ${v.json}` : ''));
  if (!r.ok) {
    console.error(`serve-load: FAILED: ${r.problems.join('; ')}`);
    process.exit(1);
  }
}
