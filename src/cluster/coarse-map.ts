// The coarse map: which of K clusters every codeword (fine label) belongs to. Built by k-means on the
// l2-normalised codewords (the tokenizer quantises on the unit sphere, so directions are what decode
// alike), or — the paper's failing ablation — a random assignment with exactly the
// k-means cluster sizes.
//
// File (safetensors): fineToCoarse I32 (V); centroids F32 (K, D) in the normalised codeword space (means
// of unit vectors, not themselves unit); members I32 (V) = the K sorted member lists concatenated,
// memberOffsets I32 (K+1) with cluster j at members[offsets[j] .. offsets[j+1]). Metadata: kind, format,
// k, v, dim, mode, seed, tokenizerHash, inertia, config (JSON: restarts, maxIter, normalize).
import { CtfError } from '../errors.js';
import { noGrad } from '../engine/autograd.js';
import { l2Normalize } from '../engine/ops/vq.js';
import { Rng } from '../engine/rng.js';
import { shapeStr, type Tensor } from '../engine/tensor.js';
import { decodeSafetensors, encodeSafetensors, loadSafetensors, type SafetensorsFile } from '../io/safetensors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { inertiaOf, kmeans, type KMeansEvent, type KMeansResult } from './kmeans.js';

export const CLUSTERS_KIND = 'ctfgen.clusters';
export const CLUSTERS_FORMAT = '1';
export const CLUSTER_MODES = ['kmeans', 'random'] as const;
export type ClusterMode = (typeof CLUSTER_MODES)[number];

export interface CoarseMap {
  k: number;                  // K clusters = the coarse vocabulary
  v: number;                  // V codewords = the fine vocabulary
  fineToCoarse: Int32Array;   // (V) cluster of every fine id
  members: Int32Array[];      // K ascending lists of fine ids; every id in exactly one, none empty (see checkCoarseMap)
  mode: ClusterMode;
  seed: number;
  tokenizerHash: string;      // the tokenizer whose codebook was clustered
  inertia: number;            // Σ squared distance of the normalised codewords to their cluster's centroid
  centroids: Float32Array;    // (K, dim)
  dim: number;
}

/** The part of a coarse map the samplers read: which fine ids make up each cluster. */
export type CoarsePartition = Pick<CoarseMap, 'k' | 'v' | 'fineToCoarse' | 'members'>;

export interface BuildCoarseMapOptions {
  k: number;
  mode?: ClusterMode;          // default 'kmeans'
  seed?: number;               // default 0; seeds k-means and the random assignment
  restarts?: number;           // default 4
  maxIter?: number;            // default 100
  tokenizerHash: string;
  onEvent?: (e: KMeansEvent) => void;
}

/** The codebook (V, D) as k-means sees it: unit rows, the same ones the tokenizer quantises with. */
function unitRows(codebook: Tensor): Tensor {
  if (codebook.dtype !== 'f32' || codebook.ndim !== 2)
    throw new CtfError(`coarse map: codebook ${codebook.describe()} must be an f32 (V, D) matrix`);
  return noGrad(() => l2Normalize(codebook));
}

/** members (K lists, ascending) from an assignment. */
export function membersOf(fineToCoarse: Int32Array, k: number): Int32Array[] {
  const sizes = new Int32Array(k);
  for (const c of fineToCoarse) sizes[c]!++;
  const members = Array.from(sizes, (n) => new Int32Array(n));
  const fill = new Int32Array(k);
  fineToCoarse.forEach((c, i) => { members[c]![fill[c]!++] = i; });
  return members;
}

/** A uniformly random assignment of V ids to clusters with the given sizes (Σ sizes = V). */
export function randomAssignment(sizes: ArrayLike<number>, rng: Rng): Int32Array {
  let v = 0;
  for (let j = 0; j < sizes.length; j++) v += sizes[j]!;
  const perm = rng.permutation(v), out = new Int32Array(v);
  let p = 0;
  for (let j = 0; j < sizes.length; j++) for (let n = 0; n < sizes[j]!; n++) out[perm[p++]!] = j;
  return out;
}

/** Float32 means of each cluster's rows (K, D). */
function clusterMeans(x: Tensor, assignment: Int32Array, k: number): Float32Array {
  const [V, D] = x.shape as [number, number];
  const sum = new Float64Array(k * D), n = new Int32Array(k);
  for (let i = 0; i < V; i++) {
    const j = assignment[i]!;
    n[j]!++;
    for (let d = 0; d < D; d++) sum[j * D + d]! += x.f32[i * D + d]!;
  }
  return Float32Array.from(sum, (s, idx) => s / n[Math.floor(idx / D)]!);
}

