// One step of a pipeline, a `ctfgen` command, whoever drives the pipeline (`ctfgen demo`, the experiment scripts
// through `ctfgen step`). The rules, once:
//   - done: each of its `done` files (and its stdout file) exists, and the driver does not ask to redo it → skipped;
//   - an unfinished training continues: when the train state of `resumes` (its checkpoint) exists, --resume is added;
//   - redone over old outputs: a command that takes --force gets it (the driver decided its outputs are stale);
//   - exit 0 finished; 130 / 143 stopped by a signal after saving: not finished, the next run continues it; other
//     codes failed;
//   - every attempt appends {step, seconds, exit, endedAt} to <records>/attempts.jsonl, a finished one
//     {step, command, seconds, finishedAt, threads} to <records>/times.jsonl (experiments/*.mjs read both).
// A signal that reaches the driver is passed on to the command (its own process group, so it gets it once), which
// saves and stops; the driver is told, and stops after it.
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signalExitCode } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { trainStatePath } from '../io/run-dir.js';

export interface Stage {
  name: string;
  args: string[];       // ctfgen arguments
  done: string[];       // files that exist once it has finished (written last, or only at the end)
  resumes?: string;     // the checkpoint of a training: its train state means an interrupted run to continue
  force?: boolean;      // the command takes --force (it writes checkpoints, tokens or clusters)
  stdoutTo?: string;    // its stdout goes to this file, written once the command finished
}

export type StageStatus = 'skipped' | 'finished' | 'stopped' | 'failed';

export interface StageOutcome {
  status: StageStatus;
  args: string[];             // what ran (with --resume or --force); the stage's own for a skipped one
  exit: number;               // 0 for a skipped one
  seconds: number;            // of this attempt, whole seconds
  stdout: string;             // captured when stdoutTo is set
  signal: string | null;      // a signal the driver received meanwhile (it was passed on)
}

export type StageEvent =
  | { type: 'skip'; stage: Stage }
  | { type: 'run'; stage: Stage; args: string[] }
  | { type: 'end'; stage: Stage; outcome: StageOutcome };

/** Runs `ctfgen args`; resolves to its exit code (128 + n when a signal ended it) and stdout when captured. */
export type CtfgenExec = (args: string[], o: {
  captureStdout: boolean;
  onSpawn: (kill: (s: NodeJS.Signals) => void) => void;  // how to pass a signal on to the command
}) => Promise<{ code: number; stdout: string }>;

export interface StageRunOptions {
  records: string;            // directory of times.jsonl and attempts.jsonl
  redo?: boolean;             // run it even when done, anew (no --resume)
  exec?: CtfgenExec;          // default: this build's ctfgen in a child process
  emit?: (e: StageEvent) => void;
  threads?: string;           // recorded in times.jsonl (default: $OPENBLAS_NUM_THREADS or "default")
}

/** A command line as the records show it: `ctfgen` and the arguments, space-separated. */
export const commandLine = (args: readonly string[]): string => ['ctfgen', ...args].join(' ');

/** The arguments a stage runs with now, or null when it is done. */
export function stageArgs(stage: Stage, redo = false): string[] | null {
  const done = [...stage.done, ...(stage.stdoutTo !== undefined ? [stage.stdoutTo] : [])];
  if (!redo && done.every((f) => existsSync(f))) return null;
  const state = stage.resumes !== undefined && existsSync(trainStatePath(stage.resumes));
  if (!redo && state) return [...stage.args, '--resume'];
  const stale = done.some((f) => existsSync(f)) || state || (stage.resumes !== undefined && existsSync(stage.resumes));
  return stage.force && stale ? [...stage.args, '--force'] : stage.args;
}

const MAIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));

/** This build's ctfgen, in its own process group (a signal to the driver's group reaches it once, passed on). */
export const ctfgenExec: CtfgenExec = (args, o) => new Promise((resolve, reject) => {
  const child = spawn(process.execPath, [MAIN, ...args],
    { stdio: ['ignore', o.captureStdout ? 'pipe' : 'inherit', 'inherit'], detached: true });
  o.onSpawn((s) => { child.kill(s); });
  let stdout = '';
  child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.on('error', reject);
  child.on('close', (code, signal) => resolve({ code: code ?? signalExitCode(signal ?? 'SIGTERM'), stdout }));
});

const isoSeconds = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

/** Runs a stage unless it is done; records the attempt. Never throws on the command's exit: see the outcome. */
export async function runStage(stage: Stage, o: StageRunOptions): Promise<StageOutcome> {
  const args = stageArgs(stage, o.redo);
  if (args === null) {
    o.emit?.({ type: 'skip', stage });
    return { status: 'skipped', args: stage.args, exit: 0, seconds: 0, stdout: '', signal: null };
  }
  o.emit?.({ type: 'run', stage, args });
  let signal: string | null = null, kill: ((s: NodeJS.Signals) => void) | null = null;
  const pass = (s: NodeJS.Signals): void => { signal ??= s; kill?.(s); };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, pass);
  const t0 = Date.now();
  let r: { code: number; stdout: string };
  try {
    r = await (o.exec ?? ctfgenExec)(args, { captureStdout: stage.stdoutTo !== undefined, onSpawn: (k) => {
      kill = k;
      if (signal !== null) k(signal as NodeJS.Signals);
    } });
  } finally {
    for (const s of signals) process.off(s, pass);
  }
  const seconds = Math.round((Date.now() - t0) / 1000);
  // Every attempt's time, finished or not, so a resumed stage's total is the sum of its attempts.
  appendFileSync(join(o.records, 'attempts.jsonl'),
    JSON.stringify({ step: stage.name, seconds, exit: r.code, endedAt: isoSeconds() }) + '\n');
  const status: StageStatus = r.code === 0 ? 'finished' : r.code === 130 || r.code === 143 ? 'stopped' : 'failed';
  if (status === 'finished') {
    if (stage.stdoutTo !== undefined) await writeFileAtomic(stage.stdoutTo, r.stdout);
    const threads = o.threads ?? process.env['OPENBLAS_NUM_THREADS'] ?? 'default';
    appendFileSync(join(o.records, 'times.jsonl'), JSON.stringify({
      step: stage.name, command: commandLine(args), seconds, finishedAt: isoSeconds(), threads,
    }) + '\n');
  }
  const outcome: StageOutcome = { status, args, exit: r.code, seconds, stdout: r.stdout, signal };
  o.emit?.({ type: 'end', stage, outcome });
  return outcome;
}

export interface StageRecord { step: string; command: string; seconds: number; finishedAt: string; threads?: string }

/** The last finished record of each stage in <records>/times.jsonl (torn or foreign lines are skipped). */
export function finishedStages(records: string): Map<string, StageRecord> {
  const out = new Map<string, StageRecord>();
  let text = '';
  try {
    text = readFileSync(join(records, 'times.jsonl'), 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    try {
      const r = JSON.parse(line) as Partial<StageRecord>;
      if (typeof r.step === 'string' && typeof r.command === 'string' && typeof r.seconds === 'number')
        out.set(r.step, r as StageRecord);
    } catch { /* a torn or empty line */ }
  }
  return out;
}

/** True when a record was made by this stage's command (as given, continued with --resume or redone with --force). */
export function recordedAs(record: StageRecord, stage: Stage): boolean {
  return ['', ' --resume', ' --force'].some((extra) => commandLine(stage.args) + extra === record.command);
}
