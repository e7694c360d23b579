// `ctfgen bench sample`: renders the sampling benchmark's rounds and table; the numbers come from
// src/bench/sample-bench.ts.
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { checkOutputs } from '../io/outputs.js';
import { GPT_PRESETS, type GptPreset } from '../models/gpt.js';
import { runSampleBench, type SampleBenchReport } from '../bench/sample-bench.js';
import { RUN_LAYOUT } from '../sample/run-dir.js';
import { TOKENIZER_PRESETS } from '../tokenizer/config.js';
import { UsageError } from './args.js';
import type { Command } from './main.js';
import { SAMPLING_FLAGS } from './sampling-flags.js';

function table(r: SampleBenchReport): string {
  const row = (side: string, m: 'baseline' | 'ctf', s: SampleBenchReport['ours']['baseline']): string =>
    `${side.padEnd(6)} ${m.padEnd(9)} ${s.imagesPerSecond.toFixed(1).padStart(8)} ` +
    `${s.medianMs.toFixed(0).padStart(9)} ` +
    `${s.partsMs.stage1.toFixed(0).padStart(9)} ${(m === 'ctf' ? s.partsMs.stage2.toFixed(0) : '–').padStart(9)} ` +
    `${s.partsMs.decode.toFixed(0).padStart(9)} ${s.medianCpuMs.toFixed(0).padStart(9)}`;
  const m = r.models;
  const lines = [
    `batch ${r.batch}, CFG ${r.cfg}, τ ${r.temperature}; baseline ${m.baseline.layers}×${m.baseline.dim} (V = ` +
    `${m.v}), stage 1 ${m.stage1.layers}×${m.stage1.dim} (K = ${m.k}), ` +
      `aux ${m.aux.layers}×${m.aux.dim}${m.equalBackbone ? '' : '  (baseline and stage 1 differ in size!)'}`,
    'side   method      img/s  total ms  stage1 ms  stage2 ms  decode ms    CPU ms',
    row('ours', 'baseline', r.ours.baseline),
    row('ours', 'ctf', r.ours.ctf),
    row('torch', 'baseline', r.torch.baseline),
    row('torch', 'ctf', r.torch.ctf),
    `ours / torch: baseline ${r.ratios.oursOverTorch.baseline.toFixed(2)}×, ctf ` +
    `${r.ratios.oursOverTorch.ctf.toFixed(2)}×;  ` +
      `ctf / baseline: ours ${r.ratios.ctfOverBaseline.ours.toFixed(2)}×, torch ` +
      `${r.ratios.ctfOverBaseline.torch.toFixed(2)}× ` +
      `(median of the per-round ratios: ours ${r.ratios.ctfOverBaselinePaired.ours.toFixed(2)}×, torch ` +
      `${r.ratios.ctfOverBaselinePaired.torch.toFixed(2)}×)`,
    `greedy cross-check (${r.check.images} images): baseline ${(100 * r.check.baselineAgreement).toFixed(1)}%, ` +
    `coarse ${(100 * r.check.coarseAgreement).toFixed(1)}%, fine ${(100 * r.check.fineAgreement).toFixed(1)}% of ` +
    `tokens agree`,
    `OpenBLAS ${r.info.ours.corename}, ${r.info.ours.blasThreads} threads; torch ${r.info.torch.version}, ` +
    `${r.info.torch.threads} thread(s); medians of ${r.rounds} alternating rounds (wall clock; CPU ms = process CPU ` +
    `time, all threads)`,
  ];
  return lines.join('\n') + '\n';
}

