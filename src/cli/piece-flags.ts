// The flags that name a run's pieces, declared once for every command that samples from a run (sample, eval, eval
// ceiling). Their sampling flags: sampling-flags.ts.
import { RUN_LAYOUT, type PieceName } from '../sample/run-dir.js';
import { flagRole, type FlagSpec, type ParsedFlags } from './args.js';

const PIECE_HELP: Record<PieceName, string> = {
  tokenizer: 'tokenizer checkpoint',
  clusters: 'coarse map (ctfgen cluster)',
  stage1: 'CTF stage 1: stage1 checkpoint (ctfgen train stage1)',
  aux: 'CTF stage 2: aux checkpoint (ctfgen train aux)',
  baseline: 'baseline checkpoint',
};

/** --run and one path flag per piece; `help` replaces a piece's default help text. */
export function pieceFlags(help: Partial<Record<PieceName, string>> = {}): Record<string, FlagSpec> {
  const flags: Record<string, FlagSpec> = {
    run: {
      type: 'string',
      help: `run directory holding the pieces (${Object.values(RUN_LAYOUT).join(', ')}); explicit paths override`,
    },
  };
  for (const name of Object.keys(RUN_LAYOUT) as PieceName[])
    flags[name] = { type: 'string', help: help[name] ?? PIECE_HELP[name] };
  return flags;
}

/**
 * The files a command reads (pieces, and e.g. a classifier), by flag key, each named by the flag that gave it (or by
 * --run), for checkOutputs.
 */
export function pieceInputs(f: ParsedFlags, paths: Partial<Record<string, string>>): { role: string; path: string }[] {
  return Object.entries(paths).flatMap(([k, p]) => (p === undefined ? [] : [{ role: flagRole(f, k), path: p }]));
}

/** How an evaluation's messages name its report: --out, or the default file in the --run directory. */
export function reportRole(f: ParsedFlags): string {
  return typeof f['out'] === 'string' ? '--out' : 'the report (from --run)';
}
