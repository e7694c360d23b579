// `ctfgen step NAME --done FILE [--resumes CKPT] [--stdout-to FILE] --records DIR -- ARGS…`: one step of an
// experiment script, run by the stage runner (src/run/stage.ts) with its rules: skipped when FILE exists, continued
// with --resume when CKPT's train state exists, its time recorded in DIR/times.jsonl and DIR/attempts.jsonl. Exits
// with the command's code (0 when skipped), so a script under `set -e` stops on a stop (130/143) or a failure.
import { Interrupted } from '../errors.js';
import { runStage, commandLine, type StageEvent } from '../run/stage.js';
import { UsageError, requireString } from './args.js';
import type { Command } from './main.js';

/** The experiment scripts' log line: [TAG HH:MM:SS] message. */
function logLine(tag: string, message: string): void {
  process.stderr.write(`[${tag} ${new Date().toTimeString().slice(0, 8)}] ${message}\n`);
}

export const stepCommand: Command = {
  spec: {
    name: 'step',
    brief: 'one step of an experiment script: skipped when done, resumed when interrupted, timed',
    summary: 'Runs `ctfgen ARGS` as one step of a resumable script: skipped when --done exists; with --resume\n' +
      'added when the train state of --resumes exists; every attempt appended to DIR/attempts.jsonl, a finished\n' +
      'one to DIR/times.jsonl. Exits with the command\'s code: 130/143 (stopped after saving) and failures are not ' +
      'finished.',
    usage: 'ctfgen step NAME --done FILE [--resumes CKPT] [--stdout-to FILE] --records DIR -- ARGS…',
    positionals: ['name', 'args…'],
    flags: {
      done: { type: 'string', help: 'the file that exists once the step has finished (required)' },
      resumes: { type: 'string', help: 'the checkpoint of a training step: continue it when its train state exists' },
      stdoutTo: { type: 'string', help: 'write the command\'s stdout to this file once it has finished' },
      records: { type: 'string', help: 'directory of times.jsonl and attempts.jsonl (required)' },
      logTag: { type: 'string', default: 'experiment', help: 'the tag of the log lines' },
    },
  },
  async run(f, positionals) {
    const [name, ...args] = positionals;
    if (name === undefined || args.length === 0)
      throw new UsageError('expected a step name, then -- and the ctfgen arguments');
    const done = requireString(f, 'done'), records = requireString(f, 'records'), tag = String(f['logTag']);
    const emit = (e: StageEvent): void => {
      if (e.type === 'skip') logLine(tag, `${name}: done before (${done})`);
      else if (e.type === 'run') logLine(tag, `${name}: ${commandLine(e.args)}`);
      else if (e.outcome.status === 'finished') logLine(tag, `${name}: finished in ${e.outcome.seconds} s`);
      else logLine(tag, `${name}: not finished (exit ${e.outcome.exit})`);
    };
    const o = await runStage({
      name, args, done: [done],
      ...(typeof f['resumes'] === 'string' ? { resumes: f['resumes'] } : {}),
      ...(typeof f['stdoutTo'] === 'string' ? { stdoutTo: f['stdoutTo'] } : {}),
    }, { records, emit });
    if (o.status === 'stopped')
      throw new Interrupted(o.exit === 143 ? 'SIGTERM' : 'SIGINT', `${name}: stopped; run again to continue`);
    return o.exit;
  },
};
