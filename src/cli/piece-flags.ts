// The flags that name a run's pieces and stage 2's rounds, declared once for every command that samples from a run
// (sample, eval, eval ceiling).
import { RUN_LAYOUT, type PieceName } from '../sample/run-dir.js';
import type { FlagSpec } from './args.js';

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
    run: { type: 'string', help: `run directory holding the pieces (${Object.values(RUN_LAYOUT).join(', ')}); explicit paths override` },
  };
  for (const name of Object.keys(RUN_LAYOUT) as PieceName[]) flags[name] = { type: 'string', help: help[name] ?? PIECE_HELP[name] };
  return flags;
}

export const REFINE_ROUNDS_FLAG: FlagSpec = {
  type: 'int', default: 1, min: 1,
  help: 'stage-2 rounds of masked refinement (1 = the paper\'s single pass; more need an aux trained with --refine masked)',
};
