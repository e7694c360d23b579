// `ctfgen demo` (`npm run demo`): a small CTF run end to end on Fashion-MNIST into one run directory —
// tokenizer → encode → cluster (+ the swap picture) → baseline, coarse-ar, fine-aux → samples of both methods →
// report.md/.json.
// Every stage is the `ctfgen` command printed in the report, run as a child process. The run is resumable and
// idempotent: demo-state.json records each finished stage's command; a stage whose command and outputs are
// unchanged is skipped, an interrupted training stage continues with --resume, and once a stage runs again
// everything after it that reads its outputs runs again too — with --force, since its old outputs are stale.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CtfError, Interrupted } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { checkOutputs } from '../io/outputs.js';
import { trainStatePath } from './tokenizer.js';
import { UsageError } from './args.js';
import type { Command } from './main.js';
import { bold, formatDuration } from './progress.js';

export interface DemoProfile {
  tokenizer: { preset: string; codebook: number; limit: number; epochs: number; evalLimit: number; batch: number };
  encode: { train: number; test: number; flip: boolean };  // images of each split encoded for the GPTs; flip: + mirrored train copies
  k: number;                                  // clusters
  gpt: { preset: string; epochs: number; batch: number; warmup: number; valLimit: number };
  sample: { n: number; cfg: number };         // images per class in each grid
}

/** default: ~8 min on the 2-core machine (measured, README); tiny: the end-to-end test (seconds). */
export const DEMO_PROFILES: Record<string, DemoProfile> = {
  default: {
    tokenizer: { preset: 'tiny', codebook: 2048, limit: 20000, epochs: 1, evalLimit: 1000, batch: 64 },
    encode: { train: 16000, test: 1000, flip: true },
    k: 64,
    gpt: { preset: 'tiny', epochs: 1, batch: 128, warmup: 20, valLimit: 1000 },
    sample: { n: 8, cfg: 2 },
  },
  tiny: {
    tokenizer: { preset: 'tiny', codebook: 64, limit: 256, epochs: 1, evalLimit: 64, batch: 32 },
    encode: { train: 256, test: 64, flip: false },
    k: 8,
    gpt: { preset: 'tiny', epochs: 1, batch: 32, warmup: 2, valLimit: 64 },
    sample: { n: 2, cfg: 2 },
  },
};

interface Stage {
  name: string;
  args: string[];                       // ctfgen arguments
  outputs: string[];                    // files that must exist once it has finished
  resume?: () => string[] | null;       // arguments that continue an interrupted run, if its state exists
  force?: boolean;                      // the command takes --force (it writes checkpoints, tokens or clusters)
  json?: boolean;                       // stdout is a JSON summary to keep
  leaf?: boolean;                       // no later stage reads its outputs, so running it invalidates nothing
}

interface StageRecord { command: string; seconds: number; finishedAt: string; result?: unknown }
interface DemoState { kind: 'ctfgen.demo-state'; stages: Record<string, StageRecord> }

function stagesOf(run: string, p: DemoProfile): Stage[] {
  const f = (name: string): string => join(run, name);
  const tok = f('tokenizer.safetensors');
  const tokenizerArgs = ['tokenizer', 'train', '--data', 'fashion-mnist', '--out', tok, '--preset', p.tokenizer.preset, '--codebook', String(p.tokenizer.codebook),
    '--limit', String(p.tokenizer.limit), '--epochs', String(p.tokenizer.epochs), '--batch', String(p.tokenizer.batch),
    '--eval-limit', String(p.tokenizer.evalLimit), '--checkpoint-every', '100', '--json'];
  const gpt = (kind: string): Stage => {
    const args = ['train', kind, '--run', run, '--preset', p.gpt.preset, '--epochs', String(p.gpt.epochs), '--batch', String(p.gpt.batch),
      '--warmup', String(p.gpt.warmup), '--val-limit', String(p.gpt.valLimit), '--checkpoint-every', '50'];
    const out = f(`${kind}.safetensors`);
    return {
      name: kind, args, outputs: [out, f(`${kind}.report.json`)], force: true,
      resume: () => (existsSync(trainStatePath(out)) ? [...args, '--resume'] : null),
    };
  };
  const sample = (method: string): Stage => ({
    name: `sample-${method}`, json: true, leaf: true,
    args: ['sample', '--run', run, '--method', method, '--classes', 'all', '--n', String(p.sample.n), '--cfg', String(p.sample.cfg),
      '--out', f(`samples-${method}.png`), '--tokens-out', f(`tokens-${method}.json`), '--json',
      ...(method === 'ctf' ? ['--progressive', f('progressive.png')] : [])],
    outputs: [f(`samples-${method}.png`), f(`tokens-${method}.json`), ...(method === 'ctf' ? [f('progressive.png')] : [])],
  });
  return [
    {
      name: 'tokenizer', args: tokenizerArgs, outputs: [tok], json: true, force: true,
      resume: () => (existsSync(trainStatePath(tok)) ? [...tokenizerArgs, '--resume'] : null),
    },
    {
      name: 'encode-train', outputs: [f('tokens-train.safetensors')], force: true,
      args: ['tokenizer', 'encode', '--tokenizer', tok, '--split', 'train', '--limit', String(p.encode.train),
        ...(p.encode.flip ? ['--flip'] : []), '--out', f('tokens-train.safetensors')],
    },
    {
      name: 'encode-test', outputs: [f('tokens-test.safetensors')], force: true,
      args: ['tokenizer', 'encode', '--tokenizer', tok, '--split', 'test', '--limit', String(p.encode.test),
        '--out', f('tokens-test.safetensors')],
    },
    {
      name: 'cluster', outputs: [f('clusters.safetensors')], json: true, force: true,
      args: ['cluster', '--tokenizer', tok, '--k', String(p.k), '--out', f('clusters.safetensors'), '--json'],
    },
    {
      name: 'swap-demo', json: true, leaf: true, outputs: [f('swap-demo.png')],
      args: ['cluster', 'swap-demo', '--tokenizer', tok, '--clusters', f('clusters.safetensors'), '--out', f('swap-demo.png'), '--json'],
    },
    gpt('baseline'), gpt('coarse-ar'), gpt('fine-aux'),
    sample('ctf'), sample('baseline'),
  ];
}

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

