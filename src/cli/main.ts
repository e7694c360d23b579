#!/usr/bin/env node
// The `ctfgen` command: finds the subcommand, parses its flags, renders events. No numerics here.
import { readFileSync } from 'node:fs';
import { CtfError, Interrupted, systemErrorMessage } from '../errors.js';
import { UsageError, helpText, parseCommand, type CommandSpec, type ParsedFlags } from './args.js';
import { closest } from './suggest.js';
import { abortJobOnUncaughtErrors, isMultiRank, launchedWorld, rankTag } from '../parallel/index.js';
import { benchEngineCommand } from './bench.js';
import { benchSampleCommand } from './bench-sample.js';
import { clusterCommand, clusterSwapDemoCommand } from './cluster.js';
import { dataInfoCommand } from './data.js';
import { demoCommand } from './demo.js';
import { evalCommands } from './eval.js';
import { plotCommands } from './plot.js';
import { sampleCommand } from './sample.js';
import { serveCommand } from './serve.js';
import { stepCommand } from './step.js';
import { tokenizerCommands } from './tokenizer.js';
import { trainCommands } from './train.js';

/** run() resolves to the exit code, or nothing for 0. */
export interface Command {
  spec: CommandSpec;
  run: (flags: ParsedFlags, positionals: string[]) => Promise<number | void>;
}

const COMMANDS: Command[] = [
  benchEngineCommand,
  benchSampleCommand,
  dataInfoCommand,
  ...tokenizerCommands,
  clusterCommand,
  clusterSwapDemoCommand,
  ...trainCommands,
  sampleCommand,
  serveCommand,
  demoCommand,
  stepCommand,
  ...evalCommands,
  ...plotCommands,
];

/** The commands that split their work over the ranks of `mpirun -np N` (docs/mpi.md); the others run as one process. */
const MULTI_RANK = new Set(['sample', 'eval', 'tokenizer train', ...trainCommands.map((c) => c.spec.name)]);

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

function overview(): string {
  const rows = COMMANDS.filter((c) => !c.spec.hidden).map((c) => `  ctfgen ${c.spec.name.padEnd(22)} ${c.spec.brief}`);
  return `ctfgen ${version()} — coarse-to-fine autoregressive image generation on a CPU\n\nUsage: ctfgen <command> ` +
    `[options]\n\nCommands:\n${rows.join('\n')}\n\nRun \`ctfgen <command> --help\` for a command's options.\n`;
}

/**
 * What to say for a command line that names no command: a group's commands ("ctfgen train" → its three kinds), or
 * the closest command name, with its usage.
 */
function unknownCommand(argv: string[]): string {
  const group = COMMANDS.filter((c) => c.spec.name.startsWith(`${argv[0]} `) && !c.spec.hidden);
  if (group.length > 0 && !COMMANDS.some((c) => c.spec.name === argv[0]))
    return `ctfgen ${argv[0]}: which ` +
      `one?\n${group.map((c) => `  ctfgen ${c.spec.name.padEnd(22)} ${c.spec.brief}`).join('\n')}\n`;
  const names = COMMANDS.map((c) => c.spec.name), typed = argv.slice(0, 2).join(' ');
  const guess = closest(typed, names) ?? closest(argv[0] ?? '', names);
  const hint = guess
    ? `did you mean \`ctfgen ${guess}\`?\nUsage: ${COMMANDS.find((c) => c.spec.name === guess)!.spec.usage}\n`
    : 'Run `ctfgen --help` for the list of commands.\n';
  return `ctfgen: unknown command "${typed}"; ${hint}`;
}

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    process.stdout.write(overview());
    return argv.length === 0 ? 2 : 0;
  }
  if (argv[0] === '--version' || argv[0] === '-v') { process.stdout.write(version() + '\n'); return 0; }
  // Longest matching command name ("bench engine" before "bench").
  const cmd = [...COMMANDS]
    .sort((a, b) => b.spec.name.split(' ').length - a.spec.name.split(' ').length)
    .find((c) => c.spec.name.split(' ').every((w, i) => argv[i] === w));
  if (!cmd) {
    process.stderr.write(unknownCommand(argv));
    return 2;
  }
  const rest = argv.slice(cmd.spec.name.split(' ').length);
  if (isMultiRank() && !MULTI_RANK.has(cmd.spec.name)) {
    if (launchedWorld()?.rank === 0)
      process.stderr.write(
        `ctfgen ${cmd.spec.name}: runs as one process, not as ${launchedWorld()?.size ?? 'several'} MPI ` +
          'ranks; under mpirun only ctfgen sample, eval, train and tokenizer train split their work\n',
      );
    return 2;
  }
  const who = `ctfgen ${cmd.spec.name}${rankTag()}`;  // several ranks print: say which one
  try {
    const { flags, positionals } = parseCommand(cmd.spec, rest);
    if (flags['help']) { process.stdout.write(helpText(cmd.spec)); return 0; }
    if (!cmd.spec.positionals && positionals.length > 0) {
      const subs = COMMANDS.filter((c) => c.spec.name.startsWith(cmd.spec.name + ' ')).map((c) => c.spec.name);
      const hint = subs.length ? ` (subcommands: ${subs.join(', ')})` : '';
      throw new UsageError(`unexpected argument "${positionals[0]}": this command takes flags only${hint}`);
    }
    return (await cmd.run(flags, positionals)) ?? 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`${who}: ${e.message}\nUsage: ${cmd.spec.usage}\n` +
        `Run \`ctfgen ${cmd.spec.name} --help\` for every option.\n`);
      return 2;
    }
    if (e instanceof Interrupted) {
      process.stderr.write(`${who}: ${e.message}\n`);
      return e.exitCode;
    }
    if (e instanceof CtfError) {
      process.stderr.write(`${who}: ${e.message}\n`);
      return 1;
    }
    // The environment, not a bug: a full disk, a file where a directory should be, a missing permission.
    const system = systemErrorMessage(e);
    if (system !== null) {
      process.stderr.write(`${who}: ${system}\n`);
      return 1;
    }
    throw e;
  }
}

// A reader that went away (`ctfgen … | head`) must not stop the work: output to a closed pipe is dropped.
for (const stream of [process.stdout, process.stderr])
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
  });

// Under mpirun, a rank that fails unexpectedly ends the whole job instead of leaving the others waiting.
abortJobOnUncaughtErrors();
main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e: unknown) => {
    // Every input a user can give ends in a CtfError above; anything else is a bug in ctfgen.
    process.stderr.write(
      `ctfgen${rankTag()}: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n` +
        `This is a bug in ctfgen ${version()}: please report it with the command you ran and the lines above.\n`,
    );
    process.exitCode = 1;
  },
);
