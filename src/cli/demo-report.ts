// The report of a `ctfgen demo` run: report.json and report.md from the files its stages wrote (the training
// reports, the JSON summaries the stages printed, times.jsonl).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { reportPath, runPath } from '../io/run-dir.js';
import { GPT_KINDS, type GptKind } from '../models/gpt-kind.js';
import { finishedStages, type Stage, type StageRecord } from '../run/stage.js';
import type { DemoProfile } from './demo.js';
import { formatDuration } from './progress.js';

function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return null;
  }
}

/** A command line to paste into a shell. */
export const shell = (args: readonly string[]): string =>
  ['ctfgen', ...args].map((a) => (/^[\w./,:=+-]+$/.test(a) ? a : `'${a}'`)).join(' ');

interface TrainReport { valLoss: number | null; seconds: number; steps: number; parameters: number }
interface SampleSummary {
  out: string; images: number; imagesPerSecond: number; seconds: Record<string, number>; insideCluster: number | null;
}
interface TokenizerEvalSummary { psnr: number; usage: number; perplexity: number; images: number }
interface ClusterSummary { k: number; v: number; inertia: number; sizes: { min: number; median: number; max: number } }
interface SwapSummary { rows: { name: string; psnrVsOriginal: number; psnrVsRecon: number; tokensChanged: number }[] }

