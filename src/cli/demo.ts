// `ctfgen demo` (`npm run demo`): a small CTF run end to end on Fashion-MNIST into one run directory —
// tokenizer → encode → cluster (+ the swap picture) → baseline, stage 1, aux → samples of both methods →
// report.md/.json.
// Every stage is the `ctfgen` command printed in the report, run by the stage runner (src/run/stage.ts), which the
// experiment scripts use too: a finished stage is skipped, an interrupted training continues with --resume, a stop
// (130/143) is not a finish, times go to times.jsonl. The demo adds one rule of its own: once a stage runs again
// (its command changed, or --fresh), everything after it that reads its outputs runs again too, with --force.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CtfError, Interrupted } from '../errors.js';
import { checkOutputs } from '../io/outputs.js';
import { reportPath, runPath } from '../io/run-dir.js';
import type { GptKind } from '../models/gpt-kind.js';
import { finishedStages, recordedAs, runStage, type Stage } from '../run/stage.js';
import { UsageError } from './args.js';
import { shell, writeDemoReport } from './demo-report.js';
import type { Command } from './main.js';
import { bold, formatDuration } from './progress.js';

export interface DemoProfile {
  tokenizer: { preset: string; codebook: number; limit: number; epochs: number; evalLimit: number; batch: number };
  encode: { train: number; test: number; flip: boolean };  // images encoded per split; flip: + mirrored train copies
  k: number;                                  // clusters
  gpt: { preset: string; epochs: number; batch: number; warmup: number; valLimit: number };
  sample: { n: number };                      // images per class in each grid (sampling: ctfgen's defaults)
}

/** default: ~8 min on the 2-core machine (measured, README); tiny: the end-to-end test (seconds). */
export const DEMO_PROFILES: Record<string, DemoProfile> = {
  default: {
    tokenizer: { preset: 'tiny', codebook: 2048, limit: 20000, epochs: 1, evalLimit: 1000, batch: 64 },
    encode: { train: 16000, test: 1000, flip: true },
    k: 64,
    gpt: { preset: 'tiny', epochs: 1, batch: 128, warmup: 20, valLimit: 1000 },
    sample: { n: 8 },
  },
  tiny: {
    tokenizer: { preset: 'tiny', codebook: 64, limit: 256, epochs: 1, evalLimit: 64, batch: 32 },
    encode: { train: 256, test: 64, flip: false },
    k: 8,
    gpt: { preset: 'tiny', epochs: 1, batch: 32, warmup: 2, valLimit: 64 },
    sample: { n: 2 },
  },
};

/** A demo stage: a runner stage, and whether later stages read what it writes. */
interface DemoStage extends Stage {
  leaf?: boolean;  // no later stage reads its outputs, so running it invalidates nothing
}

function stagesOf(run: string, p: DemoProfile): DemoStage[] {
  const f = (name: string): string => join(run, name);
  const tok = runPath(run, 'tokenizer');
  const gpt = (kind: GptKind): DemoStage => {
    const out = runPath(run, kind);
    return {
      name: kind, force: true, resumes: out, done: [out, reportPath(out)],
      args: ['train', kind, '--run', run, '--preset', p.gpt.preset, '--epochs', String(p.gpt.epochs),
        '--batch', String(p.gpt.batch), '--warmup', String(p.gpt.warmup), '--val-limit', String(p.gpt.valLimit),
        '--checkpoint-every', '50'],
    };
  };
  const sample = (method: string): DemoStage => ({
    name: `sample-${method}`, leaf: true, stdoutTo: f(`sample-${method}.json`),
    args: ['sample', '--run', run, '--method', method, '--classes', 'all', '--n', String(p.sample.n),
      '--out', f(`samples-${method}.png`), '--tokens-out', f(`tokens-${method}.json`),
      '--json',
      ...(method === 'ctf' ? ['--progressive', f('progressive.png')] : [])],
    done: [f(`samples-${method}.png`), f(`tokens-${method}.json`), ...(method === 'ctf' ? [f('progressive.png')] : [])],
  });
  return [
    {
      // run.json is written once the training and its evaluation are done; the checkpoint exists before.
      name: 'tokenizer', done: [tok, join(dirname(tok), 'run.json')], stdoutTo: f('tokenizer-eval.json'), force: true,
      resumes: tok,
      args: ['tokenizer', 'train', '--data', 'fashion-mnist', '--out', tok, '--preset', p.tokenizer.preset,
        '--codebook', String(p.tokenizer.codebook), '--limit', String(p.tokenizer.limit),
        '--epochs', String(p.tokenizer.epochs), '--batch', String(p.tokenizer.batch),
        '--eval-limit', String(p.tokenizer.evalLimit), '--checkpoint-every', '100', '--json'],
    },
    {
      name: 'encode-train', done: [runPath(run, 'tokensTrain')], force: true,
      args: ['tokenizer', 'encode', '--tokenizer', tok, '--split', 'train', '--limit', String(p.encode.train),
        ...(p.encode.flip ? ['--flip'] : []), '--out', runPath(run, 'tokensTrain')],
    },
    {
      name: 'encode-test', done: [runPath(run, 'tokensTest')], force: true,
      args: ['tokenizer', 'encode', '--tokenizer', tok, '--split', 'test', '--limit', String(p.encode.test),
        '--out', runPath(run, 'tokensTest')],
    },
    {
      name: 'cluster', done: [runPath(run, 'clusters')], stdoutTo: f('cluster.json'), force: true,
      args: ['cluster', '--tokenizer', tok, '--k', String(p.k), '--out', runPath(run, 'clusters'), '--json'],
    },
    {
      name: 'swap-demo', leaf: true, done: [f('swap-demo.png')], stdoutTo: f('swap-demo.json'),
      args: ['cluster', 'swap-demo', '--tokenizer', tok, '--clusters', runPath(run, 'clusters'),
        '--out', f('swap-demo.png'), '--json'],
    },
    gpt('baseline'), gpt('stage1'), gpt('aux'),
    sample('ctf'), sample('baseline'),
  ];
}