/** Runs `ctfgen args` with stderr shown; resolves to its exit code and stdout (when captured). */
function runCtfgen(args: string[], captureStdout: boolean, onSpawn: (child: ChildProcess) => void): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', captureStdout ? 'pipe' : 'inherit', 'inherit'] });
    onSpawn(child);
    let stdout = '';
    child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 130 : 1), stdout }));
  });
}

function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

const shell = (args: string[]): string => ['ctfgen', ...args].map((a) => (/^[\w./,:=+-]+$/.test(a) ? a : `'${a}'`)).join(' ');

interface TrainReport { valLoss: number | null; seconds: number; steps: number; parameters: number }
interface SampleSummary { out: string; images: number; imagesPerSecond: number; seconds: Record<string, number>; insideCluster: number | null }
interface TokenizerEvalSummary { psnr: number; usage: number; perplexity: number; images: number }
interface ClusterSummary { k: number; v: number; inertia: number; sizes: { min: number; median: number; max: number } }
interface SwapSummary { rows: { name: string; psnrVsOriginal: number; psnrVsRecon: number; tokensChanged: number }[] }

/** report.json and report.md from the state and the files the stages wrote. */
async function writeReport(run: string, profileName: string, stages: Stage[], state: DemoState, ran: Set<string>, wallSeconds: number): Promise<string> {
  const rec = (n: string): StageRecord | undefined => state.stages[n];
  const trains = Object.fromEntries(['baseline', 'coarse-ar', 'fine-aux'].map((k) => [k, readJson<TrainReport>(join(run, `${k}.report.json`))]));
  const tokEval = rec('tokenizer')?.result as TokenizerEvalSummary | undefined;
  const clusters = rec('cluster')?.result as ClusterSummary | undefined;
  const swap = (rec('swap-demo')?.result as SwapSummary | undefined)?.rows;
  const swapRow = (name: string): SwapSummary['rows'][number] | undefined => swap?.find((r) => r.name === name);
  const samples = { ctf: rec('sample-ctf')?.result as SampleSummary | undefined, baseline: rec('sample-baseline')?.result as SampleSummary | undefined };
  const val = (k: string): number | null => trains[k]?.valLoss ?? null;
  const ctfLoss = val('coarse-ar') !== null && val('fine-aux') !== null ? val('coarse-ar')! + val('fine-aux')! : null;
  const report = {
    kind: 'ctfgen.demo-report', run, profile: profileName, profileConfig: DEMO_PROFILES[profileName], date: new Date().toISOString(),
    wallSeconds, stageSecondsTotal: stages.reduce((s, st) => s + (rec(st.name)?.seconds ?? 0), 0),
    stages: stages.map((s) => ({ name: s.name, command: rec(s.name)?.command ?? shell(s.args), seconds: rec(s.name)?.seconds ?? null, ranNow: ran.has(s.name) })),
    tokenizer: tokEval ? { psnr: tokEval.psnr, usage: tokEval.usage, perplexity: tokEval.perplexity, images: tokEval.images } : null,
    clusters: clusters ? { k: clusters.k, v: clusters.v, inertia: clusters.inertia, sizes: clusters.sizes } : null,
    swapDemo: swap ? { picture: join(run, 'swap-demo.png'), rows: swap } : null,
    valLoss: { baseline: val('baseline'), coarseAr: val('coarse-ar'), fineAux: val('fine-aux'), ctfSum: ctfLoss },
    samples: {
      ctf: samples.ctf ? { grid: join(run, 'samples-ctf.png'), progressive: join(run, 'progressive.png'), tokens: join(run, 'tokens-ctf.json'), imagesPerSecond: samples.ctf.imagesPerSecond, images: samples.ctf.images, insideCluster: samples.ctf.insideCluster } : null,
      baseline: samples.baseline ? { grid: join(run, 'samples-baseline.png'), tokens: join(run, 'tokens-baseline.json'), imagesPerSecond: samples.baseline.imagesPerSecond, images: samples.baseline.images } : null,
    },
  };
  await writeFileAtomic(join(run, 'report.json'), JSON.stringify(report, null, 2) + '\n');
  const f4 = (x: number | null): string => (x === null ? '–' : x.toFixed(4));
  const md = [
    `# CTF demo run: \`${run}\``,
    '',
    `Made by \`npm run demo\` (\`ctfgen demo --run ${run} --profile ${profileName}\`) on ${report.date.slice(0, 10)}. ` +
      `This invocation took ${formatDuration(wallSeconds)}; the stages, when they ran, took ${formatDuration(report.stageSecondsTotal)} in all.`,
    'Fashion-MNIST subsets, tiny models and one epoch: this shows the pipeline working, not the method\'s quality.',
    '',
    '| stage | time | command |',
    '|---|---|---|',
    ...report.stages.map((s) => `| ${s.name} | ${s.seconds === null ? '–' : formatDuration(s.seconds)}${s.ranNow ? '' : ' (earlier)'} | \`${s.command}\` |`),
    '',
    '## Results',
    '',
    tokEval ? `- **Tokenizer** (test split, ${tokEval.images} images): PSNR ${tokEval.psnr.toFixed(2)} dB inside the padding, codebook usage ${(100 * tokEval.usage).toFixed(1)}%, perplexity ${tokEval.perplexity.toFixed(0)}.` : '- Tokenizer: –',
    clusters ? `- **Coarse map**: K = ${clusters.k} k-means clusters of the V = ${clusters.v} codewords (sizes ${clusters.sizes.min}–${clusters.sizes.max}, median ${clusters.sizes.median}), inertia ${clusters.inertia.toFixed(2)}.` : '- Coarse map: –',
    swapRow('k-means swap') && swapRow('random swap')
      ? `- **Key observation** (\`swap-demo.png\`, rows: original | reconstruction | every token swapped for another member of its k-means cluster | of a random cluster): ` +
        `PSNR against the reconstruction ${swapRow('k-means swap')!.psnrVsRecon.toFixed(2)} dB for k-means clusters vs ${swapRow('random swap')!.psnrVsRecon.toFixed(2)} dB for random ones.`
      : '- Key observation: –',
    `- **Validation loss** (nats/token on the test tokens): baseline ${f4(val('baseline'))}; CTF stage 1 (coarse) ${f4(val('coarse-ar'))} + stage 2 (fine given the true coarse labels) ${f4(val('fine-aux'))} = ${f4(ctfLoss)}. ` +
      'The spec\'s trial found CTF\'s summed loss higher than the baseline\'s while its samples scored better: judge by samples, not loss.',
    samples.ctf ? `- **CTF samples**: \`samples-ctf.png\` (rows = classes), ${samples.ctf.images} images at ${samples.ctf.imagesPerSecond.toFixed(1)} img/s including decoding; ` +
      `${samples.ctf.insideCluster === null ? '' : `${(100 * samples.ctf.insideCluster).toFixed(1)}% of fine tokens inside their predicted cluster; `}stage-1 preview \`progressive.png\` (columns: after 16/32/48/64 coarse labels, then the final image).` : '- CTF samples: –',
    samples.baseline ? `- **Baseline samples**: \`samples-baseline.png\`, ${samples.baseline.images} images at ${samples.baseline.imagesPerSecond.toFixed(1)} img/s.` : '- Baseline samples: –',
    '',
    '| CTF | baseline | CTF stage-1 preview | swaps within clusters |',
    '|---|---|---|---|',
    '| ![CTF samples](samples-ctf.png) | ![baseline samples](samples-baseline.png) | ![progressive](progressive.png) | ![swap demo](swap-demo.png) |',
    '',
  ].join('\n');
  await writeFileAtomic(join(run, 'report.md'), md);
  return join(run, 'report.md');
}