/** The paper's proportion: K = V / 32 clusters, a mean of 32 codewords each (V = 16384 → K = 512). */
export const MEAN_CLUSTER_SIZE = 32;
export function defaultClusterCount(V: number): number {
  return Math.max(1, Math.round(V / MEAN_CLUSTER_SIZE));
}

/**
 * The coarse map of a codebook (V, D): k-means on its l2-normalised rows; in random mode the same
 * k-means runs first and randomCoarseMap deals its cluster sizes out at random.
 */
export function buildCoarseMap(codebook: Tensor, o: BuildCoarseMapOptions): { map: CoarseMap; kmeans: KMeansResult } {
  const mode = o.mode ?? 'kmeans', seed = o.seed ?? 0;
  if (!CLUSTER_MODES.includes(mode))
    throw new CtfError(`coarse map: mode "${String(mode)}" is not one of ${CLUSTER_MODES.join(', ')}`);
  const x = unitRows(codebook);
  const [V, D] = x.shape as [number, number];
  const km = kmeans(x, { k: o.k, seed, restarts: o.restarts, maxIter: o.maxIter, onEvent: o.onEvent });
  const map: CoarseMap = {
    k: o.k, v: V, dim: D, fineToCoarse: km.assignment, members: membersOf(km.assignment, o.k), mode: 'kmeans', seed,
    tokenizerHash: o.tokenizerHash, inertia: km.inertia, centroids: km.centroids,
  };
  return { map: mode === 'random' ? randomCoarseMap(map, codebook, seed) : map, kmeans: km };
}

/**
 * The paper's ablation: cluster j gets as many ids as in `like`, but which ids is a uniformly random
 * permutation (Rng(seed).split('random-clusters')). Centroids and inertia are those of the random
 * partition of the l2-normalised codebook.
 */
export function randomCoarseMap(like: CoarseMap, codebook: Tensor, seed: number): CoarseMap {
  const x = unitRows(codebook);
  if (x.dim(0) !== like.v)
    throw new CtfError(
      `randomCoarseMap: codebook ${codebook.describe()} has ${x.dim(0)} rows, the map covers ${like.v}`,
    );
  const fineToCoarse = randomAssignment(like.members.map((m) => m.length), new Rng(seed).split('random-clusters'));
  const centroids = clusterMeans(x, fineToCoarse, like.k);
  return {
    ...like, mode: 'random', seed, fineToCoarse, members: membersOf(fineToCoarse, like.k), centroids,
    inertia: inertiaOf(x, fineToCoarse, centroids),
  };
}

// ---------------------------------------------------------------- statistics
export interface ClusterSizeHistogram {
  min: number; median: number; max: number; mean: number;
  bins: { lo: number; hi: number; count: number }[];  // clusters with lo ≤ size ≤ hi; equal-width integer bins
}

/** Cluster sizes summarised, in at most `bins` equal-width bins between the smallest and largest size. */
export function clusterSizeHistogram(map: Pick<CoarseMap, 'members'>, bins = 12): ClusterSizeHistogram {
  const sizes = map.members.map((m) => m.length).sort((p, q) => p - q);
  if (sizes.length === 0) throw new CtfError('clusterSizeHistogram: no clusters');
  const min = sizes[0]!, max = sizes[sizes.length - 1]!, mid = sizes.length >> 1;
  const median = sizes.length % 2 ? sizes[mid]! : (sizes[mid - 1]! + sizes[mid]!) / 2;
  const width = Math.max(1, Math.ceil((max - min + 1) / bins));
  const out: ClusterSizeHistogram['bins'] = [];
  for (let lo = min; lo <= max; lo += width) out.push({ lo, hi: Math.min(max, lo + width - 1), count: 0 });
  for (const s of sizes) out[Math.floor((s - min) / width)]!.count++;
  return { min, median, max, mean: sizes.reduce((p, q) => p + q, 0) / sizes.length, bins: out };
}

// ---------------------------------------------------------------- files
export interface CoarseMapConfig { restarts?: number; maxIter?: number }

export function encodeCoarseMap(map: CoarseMap, config: CoarseMapConfig = {}): Uint8Array {
  checkCoarseMap(map, 'coarse map');
  const offsets = new Int32Array(map.k + 1), flat = new Int32Array(map.v);
  map.members.forEach((m, j) => { flat.set(m, offsets[j]!); offsets[j + 1] = offsets[j]! + m.length; });
  const metadata: Record<string, string> = {
    kind: CLUSTERS_KIND, format: CLUSTERS_FORMAT, k: String(map.k), v: String(map.v), dim: String(map.dim),
    mode: map.mode, seed: String(map.seed), tokenizerHash: map.tokenizerHash, inertia: String(map.inertia),
    config: JSON.stringify({ ...config, normalize: 'l2' }),
  };
  return encodeSafetensors({
    fineToCoarse: { dtype: 'I32', shape: [map.v], data: map.fineToCoarse },
    centroids: { dtype: 'F32', shape: [map.k, map.dim], data: map.centroids },
    members: { dtype: 'I32', shape: [map.v], data: flat },
    memberOffsets: { dtype: 'I32', shape: [map.k + 1], data: offsets },
  }, metadata, 'coarse map');
}

