import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEFAULT_BLAS_THREAD_TIMEOUT } from '../../src/engine/blas-env.js';

// A fresh process per case: OpenBLAS reads the variable once, when the addon loads it.
const NATIVE = fileURLToPath(new URL('../../src/engine/native.js', import.meta.url));
function timeoutAfterLoad(env: NodeJS.ProcessEnv): string {
  const code = `await import(${JSON.stringify(NATIVE)}); console.log(process.env.OPENBLAS_THREAD_TIMEOUT);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

test('loading the addon sets a short OpenBLAS thread timeout unless the user set one', () => {
  const { OPENBLAS_THREAD_TIMEOUT: _, ...rest } = process.env;
  assert.equal(timeoutAfterLoad(rest), DEFAULT_BLAS_THREAD_TIMEOUT);
  assert.equal(timeoutAfterLoad({ ...rest, OPENBLAS_THREAD_TIMEOUT: '8' }), '8');
});