export const demoCommand: Command = {
  spec: {
    name: 'demo',
    brief: 'a small CTF run end to end on Fashion-MNIST, resumable',
    summary: 'A small CTF run end to end on Fashion-MNIST (tokenizer → encode → cluster → baseline, coarse-ar, fine-aux → samples\n' +
      '→ report.md), each stage a ctfgen command. Resumable: finished stages are skipped, an interrupted training continues.',
    usage: 'ctfgen demo [--run runs/demo] [--profile default|tiny] [--fresh]',
    flags: {
      run: { type: 'string', default: 'runs/demo', help: 'run directory' },
      profile: { type: 'string', default: 'default', help: `sizes: ${Object.keys(DEMO_PROFILES).join(' or ')} (tiny: seconds, for tests)` },
      fresh: {
        type: 'boolean', help: 'forget what earlier invocations finished: run every stage anew, replacing its outputs',
      },
    },
  },
  async run(f) {
    const t0 = performance.now();
    const run = String(f['run']), profileName = String(f['profile']);
    const profile = DEMO_PROFILES[profileName];
    if (!profile) throw new UsageError(`--profile: expected ${Object.keys(DEMO_PROFILES).join(' or ')}, got "${profileName}"`);
    checkOutputs({ inputs: [], outputs: [{ role: '--run', path: run, directory: true }] });
    await mkdir(run, { recursive: true });
    const statePath = join(run, 'demo-state.json');
    const saved = f['fresh'] ? null : readJson<DemoState>(statePath);
    const state: DemoState = saved?.kind === 'ctfgen.demo-state' ? saved : { kind: 'ctfgen.demo-state', stages: {} };
    const stages = stagesOf(run, profile);
    const log = (s: string): void => { process.stderr.write(`${bold('demo')} ${s}\n`); };

    // A Ctrl-C reaches the child too (same process group): it saves and exits; we stop after it. A SIGTERM is
    // sent to us alone, so we pass it on.
    let interrupted: string | null = null, child: ChildProcess | null = null;
    const onSigint = (): void => { interrupted ??= 'SIGINT'; };
    const onSigterm = (): void => { interrupted ??= 'SIGTERM'; child?.kill('SIGTERM'); };
    process.on('SIGINT', onSigint);
    process.on('SIGTERM', onSigterm);
    const ran = new Set<string>();
    try {
      let upstreamRan = false;
      for (const [i, s] of stages.entries()) {
        const command = shell(s.args), done = state.stages[s.name];
        if (!upstreamRan && done?.command === command && s.outputs.every(existsSync)) {
          log(`[${i + 1}/${stages.length}] ${s.name}: done earlier (${formatDuration(done.seconds)}), skipped`);
          continue;
        }
        // An interrupted stage (or a finished one that lost an output) continues; a changed one, one whose inputs were
        // just remade and every stage under --fresh start over.
        const continues = !upstreamRan && !f['fresh'] && (done === undefined || done.command === command);
        const resumeArgs = continues ? s.resume?.() ?? null : null;
        const replaces = s.force === true && (s.outputs.some(existsSync) || s.resume?.() != null);
        const args = resumeArgs ?? (replaces ? [...s.args, '--force'] : s.args);
        log(`[${i + 1}/${stages.length}] ${s.name}: ${shell(args)}`);
        delete state.stages[s.name];
        const t = performance.now();
        const r = await runCtfgen(args, s.json === true, (c) => { child = c; });
        if (interrupted) {
          await writeFileAtomic(statePath, JSON.stringify(state, null, 2) + '\n');
          throw new Interrupted(interrupted, `interrupted during ${s.name}; run the same command again to continue where it stopped`);
        }
        if (r.code !== 0) throw new CtfError(`demo: stage ${s.name} failed (exit ${r.code}): ${shell(args)}`);
        const missing = s.outputs.filter((o) => !existsSync(o));
        if (missing.length) throw new CtfError(`demo: stage ${s.name} finished without writing ${missing.join(', ')}`);
        let result: unknown;
        if (s.json) {
          try { result = JSON.parse(r.stdout); } catch { throw new CtfError(`demo: stage ${s.name} printed no JSON summary`); }
        }
        state.stages[s.name] = { command, seconds: (performance.now() - t) / 1000, finishedAt: new Date().toISOString(), ...(s.json ? { result } : {}) };
        await writeFileAtomic(statePath, JSON.stringify(state, null, 2) + '\n');
        ran.add(s.name);
        if (!s.leaf) upstreamRan = true;
      }
    } finally {
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigterm);
    }
    const wall = (performance.now() - t0) / 1000;
    const report = await writeReport(run, profileName, stages, state, ran, wall);
    log(`finished in ${formatDuration(wall)}; wrote ${report} and report.json (pictures: samples-ctf.png, samples-baseline.png, progressive.png, swap-demo.png)`);
    const npmServe = run === 'runs/demo' ? ' (npm run serve)' : '';
    log(`watch it generate in a browser: ctfgen serve --run ${run}${npmServe}, then open http://127.0.0.1:7860/`);
  },
};
