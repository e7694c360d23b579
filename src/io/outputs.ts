// What a command may write, decided before it starts. Every command names its inputs and outputs once;
// checkOutputs refuses, before any work:
//   - an output that is one of the inputs (the same path, a symlink or a hard link to it), and two outputs that are
//     one file;
//   - an output path that cannot be written: a directory (or a file where a directory is meant), a non-regular file,
//     a parent that is a file or not writable;
//   - an existing checkpoint, train state, tokens or cluster file (an artifact output, or any safetensors file in the
//     way of a report) unless --resume continues it (training commands) or --force replaces it.
// Reports (PNG, JSON, Markdown, .npz) are replaced silently. A training also locks its --out (lockOutput) so two
// processes never train into it at once.
import {
  accessSync, closeSync, constants, openSync, readFileSync, readSync, readdirSync, realpathSync, statSync, unlinkSync,
  writeSync, type Stats,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { CtfError, signalExitCode } from '../errors.js';
import { isProcessAlive } from './atomic.js';

export interface PlannedInput {
  role: string;  // how the user named it: "--tokens", "the tokenizer of --run"
  path: string;
}

export interface PlannedOutput {
  role: string;        // "--out", "the train state beside --out"
  path: string;
  artifact?: boolean;  // a checkpoint, train state, tokens or cluster file: never replaced without --force or --resume
  directory?: boolean; // a directory the command fills (sample --each); `holds` says which names it writes there
  holds?: RegExp;
}

export interface OutputPlan {
  inputs: (PlannedInput | null)[];    // null: an optional input not given
  outputs: (PlannedOutput | null)[];
  force?: boolean;   // --force: existing artifacts are replaced (undefined: the command has no --force)
  resume?: boolean;  // --resume: the run's own artifacts are continued (undefined: the command cannot resume)
}

function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

/** The absolute path with every existing ancestor resolved through symlinks and the missing tail appended. */
export function resolvedPath(path: string): string {
  let head = resolve(path);
  const tail: string[] = [];
  for (;;) {
    try {
      return join(realpathSync(head), ...tail);
    } catch {
      const parent = dirname(head);
      if (parent === head) return resolve(path);
      tail.unshift(basename(head));
      head = parent;
    }
  }
}

function sameFile(a: string, b: string): boolean {
  if (resolvedPath(a) === resolvedPath(b)) return true;
  const sa = statOrNull(a), sb = statOrNull(b);
  return sa !== null && sb !== null && sa.dev === sb.dev && sa.ino === sb.ino;
}

/** True when the file starts like a safetensors file: a u64 header length that fits, then '{'. */
function looksLikeSafetensors(path: string, size: number): boolean {
  if (size < 10) return false;
  const head = Buffer.alloc(9);
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    if (readSync(fd, head, 0, 9, 0) < 9) return false;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  const n = head.readBigUInt64LE(0);
  return n >= 2n && n <= BigInt(size - 8) && head[8] === 0x7b;
}

/** The output's parent must be a directory we may create files in, or creatable under one. */
function checkParent(o: PlannedOutput): void {
  let dir = dirname(resolve(o.path));
  let s = statOrNull(dir);
  while (s === null && dirname(dir) !== dir) {
    dir = dirname(dir);
    s = statOrNull(dir);
  }
  if (s === null) throw new CtfError(`${o.role} ${o.path}: no existing directory above it`);
  if (!s.isDirectory()) throw new CtfError(`${o.role} ${o.path}: ${dir} is a file, so nothing can be written below it`);
  try {
    accessSync(dir, constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new CtfError(`${o.role} ${o.path}: cannot create files in ${dir} (${code})`);
  }
}

function checkShape(o: PlannedOutput, s: Stats | null): void {
  const at = `${o.role} ${o.path}`;
  if (o.directory) {
    if (s !== null && !s.isDirectory()) throw new CtfError(`${at} is a file; expected a directory to write into`);
  } else if (s?.isDirectory()) throw new CtfError(`${at} is a directory; expected the path of a file to write`);
  else if (s !== null && !s.isFile())
    throw new CtfError(`${at} exists and is not a regular file; refusing to replace it`);
}

function checkNotInput(o: PlannedOutput, inputs: PlannedInput[]): void {
  for (const i of inputs) {
    const clash = o.directory
      ? o.holds !== undefined && o.holds.test(basename(i.path)) && sameFile(dirname(resolvedPath(i.path)), o.path)
      : sameFile(o.path, i.path);
    if (!clash) continue;
    const written = o.directory ? `${o.path}/${basename(i.path)}` : o.path;
    throw new CtfError(`${o.role} ${written} is the input ${i.role} ${i.path}: ` +
      'a command never writes over what it reads; choose another output path');
  }
}

function checkReplace(o: PlannedOutput, s: Stats | null, plan: OutputPlan): void {
  if (s === null || o.directory || plan.force) return;
  if (o.artifact && plan.resume) return;
  if (!o.artifact && !looksLikeSafetensors(o.path, s.size)) return;
  const what = o.artifact ? 'exists'
    : 'exists and holds a safetensors file (a checkpoint, train state, tokens or cluster file)';
  const how = plan.resume !== undefined ? 'pass --resume to continue its run, or --force to replace it'
    : plan.force !== undefined ? 'pass --force to replace it' : 'remove it first, or choose another path';
  throw new CtfError(`${o.role} ${o.path} ${what}; ${how}`);
}

/** Throws a CtfError naming the output, and the input it clashes with, unless every output may be written. */
export function checkOutputs(plan: OutputPlan): void {
  const inputs = plan.inputs.filter((i): i is PlannedInput => i !== null);
  const outputs = plan.outputs.filter((o): o is PlannedOutput => o !== null);
  outputs.forEach((o, k) => {
    const s = statOrNull(o.path);
    checkShape(o, s);
    checkParent(o);
    checkNotInput(o, inputs);
    const twin = outputs.slice(0, k).find((p) => !p.directory && !o.directory && sameFile(p.path, o.path));
    if (twin)
      throw new CtfError(`${o.role} ${o.path} and ${twin.role} ${twin.path} are the same file; give them other paths`);
    checkReplace(o, s, plan);
  });
}

/** Existing snapshots of a training's checkpoint (<out>.step<N>.safetensors), as artifact outputs. */
export function existingSnapshots(out: string, role: string): PlannedOutput[] {
  const base = basename(out).replace(/(\.safetensors)?$/, '');
  const re = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.step\\d+\\.safetensors$`);
  let names: string[];
  try {
    names = readdirSync(dirname(out));
  } catch {
    return [];
  }
  return names.filter((n) => re.test(n))
    .map((n) => ({ role: `a snapshot of ${role}`, path: join(dirname(out), n), artifact: true }));
}

export interface OutputLock {
  path: string;
  release(): void;
}

/** <out>.lock: the PID of the process training into <out>. */
export function lockPath(out: string): string {
  return `${out}.lock`;
}

function lockHolder(path: string): number | null {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/**
 * Takes <out>.lock (created with O_EXCL, holding our PID) so no other process trains into `out` meanwhile. A lock of
 * a dead process is stale and replaced. Released by release(), and on any exit of the process, including a signal
 * that arrives while nothing else handles it (then the process exits 128 + the signal's number, as it would have).
 * The parent directory must exist.
 */
export function lockOutput(out: string, role = '--out'): OutputLock {
  const path = lockPath(out);
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST')
        throw new CtfError(`${role} ${out}: cannot create the lock ${path} (${code ?? String(e)})`);
      const pid = lockHolder(path);
      // An unreadable or empty lock may be one another process has just created and not yet written.
      const age = Date.now() - (statOrNull(path)?.mtimeMs ?? 0);
      const stale = pid !== null ? !isProcessAlive(pid) : age > 10_000;
      if (!stale || attempt >= 2)
        throw new CtfError(`${role} ${out} is being written by another process${pid === null ? '' : ` (PID ${pid})`}` +
          `: its lock ${path} is held; wait for it to finish, or stop it (if no such process runs, remove the lock)`);
      try { unlinkSync(path); } catch { /* another process removed it first */ }
      continue;
    }
    try {
      writeSync(fd, `${process.pid}\n`);
    } finally {
      closeSync(fd);
    }
    break;
  }
  let held = true;
  const onExit = (): void => release();
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  // Our handler replaces the default action (exit); when it is the only one, it keeps that action.
  const onSignal = (s: NodeJS.Signals): void => {
    if (process.listenerCount(s) === 1) process.exit(signalExitCode(s));
  };
  function release(): void {
    if (!held) return;
    held = false;
    process.off('exit', onExit);
    for (const s of signals) process.off(s, onSignal);
    if (lockHolder(path) === process.pid) {
      try { unlinkSync(path); } catch { /* already gone */ }
    }
  }
  process.on('exit', onExit);
  for (const s of signals) process.on(s, onSignal);
  return { path, release };
}
