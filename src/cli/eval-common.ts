// Pieces every `ctfgen eval …` command shares: the metrics line, the report writer, the classifier summary and the
// real split's features (cached beside the classifier).
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Dataset } from '../data/dataset.js';
import type { LoadedClassifier } from '../eval/classifier.js';
import type { SampleQuality } from '../eval/evaluate.js';
import { referenceFeatures, loadClassifierSplit, type ReferenceFeatures } from '../eval/reference.js';
import { writeFileAtomic } from '../io/atomic.js';
import { checkOutputs, type PlannedInput } from '../io/outputs.js';
import type { ParsedFlags } from './args.js';
import { Progress } from './progress.js';

export const log = (s: string): void => { process.stderr.write(s + '\n'); };
export const command = (): string => ['ctfgen', ...process.argv.slice(2)].join(' ');

export function metricsLine(m: SampleQuality): string {
  return (
    `FID ${m.fid.toFixed(3)}  IS ${m.isMean.toFixed(3)} ± ${m.isStd.toFixed(3)}  precision ${m.precision.toFixed(4)} ` +
    ` recall ${m.recall.toFixed(4)}` +
    (m.classAccuracy !== null ? `  class accuracy ${(100 * m.classAccuracy).toFixed(2)}%` : '') +
    `  (${m.images} images)`
  );
}

/** --out of a report-only command (eval real, eval recon), checked before any work. */
export function checkReportOut(f: ParsedFlags, inputs: PlannedInput[]): void {
  checkOutputs({ inputs, outputs: [typeof f['out'] === 'string' ? { role: '--out', path: f['out'] } : null] });
}

/** The report to --out (atomically) and, with --json, to stdout. */
export async function writeReport(f: ParsedFlags, report: object): Promise<void> {
  if (typeof f['out'] === 'string') {
    await mkdir(dirname(f['out']), { recursive: true });
    await writeFileAtomic(f['out'], JSON.stringify(report, null, 2) + '\n');
  }
  if (f['json']) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
}

export function classifierSummary(c: LoadedClassifier): Record<string, unknown> {
  const e = c.metadata['eval'] ? (JSON.parse(c.metadata['eval']) as { accuracy?: number }) : null;
  return {
    path: c.path,
    hash: c.hash,
    featureDim: c.model.config.featureDim,
    testAccuracy: e?.accuracy ?? null,
    config: c.model.config,
  };
}

/**
 * A split of the classifier's dataset and its features (cached beside the classifier), with a progress bar when
 * computed.
 */
export async function reference(
  c: LoadedClassifier,
  split: 'test' | 'train',
): Promise<ReferenceFeatures & { dataset: Dataset }> {
  const dataset = await loadClassifierSplit(c, split);
  let progress: Progress | null = null;
  const r = await referenceFeatures(c, split, {
    dataset,
    onBatch: (done, total) =>
      (progress ??= new Progress({ label: `${split} features`, total, unit: 'img' })).update(done),
  });
  (progress as Progress | null)?.finish(); // assigned in the callback
  log(
    `${split} split: ${r.features.n} images of ${r.data.name}, features ${r.cached ? 'read from' : 'cached in'} ` +
    `${r.cache}`,
  );
  return { ...r, dataset };
}
