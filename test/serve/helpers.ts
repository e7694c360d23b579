// What the serve tests share: one tiny run per test file (`ctfgen demo --profile tiny`, seconds), a server on a
// free loopback port, and raw HTTP requests that send the path exactly as written (fetch would normalise `..`).
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDemoServer, type DemoServer, type ServeOptions } from '../../src/serve/server.js';

export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** A tiny CTF run (every checkpoint of both methods) in a new temporary directory; returns [dir, run]. */
export function makeTinyRun(prefix: string): [string, string] {
  const dir = mkdtempSync(join(tmpdir(), prefix)), run = join(dir, 'run');
  const r = spawnSync(process.execPath, [CLI, 'demo', '--profile', 'tiny', '--run', run], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ctfgen demo --profile tiny failed (exit ${r.status}):\n${r.stderr}`);
  return [dir, run];
}

export async function startServer(o: ServeOptions): Promise<{ server: DemoServer; base: string; port: number }> {
  const server = await createDemoServer(o);
  const base = await server.app.listen({ host: '127.0.0.1', port: 0 });
  return { server, base, port: Number(new URL(base).port) };
}

export interface RawResponse {
  status: number; headers: Record<string, string | string[] | undefined>; text: string; json: unknown;
}

/** One HTTP request with the path sent verbatim; resolves with the whole answer. */
export function raw(port: number, method: string, path: string,
  o: { body?: string | Buffer; headers?: Record<string, string> } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: o.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown = undefined;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

/** POST with a JSON content type; a string body is sent as it is (for malformed JSON). */
export function postJson(port: number, path: string, body: unknown,
  headers: Record<string, string> = {}): Promise<RawResponse> {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return raw(port, 'POST', path, { body: text, headers: { 'content-type': 'application/json', ...headers } });
}