export async function saveCoarseMap(path: string, map: CoarseMap, config: CoarseMapConfig = {}): Promise<void> {
  await writeFileAtomic(path, encodeCoarseMap(map, config));
}

/** What a reader needs the map to match; a mismatch is refused with both values named. */
export interface CoarseMapExpectation { tokenizerHash?: string; k?: number; v?: number }

function metaInt(file: SafetensorsFile, key: string, min: number): number {
  const raw = file.metadata[key];
  const n = raw === undefined ? NaN : Number(raw);
  if (raw === undefined || raw.trim() === '' || !Number.isSafeInteger(n) || n < min)
    throw new CtfError(`clusters ${file.source}: metadata "${key}" is ` +
      `${raw === undefined ? 'missing' : JSON.stringify(raw)}, expected an integer ≥ ${min}`);
  return n;
}

function tensorOf(
  file: SafetensorsFile,
  name: string,
  dtype: 'I32' | 'F32',
  shape: number[],
): Int32Array | Float32Array {
  const t = file.tensors.get(name);
  if (!t) throw new CtfError(`clusters ${file.source}: tensor "${name}" is missing`);
  if (t.dtype !== dtype)
    throw new CtfError(`clusters ${file.source}: tensor "${name}" is ${t.dtype}, expected ${dtype}`);
  if (shapeStr(t.shape) !== shapeStr(shape))
    throw new CtfError(
      `clusters ${file.source}: tensor "${name}" has shape ${shapeStr(t.shape)}, expected ${shapeStr(shape)}`,
    );
  return t.data;
}

/** Reads and strictly validates a coarse map from a parsed safetensors file. */
export function coarseMapFromFile(file: SafetensorsFile, expect: CoarseMapExpectation = {}): CoarseMap {
  const where = `clusters ${file.source}`;
  const m = file.metadata;
  if (m['kind'] !== CLUSTERS_KIND)
    throw new CtfError(`${where}: not a cluster file (metadata kind ` +
      `${m['kind'] === undefined ? 'missing' : `"${m['kind']}"`}, expected "${CLUSTERS_KIND}")`);
  if (m['format'] !== CLUSTERS_FORMAT)
    throw new CtfError(
      `${where}: format ${JSON.stringify(m['format'])} is not supported (this build reads format ${CLUSTERS_FORMAT})`,
    );
  const k = metaInt(file, 'k', 1),
    v = metaInt(file, 'v', 1),
    dim = metaInt(file, 'dim', 1),
    seed = metaInt(file, 'seed', 0);
  const mode = m['mode'] as ClusterMode;
  if (!CLUSTER_MODES.includes(mode))
    throw new CtfError(
      `${where}: metadata "mode" is ${JSON.stringify(m['mode'])}, expected one of ${CLUSTER_MODES.join(', ')}`,
    );
  const tokenizerHash = m['tokenizerHash'];
  if (!tokenizerHash) throw new CtfError(`${where}: metadata "tokenizerHash" is missing`);
  const inertia = Number(m['inertia']);
  if (m['inertia'] === undefined || !(inertia >= 0) || !Number.isFinite(inertia))
    throw new CtfError(`${where}: metadata "inertia" is ${JSON.stringify(m['inertia'])}, expected a finite number ≥ 0`);
  if (k > v) throw new CtfError(`${where}: k = ${k} clusters for v = ${v} codewords; every cluster needs a member`);
  for (const name of file.tensors.keys())
    if (!['fineToCoarse', 'centroids', 'members', 'memberOffsets'].includes(name))
      throw new CtfError(`${where}: unexpected tensor "${name}"`);

  const fineToCoarse = tensorOf(file, 'fineToCoarse', 'I32', [v]) as Int32Array;
  const centroids = tensorOf(file, 'centroids', 'F32', [k, dim]) as Float32Array;
  const flat = tensorOf(file, 'members', 'I32', [v]) as Int32Array;
  const offsets = tensorOf(file, 'memberOffsets', 'I32', [k + 1]) as Int32Array;
  const map: CoarseMap = { k, v, dim, fineToCoarse, centroids, mode, seed, tokenizerHash, inertia, members: [] };
  if (offsets[0] !== 0 || offsets[k] !== v)
    throw new CtfError(
      `${where}: field "memberOffsets" must run from 0 to v = ${v}, runs from ${offsets[0]} to ${offsets[k]}`,
    );
  for (let j = 0; j < k; j++) {
    if (!(offsets[j + 1]! > offsets[j]!))
      throw new CtfError(`${where}: field "memberOffsets": cluster ${j} has ${offsets[j + 1]! - offsets[j]!} members ` +
        `(offsets ${offsets[j]} → ${offsets[j + 1]}); every cluster needs at least one`);
    map.members.push(flat.subarray(offsets[j]!, offsets[j + 1]!));
  }
  checkCoarseMap(map, where);
  if (expect.tokenizerHash !== undefined && expect.tokenizerHash !== tokenizerHash)
    throw new CtfError(`${where}: made for tokenizer ${tokenizerHash.slice(0, 16)}…, but the tokenizer in use is ` +
      `${expect.tokenizerHash.slice(0, 16)}… — re-run \`ctfgen cluster\` on this tokenizer`);
  if (expect.k !== undefined && expect.k !== k)
    throw new CtfError(`${where}: has k = ${k} clusters, expected ${expect.k}`);
  if (expect.v !== undefined && expect.v !== v)
    throw new CtfError(`${where}: covers v = ${v} codewords, expected ${expect.v}`);
  return map;
}

