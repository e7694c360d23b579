// The pieces a sampler needs — tokenizer, coarse map, stage-1, auxiliary and baseline GPTs — found in a run
// directory (or given one by one), loaded, and checked to belong together before anything is sampled:
//   every GPT was trained on tokens of this tokenizer (metadata tokenizer_hash = the tokenizer's weights hash),
//   the CTF models with this coarse map (clusters_hash = sha256 of its fineToCoarse, clusters_k = K),
//   the coarse map was made from this tokenizer's codebook, and the vocabularies, grid and classes agree.
// A mismatch is refused with a CtfError naming both files and what differs.
import { existsSync } from 'node:fs';
import { loadCoarseMap, type CoarseMap } from '../cluster/coarse-map.js';
import { CtfError } from '../errors.js';
import { RUN_FILES, runPath } from '../io/run-dir.js';
import { loadSafetensors } from '../io/safetensors.js';
import { gptFromFile } from '../models/gpt-checkpoint.js';
import type { Gpt } from '../models/gpt.js';
import { loadTokenizer, type LoadedTokenizer } from '../tokenizer/checkpoint.js';
import { GPT_KIND_TITLES, storedGptKind, type GptKind } from '../models/gpt-kind.js';
import { coarseMapHash } from '../train/gpt-train.js';
import { checkCtfModels } from '../ctf/ctf.js';

/** The pieces a sampler reads, by their file in a run directory (src/io/run-dir.ts describes the directory). */
export const RUN_LAYOUT = {
  tokenizer: RUN_FILES.tokenizer, clusters: RUN_FILES.clusters,
  stage1: RUN_FILES.stage1, aux: RUN_FILES.aux, baseline: RUN_FILES.baseline,
} as const;

export type SamplerMethod = 'ctf' | 'baseline';
export const SAMPLER_METHODS: readonly SamplerMethod[] = ['ctf', 'baseline'];
export type PieceName = keyof typeof RUN_LAYOUT;

/** Which pieces a method reads. */
export function piecesOf(method: SamplerMethod): PieceName[] {
  return method === 'ctf' ? ['tokenizer', 'clusters', 'stage1', 'aux'] : ['tokenizer', 'baseline'];
}

export type SamplerPaths = Partial<Record<PieceName, string>>;

/**
 * Paths of a method's pieces: an explicit path wins, else the run directory's file. Returns the names of the
 * pieces that have neither (the caller turns that into a usage error).
 */
export function resolveSamplerPaths(
  methods: readonly SamplerMethod[],
  run: string | undefined,
  explicit: SamplerPaths,
): { paths: SamplerPaths; missing: PieceName[] } {
  const paths: SamplerPaths = {},
    missing: PieceName[] = [];
  for (const name of new Set(methods.flatMap(piecesOf))) {
    const p = explicit[name] ?? (run !== undefined ? runPath(run, name) : undefined);
    if (p === undefined) missing.push(name);
    else paths[name] = p;
  }
  return { paths, missing };
}

export interface GptPiece {
  model: Gpt;
  path: string;
  meta: Record<string, string>;  // checkpoint metadata (ctf_kind, tokenizer_hash, clusters_hash, step, …)
}

export interface SamplerPieces {
  tokenizer: LoadedTokenizer & { path: string };
  map?: CoarseMap & { path: string };
  stage1?: GptPiece;
  aux?: GptPiece;
  baseline?: GptPiece;
  numClasses: number;  // shared by every GPT loaded
  grid: number;        // tokens per side (the tokenizer's)
}

const short = (h: string | undefined): string => (h ? `${h.slice(0, 12)}…` : 'none');

function needFile(path: string, name: PieceName): void {
  if (existsSync(path)) return;
  const how: Record<PieceName, string> = {
    tokenizer: 'ctfgen tokenizer train',
    clusters: 'ctfgen cluster',
    stage1: 'ctfgen train stage1',
    aux: 'ctfgen train aux',
    baseline: 'ctfgen train baseline',
  };
  throw new CtfError(`${path} does not exist — make it with \`${how[name]}\` or pass its path explicitly (--${name})`);
}

async function loadGptPiece(path: string): Promise<GptPiece> {
  const file = await loadSafetensors(path);
  return { model: gptFromFile(file), path, meta: { ...file.metadata } };
}

/**
 * Refuses a GPT that was not trained for this role on this tokenizer's tokens (and, for the CTF models, with
 * this coarse map), or whose vocabularies or grid do not fit them.
 */
