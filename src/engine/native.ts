// Loads the C++ addon, checks sgemm against a naive product, and hands out kernels by name.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CtfError } from '../errors.js';
import { applyBlasThreadTimeout } from './blas-env.js';

type AnyKernel = (...args: unknown[]) => unknown;

function findAddon(): string {
  // dist/src/engine/native.js -> package root is three levels up; src/engine/native.ts (tsx) is two.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'build', 'Release', 'ctfgen_native.node');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  throw new CtfError('native addon build/Release/ctfgen_native.node not found: run `npm run setup` (installs ' +
    'OpenBLAS and builds the addon)');
}

function load(): Record<string, AnyKernel> {
  applyBlasThreadTimeout();  // before OpenBLAS is loaded with the addon (blas-env.ts says why)
  const path = findAddon();
  const addon = createRequire(import.meta.url)(path) as Record<string, AnyKernel>;
  const err = (addon['sgemmSelfCheck'] as () => number)();
  if (!(err < 1e-5)) {
    const info = (addon['blasInfo'] as () => { corename: string; config: string })();
    throw new CtfError(
      `OpenBLAS sgemm self-check failed: relative error ${err} against a float64 naive product (kernel ` +
      `${info.corename}, ${info.config}). ` +
        'Refusing to run on wrong matrix products; try setting OPENBLAS_CORETYPE=Haswell.',
    );
  }
  return addon;
}

const addon = load();

/** Per-kernel call counts and total milliseconds, collected when CTFGEN_PROFILE=1 is set at start-up. */
export const kernelProfile = new Map<string, { calls: number; ms: number }>();
const profiling = process.env['CTFGEN_PROFILE'] === '1';

function profiled(name: string, k: AnyKernel): AnyKernel {
  const entry = { calls: 0, ms: 0 };
  kernelProfile.set(name, entry);
  return (...args: unknown[]) => {
    const t0 = performance.now();
    const r = k(...args);
    entry.ms += performance.now() - t0;
    entry.calls++;
    return r;
  };
}

/** A native kernel by name, typed by the caller. Throws if the addon lacks it (stale build). */
export function kernel<F>(name: string): F {
  const k = addon[name];
  if (typeof k !== 'function')
    throw new CtfError(`native kernel "${name}" missing from the addon: rebuild with \`npm run setup\``);
  return (profiling ? profiled(name, k) : k) as unknown as F;
}

/** The profile as rows sorted by total time (empty unless CTFGEN_PROFILE=1). */
export function profileReport(): string {
  const rows = [...kernelProfile].filter(([, e]) => e.calls > 0).sort((a, b) => b[1].ms - a[1].ms);
  const total = rows.reduce((s, [, e]) => s + e.ms, 0);
  return rows.map(([n, e]) => `${n.padEnd(28)} ${e.calls.toString().padStart(8)} calls ` +
    `${e.ms.toFixed(1).padStart(9)} ms ${((100 * e.ms) / total).toFixed(1).padStart(5)}%`).join('\n');
}

export interface BlasInfo { corename: string; threads: number; config: string }
export const blasInfo = kernel<() => BlasInfo>('blasInfo');
export const blasSetThreads = kernel<(n: number) => void>('blasSetThreads');