/**
 * The map's invariants: fineToCoarse in [0, K); each member list strictly ascending, non-empty, and naming only
 * ids whose fineToCoarse is that cluster; V members in all (so every id exactly once); and, when the map carries
 * them, finite centroids in the unit ball. No cluster may be empty: k-means re-seeds every empty cluster and the
 * random mode copies its sizes, so a file with one was not written by ctfgen, and stage 2 could not sample a
 * cluster stage 1 predicts but that has no member. The samplers check their partition with this too.
 */
export function checkCoarseMap(map: CoarsePartition | CoarseMap, where: string): void {
  const { k, v, fineToCoarse, members } = map;
  if (fineToCoarse.length !== v)
    throw new CtfError(`${where}: field "fineToCoarse" has ${fineToCoarse.length} entries, expected v = ${v}`);
  for (let i = 0; i < v; i++)
    if (!(fineToCoarse[i]! >= 0 && fineToCoarse[i]! < k))
      throw new CtfError(
        `${where}: field "fineToCoarse": fine id ${i} maps to cluster ${fineToCoarse[i]}, outside [0, ${k})`,
      );
  if (members.length !== k)
    throw new CtfError(`${where}: field "members" has ${members.length} lists, expected k = ${k}`);
  let total = 0;
  members.forEach((list, j) => {
    if (list.length === 0)
      throw new CtfError(`${where}: field "members": cluster ${j} is empty; every cluster needs at least one member`);
    total += list.length;
    for (let n = 0; n < list.length; n++) {
      const id = list[n]!;
      if (!(id >= 0 && id < v))
        throw new CtfError(`${where}: field "members": cluster ${j} lists fine id ${id}, outside [0, ${v})`);
      if (n > 0 && !(id > list[n - 1]!))
        throw new CtfError(`${where}: field "members": cluster ${j} is not strictly ascending ` +
          `(${list[n - 1]} then ${id}); is a fine id listed twice?`);
      if (fineToCoarse[id] !== j)
        throw new CtfError(`${where}: field "members": cluster ${j} lists fine id ${id}, ` +
          `but fineToCoarse puts it in cluster ${fineToCoarse[id]}`);
    }
  });
  if (total !== v)
    throw new CtfError(`${where}: field "members" lists ${total} fine ids in all, ` +
      `expected v = ${v} (each exactly once)`);
  if ('centroids' in map) checkCentroids(map, where);
}

function checkCentroids({ k, dim, centroids }: CoarseMap, where: string): void {
  if (centroids.length !== k * dim)
    throw new CtfError(`${where}: field "centroids" has ${centroids.length} values, expected k·dim = ${k * dim}`);
  for (let i = 0; i < centroids.length; i++)
    if (!Number.isFinite(centroids[i]!))
      throw new CtfError(`${where}: field "centroids": value ${i} (cluster ${Math.floor(i / dim)}) is ${centroids[i]}`);
  // A centroid is a mean of unit vectors, so it lies in the unit ball (float32 rounding aside).
  for (let j = 0; j < k; j++) {
    let sq = 0;
    for (let d = 0; d < dim; d++) sq += centroids[j * dim + d]! ** 2;
    if (!(Math.sqrt(sq) <= 1 + 1e-4))
      throw new CtfError(`${where}: field "centroids": cluster ${j} has norm ${Math.sqrt(sq)}, expected at most 1`);
  }
}

export function decodeCoarseMap(bytes: Uint8Array, source: string, expect: CoarseMapExpectation = {}): CoarseMap {
  return coarseMapFromFile(decodeSafetensors(bytes, source), expect);
}

export async function loadCoarseMap(path: string, expect: CoarseMapExpectation = {}): Promise<CoarseMap> {
  return coarseMapFromFile(await loadSafetensors(path), expect);
}
