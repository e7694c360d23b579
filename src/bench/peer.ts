// A benchmark worker in a child process, driven by JSON lines over stdin/stdout: ours (worker.ts) and the
// PyTorch peer (bench/torch_peer.py) speak the same protocol, so the orchestrator can alternate them and
// each reports its own timings and peak memory, undisturbed by the other.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface, type Interface } from 'node:readline';
import { CtfError } from '../errors.js';
import { applyBlasThreadTimeout } from '../engine/blas-env.js';
import { blasInfo } from '../engine/native.js';

export interface PeerInfo {
  impl: string;
  version: string;
  corename: string;
  blasThreads: number;
  threads: number;
  peakRssMb: number;
}

export class Peer {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly lines: Interface;
  private readonly pending: ((line: string) => void)[] = [];
  private stderr = '';
  private exited: string | null = null;

  constructor(readonly label: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
    applyBlasThreadTimeout();  // both sides of a benchmark under the same OpenBLAS setting
    this.proc = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr.on('data', (d: Buffer) => { this.stderr = (this.stderr + d.toString()).slice(-4000); });
    this.proc.on('exit', (code, sig) => {
      this.exited = `exited with ${code ?? sig}`;
      for (const p of this.pending.splice(0)) p('');
    });
    this.proc.on('error', (e) => { this.exited = e.message; for (const p of this.pending.splice(0)) p(''); });
    this.lines = createInterface({ input: this.proc.stdout });
    this.lines.on('line', (line) => this.pending.shift()?.(line));
  }

  /** Sends one command and waits for its one-line JSON answer. */
  async call<T>(msg: Record<string, unknown>): Promise<T> {
    if (this.exited !== null) throw new CtfError(`${this.label}: worker ${this.exited}\n${this.stderr}`);
    const answer = new Promise<string>((resolve) => this.pending.push(resolve));
    this.proc.stdin.write(JSON.stringify(msg) + '\n');
    const line = await answer;
    if (line === '') throw new CtfError(`${this.label}: worker ${this.exited ?? 'closed its output'}\n${this.stderr}`);
    const reply = JSON.parse(line) as T & { error?: string };
    if (reply.error !== undefined) throw new CtfError(`${this.label}: ${reply.error}`);
    return reply;
  }

  async close(): Promise<void> {
    if (this.exited === null) {
      const done = new Promise((r) => this.proc.once('exit', r));
      this.proc.stdin.end(JSON.stringify({ cmd: 'exit' }) + '\n');
      await done;
    }
    this.lines.close();
  }
}

/** Serves the protocol in a worker process: setup(case) then run(n) → per-step ms, info → PeerInfo. */
export async function serve(handlers: {
  setup: (caseName: string, config: Record<string, unknown>) => void;
  step: () => void;
  info: () => PeerInfo;
}): Promise<void> {
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (line.trim() === '') continue;
    const msg = JSON.parse(line) as { cmd: string; case?: string; config?: Record<string, unknown>; n?: number };
    let reply: Record<string, unknown>;
    try {
      if (msg.cmd === 'exit') break;
      if (msg.cmd === 'setup') { handlers.setup(msg.case!, msg.config!); reply = { ok: true }; }
      else if (msg.cmd === 'run') {
        const ms: number[] = [];
        for (let i = 0; i < (msg.n ?? 1); i++) {
          const t0 = process.hrtime.bigint();
          handlers.step();
          ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
        reply = { ms };
      } else if (msg.cmd === 'info') reply = { ...handlers.info() };
      else reply = { error: `unknown command ${msg.cmd}` };
    } catch (e) {
      reply = { error: e instanceof Error ? e.message : String(e) };
    }
    process.stdout.write(JSON.stringify(reply) + '\n');
  }
}

/** Peak resident set size of this process in MiB (VmHWM). */
export function peakRssMb(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) / 1024 : process.memoryUsage().rss / 2 ** 20;
  } catch {
    return process.memoryUsage().rss / 2 ** 20;
  }
}

/** What one of our bench workers reports about itself: the BLAS kernel and threads it runs with, its peak memory. */
export function ctfgenPeerInfo(): PeerInfo {
  const b = blasInfo();
  return {
    impl: 'ctfgen', version: process.version, corename: b.corename, blasThreads: b.threads, threads: b.threads,
    peakRssMb: peakRssMb(),
  };
}
