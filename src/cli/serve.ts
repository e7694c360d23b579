// `ctfgen serve`: the web demo for a run (src/serve). Flags -> server options, the address and warnings on stderr;
// Ctrl-C closes the server and exits 130 (SIGTERM 143) like every command stopped by a signal.
import { isIP } from 'node:net';
import { Interrupted } from '../errors.js';
import { LOOPBACK_HOSTS, createDemoServer } from '../serve/server.js';
import { requireString } from './args.js';
import type { Command } from './main.js';

const log = (s: string): void => { process.stderr.write(s + '\n'); };

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

export const serveCommand: Command = {
  spec: {
    name: 'serve',
    brief: 'the web demo: watch a run generate in the browser (and its JSON API)',
    summary: 'The web demo: a page that samples a run\'s models in the browser (CTF and the baseline side by side,\n' +
      'stage 1 streamed token by token, the "why it works" view) and its JSON API (POST /api/generate,\n' +
      'GET /api/info). Sampling runs on a thread of its own, one request at a time; a bounded queue answers\n' +
      '429 + Retry-After when full.',
    usage: 'ctfgen serve --run DIR [--host 127.0.0.1] [--port 7860] [options]',
    flags: {
      run: { type: 'string', help: 'run directory (e.g. runs/demo from `npm run demo`; required)' },
      host: { type: 'string', default: '127.0.0.1', help: 'address to listen on (not loopback: others can reach it)' },
      port: { type: 'int', default: 7860, min: 0, help: 'port (0 = any free one)' },
      queue: { type: 'int', default: 8, min: 0, help: 'requests that may wait while one samples; more get 429' },
      maxImages: { type: 'int', default: 16, min: 1, help: 'images per request' },
      maxRounds: { type: 'int', default: 8, min: 1, help: 'stage-2 rounds per request (with a masked-refinement aux)' },
      quiet: { type: 'boolean', help: 'no line per API request' },
    },
  },
  async run(f) {
    const run = requireString(f, 'run');
    const host = String(f['host']);
    const loopback = isLoopback(host);
    if (!loopback)
      log(`warning: --host ${host} makes the demo reachable from other machines. It has no authentication: ` +
        'anyone who can reach this port can use this machine\'s CPU. Keep the default 127.0.0.1 unless you mean that.');
    const t0 = performance.now();
    const server = await createDemoServer({
      run, queue: f['queue'] as number, maxImages: f['maxImages'] as number, maxRounds: f['maxRounds'] as number,
      hosts: loopback ? LOOPBACK_HOSTS : null, log: f['quiet'] ? undefined : log,
    });
    const address = await server.app.listen({ host, port: f['port'] as number });
    const i = server.info;
    log(`ctfgen serve: ${i.methods.join(' and ')} of ${run} (${i.classNames.length} classes, V = ${i.v}` +
      `${i.k ? `, K = ${i.k}` : ''}) loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    log(`listening on ${address}/ — open it in a browser; Ctrl-C stops`);
    const signal = await new Promise<string>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    });
    await server.close();
    throw new Interrupted(signal, `stopped by ${signal}`);
  },
};