/** report.json and report.md from times.jsonl and the files the stages wrote; returns the path of report.md. */
export async function writeDemoReport(run: string, profile: { name: string; config: DemoProfile }, stages: Stage[],
  ran: Set<string>, wallSeconds: number): Promise<string> {
  const records = finishedStages(run);
  const rec = (n: string): StageRecord | undefined => records.get(n);
  const result = <T>(n: string): T | undefined => readJson<T>(join(run, `${n}.json`)) ?? undefined;
  const trains = Object.fromEntries(GPT_KINDS.map((k) => [k, readJson<TrainReport>(reportPath(runPath(run, k)))]));
  const tokEval = result<TokenizerEvalSummary>('tokenizer-eval');
  const clusters = result<ClusterSummary>('cluster');
  const swap = result<SwapSummary>('swap-demo')?.rows;
  const swapRow = (name: string): SwapSummary['rows'][number] | undefined => swap?.find((r) => r.name === name);
  const samples = { ctf: result<SampleSummary>('sample-ctf'), baseline: result<SampleSummary>('sample-baseline') };
  const val = (k: GptKind): number | null => trains[k]?.valLoss ?? null;
  const ctfLoss = val('stage1') !== null && val('aux') !== null ? val('stage1')! + val('aux')! : null;
  const file = (name: string): string => join(run, name);
  const report = {
    kind: 'ctfgen.demo-report', run, profile: profile.name, profileConfig: profile.config,
    date: new Date().toISOString(), wallSeconds,
    stageSecondsTotal: stages.reduce((s, st) => s + (rec(st.name)?.seconds ?? 0), 0),
    stages: stages.map((s) =>
      ({ name: s.name, command: shell(s.args), seconds: rec(s.name)?.seconds ?? null, ranNow: ran.has(s.name) })),
    tokenizer: tokEval
      ? { psnr: tokEval.psnr, usage: tokEval.usage, perplexity: tokEval.perplexity, images: tokEval.images } : null,
    clusters: clusters ? { k: clusters.k, v: clusters.v, inertia: clusters.inertia, sizes: clusters.sizes } : null,
    swapDemo: swap ? { picture: file('swap-demo.png'), rows: swap } : null,
    valLoss: { baseline: val('baseline'), stage1: val('stage1'), aux: val('aux'), ctfSum: ctfLoss },
    samples: {
      ctf: samples.ctf ? {
        grid: file('samples-ctf.png'), progressive: file('progressive.png'), tokens: file('tokens-ctf.json'),
        imagesPerSecond: samples.ctf.imagesPerSecond, images: samples.ctf.images,
        insideCluster: samples.ctf.insideCluster,
      } : null,
      baseline: samples.baseline ? {
        grid: file('samples-baseline.png'), tokens: file('tokens-baseline.json'),
        imagesPerSecond: samples.baseline.imagesPerSecond, images: samples.baseline.images,
      } : null,
    },
  };
  await writeFileAtomic(file('report.json'), JSON.stringify(report, null, 2) + '\n');
  const f4 = (x: number | null): string => (x === null ? '–' : x.toFixed(4));
  const took = (s: (typeof report.stages)[number]): string =>
    `${s.seconds === null ? '–' : formatDuration(s.seconds)}${s.ranNow ? '' : ' (earlier)'}`;
  const kmeans = swapRow('k-means swap'), random = swapRow('random swap');
  const { ctf, baseline } = samples;
  const inside = ctf?.insideCluster == null ? ''
    : `${(100 * ctf.insideCluster).toFixed(1)}% of fine tokens inside their predicted cluster; `;
  const md = [
    `# CTF demo run: \`${run}\``,
    '',
    `Made by \`npm run demo\` (\`ctfgen demo --run ${run} --profile ${profile.name}\`) ` +
      `on ${report.date.slice(0, 10)}. ` +
      `This invocation took ${formatDuration(wallSeconds)}; the stages, when they ran, took ` +
      `${formatDuration(report.stageSecondsTotal)} in all.`,
    'Fashion-MNIST subsets, tiny models and one epoch: this shows the pipeline working, not the method\'s quality.',
    '',
    '| stage | time | command |',
    '|---|---|---|',
    ...report.stages.map((s) => `| ${s.name} | ${took(s)} | \`${s.command}\` |`),
    '',
    '## Results',
    '',
    tokEval ? `- **Tokenizer** (test split, ${tokEval.images} images): PSNR ${tokEval.psnr.toFixed(2)} dB inside the ` +
      `padding, codebook usage ${(100 * tokEval.usage).toFixed(1)}%, perplexity ${tokEval.perplexity.toFixed(0)}.`
      : '- Tokenizer: –',
    clusters ? `- **Coarse map**: K = ${clusters.k} k-means clusters of the V = ${clusters.v} codewords (sizes ` +
      `${clusters.sizes.min}–${clusters.sizes.max}, median ${clusters.sizes.median}), ` +
      `inertia ${clusters.inertia.toFixed(2)}.`
      : '- Coarse map: –',
    kmeans && random
      ? '- **Key observation** (`swap-demo.png`, rows: original | reconstruction | every token swapped for another ' +
        'member of its k-means cluster | of a random cluster): PSNR against the reconstruction ' +
        `${kmeans.psnrVsRecon.toFixed(2)} dB for k-means clusters vs ${random.psnrVsRecon.toFixed(2)} dB ` +
        'for random ones.'
      : '- Key observation: –',
    `- **Validation loss** (nats/token on the test tokens): baseline ${f4(val('baseline'))}; CTF stage 1 (coarse) ` +
      `${f4(val('stage1'))} + stage 2 (fine given the true coarse labels) ${f4(val('aux'))} = ${f4(ctfLoss)}. ` +
      'The spec\'s trial found CTF\'s summed loss higher than the baseline\'s while its samples scored better: judge ' +
      'by samples, not loss.',
    ctf ? `- **CTF samples**: \`samples-ctf.png\` (rows = classes), ${ctf.images} images at ` +
      `${ctf.imagesPerSecond.toFixed(1)} img/s including decoding; ${inside}stage-1 preview \`progressive.png\` ` +
      '(columns: after 16/32/48/64 coarse labels, then the final image).' : '- CTF samples: –',
    baseline ? `- **Baseline samples**: \`samples-baseline.png\`, ${baseline.images} images at ` +
      `${baseline.imagesPerSecond.toFixed(1)} img/s.` : '- Baseline samples: –',
    '',
    '| CTF | baseline | CTF stage-1 preview | swaps within clusters |',
    '|---|---|---|---|',
    '| ![CTF samples](samples-ctf.png) | ![baseline samples](samples-baseline.png) | ![progressive](progressive.png) ' +
      '| ![swap demo](swap-demo.png) |',
    '',
  ].join('\n');
  await writeFileAtomic(file('report.md'), md);
  return file('report.md');
}