export const demoCommand: Command = {
  spec: {
    name: 'demo',
    brief: 'a small CTF run end to end on Fashion-MNIST, resumable',
    summary: 'A small CTF run end to end on Fashion-MNIST (tokenizer → encode → cluster → baseline, stage 1, aux →\n' +
      'samples → report.md), each stage a ctfgen command. Resumable: finished stages are skipped, an interrupted\n' +
      'training continues.',
    usage: 'ctfgen demo [--run runs/demo] [--profile default|tiny] [--fresh]',
    flags: {
      run: { type: 'string', default: 'runs/demo', help: 'run directory' },
      profile: {
        type: 'string', default: 'default',
        help: `sizes: ${Object.keys(DEMO_PROFILES).join(' or ')} (tiny: seconds, for tests)`,
      },
      fresh: {
        type: 'boolean', help: 'forget what earlier invocations finished: run every stage anew, replacing its outputs',
      },
    },
  },
  async run(f) {
    const t0 = performance.now();
    const run = String(f['run']), profileName = String(f['profile']);
    const profile = DEMO_PROFILES[profileName];
    if (!profile)
      throw new UsageError(`--profile: expected ${Object.keys(DEMO_PROFILES).join(' or ')}, got "${profileName}"`);
    checkOutputs({ inputs: [], outputs: [{ role: '--run', path: run, directory: true }] });
    await mkdir(run, { recursive: true });
    const stages = stagesOf(run, profile), records = finishedStages(run);
    const log = (s: string): void => { process.stderr.write(`${bold('demo')} ${s}\n`); };
    const ran = new Set<string>();
    let upstreamRan = false;
    for (const [i, s] of stages.entries()) {
      const at = `[${i + 1}/${stages.length}] ${s.name}`, record = records.get(s.name);
      // A stage whose command changed, one whose inputs were just remade and every stage under --fresh start over.
      const redo = f['fresh'] === true || upstreamRan || (record !== undefined && !recordedAs(record, s));
      const o = await runStage(s, {
        records: run, redo,
        emit: (e) => {
          const took = record ? formatDuration(record.seconds) : 'no record';
          if (e.type === 'skip') log(`${at}: done earlier (${took}), skipped`);
          if (e.type === 'run') log(`${at}: ${shell(e.args)}`);
        },
      });
      if (o.status === 'stopped' || o.signal !== null)
        throw new Interrupted(o.signal ?? (o.exit === 143 ? 'SIGTERM' : 'SIGINT'),
          `interrupted during ${s.name}; run the same command again to continue where it stopped`);
      if (o.status === 'failed') throw new CtfError(`demo: stage ${s.name} failed (exit ${o.exit}): ${shell(o.args)}`);
      if (o.status === 'skipped') continue;
      const missing = [...s.done, ...(s.stdoutTo ? [s.stdoutTo] : [])].filter((p) => !existsSync(p));
      if (missing.length) throw new CtfError(`demo: stage ${s.name} finished without writing ${missing.join(', ')}`);
      ran.add(s.name);
      if (!s.leaf) upstreamRan = true;
    }
    const wall = (performance.now() - t0) / 1000;
    const report = await writeDemoReport(run, { name: profileName, config: profile }, stages, ran, wall);
    log(`finished in ${formatDuration(wall)}; wrote ${report} and report.json ` +
      '(pictures: samples-ctf.png, samples-baseline.png, progressive.png, swap-demo.png)');
    const npmServe = run === 'runs/demo' ? ' (npm run serve)' : '';
    log(`watch it generate in a browser: ctfgen serve --run ${run}${npmServe}, then open http://127.0.0.1:7860/`);
  },
};