export function checkGptPiece(
  role: GptKind,
  g: GptPiece,
  tok: SamplerPieces['tokenizer'],
  map: SamplerPieces['map'],
): void {
  const kind = storedGptKind(g.meta['ctf_kind']),
    want = role;
  if (kind !== undefined && kind !== want)
    throw new CtfError(
      `${g.path} is ${/^[aeiou]/.test(kind) ? 'an' : 'a'} ${kind} checkpoint; ${GPT_KIND_TITLES[role]} ` +
        `must be a${/^[aeiou]/.test(want) ? 'n' : ''} ${want} checkpoint (ctfgen train ${want})`,
    );
  const trainedOn = g.meta['tokenizer_hash'];
  if (trainedOn === undefined)
    throw new CtfError(
      `${g.path} has no tokenizer_hash metadata, so nothing says which tokenizer's tokens it models — use a ` +
      `checkpoint written by \`ctfgen train ${want}\``,
    );
  if (trainedOn !== tok.hash)
    throw new CtfError(
      `${g.path} was trained on tokens of tokenizer ${short(trainedOn)}, but ${tok.path} is tokenizer ` +
      `${short(tok.hash)} — ` +
        `sample with the tokenizer it was trained with, or retrain it on this tokenizer's tokens`,
    );
  const c = g.model.config,
    V = tok.model.config.codebookSize,
    grid = tok.model.grid;
  if (c.grid !== grid)
    throw new CtfError(
      `${g.path} generates ${c.grid}×${c.grid} token grids, the tokenizer ${tok.path} decodes ${grid}×${grid}`,
    );
  if (role === 'baseline') {
    if (!c.causal || c.inVocab !== V || c.outVocab !== V)
      throw new CtfError(
        `${g.path}: the baseline must be causal over the ${V} codewords of ${tok.path}; it is ` +
        `${c.causal ? 'causal' : 'bidirectional'} with vocabulary ${c.inVocab} in / ${c.outVocab} out`,
      );
    return;
  }
  if (!map) throw new CtfError(`${g.path}: the ${want} model needs the coarse map (--clusters)`);
  const k = g.meta['clusters_k'],
    hash = g.meta['clusters_hash'];
  if (k !== undefined && Number(k) !== map.k)
    throw new CtfError(
      `${g.path} was trained with K = ${k} clusters (${g.meta['clusters_mode'] ?? '?'}), but ${map.path} has K = ` +
      `${map.k} (${map.mode}) — use the cluster file it was trained with`,
    );
  if (hash === undefined)
    throw new CtfError(`${g.path} has no clusters_hash metadata; use a checkpoint written by \`ctfgen train ${want}\``);
  if (hash !== coarseMapHash(map))
    throw new CtfError(
      `${g.path} was trained with another coarse map (clusters hash ${short(hash)}, ` +
      `${g.meta['clusters_mode'] ?? '?'}) than ${map.path} ` +
        `(hash ${short(coarseMapHash(map))}, K = ${map.k}, ${map.mode}, seed ${map.seed}) — use the cluster file it ` +
        `was trained with`,
    );
  const inV = map.k,
    outV = role === 'stage1' ? map.k : V;
  if (c.inVocab !== inV || c.outVocab !== outV || c.causal !== (role === 'stage1'))
    throw new CtfError(
      `${g.path}: the ${want} model must be ${role === 'stage1' ? 'causal' : 'bidirectional'} with vocabulary ${inV} ` +
      `in / ${outV} out; ` +
        `it is ${c.causal ? 'causal' : 'bidirectional'} with ${c.inVocab} in / ${c.outVocab} out`,
    );
}

/** Checks pieces loaded by loadSampler (or built in memory) against each other; returns the shared class count. */
export function checkSamplerPieces(p: Omit<SamplerPieces, 'numClasses' | 'grid'>): number {
  const { tokenizer: tok, map } = p;
  if (map) {
    if (map.tokenizerHash !== tok.hash)
      throw new CtfError(`${map.path} clusters the codebook of tokenizer ${short(map.tokenizerHash)}, but ` +
        `${tok.path} is tokenizer ${short(tok.hash)} — re-run \`ctfgen cluster\` on this tokenizer`);
    if (map.v !== tok.model.config.codebookSize)
      throw new CtfError(
        `${map.path} covers ${map.v} codewords, the tokenizer ${tok.path} has ${tok.model.config.codebookSize}`,
      );
  }
  const roles = (['stage1', 'aux', 'baseline'] as const).filter((r) => p[r]);
  for (const r of roles) checkGptPiece(r, p[r]!, tok, map);
  if (p.aux && map) checkCtfModels(p.stage1?.model ?? null, p.aux.model, map);
  const classes = roles.map((r) => [r, p[r]!.model.config.numClasses, p[r]!.path] as const);
  const first = classes[0];
  if (!first) throw new CtfError('sampler: no GPT checkpoint given');
  for (const [, n, path] of classes)
    if (n !== first[1])
      throw new CtfError(
        `${path} knows ${n} classes, ${first[2]} knows ${first[1]} — were they trained on the same data?`,
      );
  return first[1];
}

/** Loads and cross-checks what the methods need; `paths` from resolveSamplerPaths. */
export async function loadSampler(methods: readonly SamplerMethod[], paths: SamplerPaths): Promise<SamplerPieces> {
  return loadPieces(methods.flatMap(piecesOf), paths);
}

/** Loads and cross-checks the named pieces (the tokenizer always); `paths` must hold each one's path. */
export async function loadPieces(pieces: readonly PieceName[], paths: SamplerPaths): Promise<SamplerPieces> {
  const names = [...new Set<PieceName>(['tokenizer', ...pieces])];
  for (const n of names) {
    const p = paths[n];
    if (p === undefined) throw new CtfError(`sampler: no path for the ${n}`);
    needFile(p, n);
  }
  const tokenizer = { ...(await loadTokenizer(paths.tokenizer!)), path: paths.tokenizer! };
  const map = paths.clusters !== undefined && names.includes('clusters')
    ? { ...(await loadCoarseMap(paths.clusters)), path: paths.clusters } : undefined;
  const gpt = async (role: GptKind): Promise<GptPiece | undefined> =>
    names.includes(role) ? loadGptPiece(paths[role]!) : undefined;
  const loaded = {
    tokenizer,
    map,
    stage1: await gpt('stage1'),
    aux: await gpt('aux'),
    baseline: await gpt('baseline'),
  };
  const numClasses = checkSamplerPieces(loaded);
  return { ...loaded, numClasses, grid: tokenizer.model.grid };
}