export const benchSampleCommand: Command = {
  spec: {
    name: 'bench sample',
    brief: 'images/s of the baseline and of CTF, ours against a PyTorch sampler of the same weights',
    summary:
      'Images/s of the baseline and of CTF (stage 1 + stage 2 + decode, each part timed) at one batch with CFG, for ' +
      'our sampler\n' +
      'and a PyTorch KV-cached sampler of the same weights (bench/torch_sampler.py), each in a worker process, ' +
      'alternating.\n' +
      'Weights: a trained --run DIR, or random ones of the given presets.',
    usage:
      'ctfgen bench sample [--run DIR | --preset S --aux-preset S --tokenizer-preset S --codebook 4096 --k 128] ' +
      '[--json FILE]',
    flags: {
      run: { type: 'string', help: 'run directory with all five pieces (ctfgen sample --run)' },
      preset: {
        type: 'string',
        default: 'S',
        help: `random weights: baseline and stage-1 preset (${Object.keys(GPT_PRESETS).join(', ')})`,
      },
      auxPreset: { type: 'string', default: 'S', help: 'random weights: auxiliary model preset' },
      tokenizerPreset: {
        type: 'string',
        default: 'S',
        help: `random weights: tokenizer preset (${Object.keys(TOKENIZER_PRESETS).join(', ')})`,
      },
      codebook: { type: 'int', default: 4096, min: 2, help: 'random weights: codebook size V' },
      k: { type: 'int', default: 128, min: 1, help: 'random weights: clusters K' },
      batch: { type: 'int', default: 64, min: 1, help: 'images per timed run' },
      cfg: SAMPLING_FLAGS.cfg,
      temperature: { type: 'number', default: 1, help: 'temperature of both stages (top-k, top-p off)' },
      rounds: { type: 'int', default: 7, min: 1, help: 'measured rounds (each: both methods on both sides)' },
      refineRounds: SAMPLING_FLAGS.refineRounds,
      warmup: { type: 'int', default: 1, min: 0, help: 'unmeasured runs per method and side' },
      check: { type: 'int', default: 8, min: 1, help: 'images of the greedy cross-check' },
      python: { type: 'string', default: '/usr/bin/python3', help: 'Python with torch' },
      torchThreads: { type: 'int', default: 1, min: 1, help: 'torch.set_num_threads of the PyTorch sampler' },
      json: { type: 'string', help: 'also write the report as JSON to this file' },
    },
  },
  async run(f) {
    for (const key of ['preset', 'auxPreset'] as const)
      if (!(String(f[key]) in GPT_PRESETS))
        throw new UsageError(
          `--${key === 'preset' ? 'preset' : 'aux-preset'}: unknown "${String(f[key])}" (known: ` +
          `${Object.keys(GPT_PRESETS).join(', ')})`,
        );
    if (!(String(f['tokenizerPreset']) in TOKENIZER_PRESETS))
      throw new UsageError(`--tokenizer-preset: unknown "${String(f['tokenizerPreset'])}"`);
    if ((f['k'] as number) > (f['codebook'] as number)) throw new UsageError('--k must be ≤ --codebook');
    const run = typeof f['run'] === 'string' ? f['run'] : undefined;
    checkOutputs({
      inputs:
        run === undefined
          ? []
          : Object.values(RUN_LAYOUT).map((name) => ({ role: `${name} (from --run)`, path: join(run, name) })),
      outputs: [typeof f['json'] === 'string' ? { role: '--json', path: f['json'] } : null],
    });
    const report = await runSampleBench(
      {
        run,
        random: {
          tokenizerPreset: String(f['tokenizerPreset']),
          codebook: f['codebook'] as number,
          k: f['k'] as number,
          preset: String(f['preset']) as GptPreset,
          auxPreset: String(f['auxPreset']) as GptPreset,
          numClasses: 10,
          imageSize: 32,
        },
        batch: f['batch'] as number,
        cfg: f['cfg'] as number,
        temperature: f['temperature'] as number,
        rounds: f['rounds'] as number,
        refineRounds: f['refineRounds'] as number,
        warmup: f['warmup'] as number,
        python: String(f['python']),
        torchThreads: f['torchThreads'] as number,
        checkImages: f['check'] as number,
      },
      ['ctfgen', ...process.argv.slice(2)].join(' '),
      (e) => process.stderr.write(e.type === 'round' ? `round ${e.round}/${e.of}: ${e.line}\n` : `${e.line}\n`),
    );
    process.stdout.write(table(report));
    if (typeof f['json'] === 'string') {
      await writeFileAtomic(f['json'], JSON.stringify(report, null, 2) + '\n');
      process.stderr.write(`wrote ${f['json']}\n`);
    }
  },
};
