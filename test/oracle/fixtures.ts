// Locates and loads the golden files written by oracle/make_fixtures.py (`npm run oracle`).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expectTensor, loadSafetensorsSync, type SafetensorsFile } from '../../src/io/safetensors.js';
import type { Tensor } from '../../src/engine/tensor.js';

/** test/fixtures/<name>, found from either test/oracle (tsx) or dist/test/oracle (compiled). */
export function fixturePath(name: string): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'test', 'fixtures');
    if (existsSync(join(dir, 'package.json')) && existsSync(p)) return join(p, name);
    dir = dirname(dir);
  }
  throw new Error(`test/fixtures not found above ${fileURLToPath(import.meta.url)}`);
}

export function loadFixture(name: string): SafetensorsFile {
  return loadSafetensorsSync(fixturePath(name));
}

/** A fixture tensor by name (a clear error naming the file if it is missing). */
export function fx(file: SafetensorsFile, name: string): Tensor {
  return expectTensor(file, name);
}
