// The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian u64
// header length N, N bytes of UTF-8 JSON {name: {dtype, shape, data_offsets: [begin, end]},
// "__metadata__": {string: string}}, then the byte buffer (offsets are relative to its start).
// In memory every float dtype is a Float32Array and every integer dtype an Int32Array; F16/BF16/I64
// are converted on load and save, and a conversion that would lose a value is an error, not a clamp.
import { endianness } from 'node:os';
import { CtfError } from '../errors.js';
import { Tensor, shapeStr, sizeOf, type DType, type Shape } from '../engine/tensor.js';
import { readFileChecked, writeFileAtomic, writeFileAtomicSync } from './atomic.js';
import { readFileSync } from 'node:fs';

export type StDType = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64';
const ITEM_BYTES: Record<StDType, number> = { F32: 4, F16: 2, BF16: 2, I32: 4, I64: 8 };
const SUPPORTED = Object.keys(ITEM_BYTES).join(', ');
/** The safetensors spec caps the header at 100 MB; anything larger is not a safetensors file. */
const MAX_HEADER_BYTES = 100_000_000;

export interface StTensor {
  dtype: StDType;           // as stored in the file
  shape: number[];
  data: Float32Array | Int32Array;  // Float32Array for F32/F16/BF16, Int32Array for I32/I64
}

/** What encode accepts: a stored dtype, or an engine dtype ('f32' → F32, 'i32' → I32); a Tensor fits. */
export interface StTensorInput {
  dtype?: StDType | DType;
  shape: Shape;
  data: Float32Array | Int32Array;
}

/** Tensor shapes by name: a file's tensors, or the model.* tensors of a train state. */
export type TensorShapes = ReadonlyMap<string, { readonly shape: readonly number[] }>;

export interface SafetensorsFile {
  source: string;           // file path or a label, used in every error message
  tensors: Map<string, StTensor>;
  metadata: Record<string, string>;
}

if (endianness() !== 'LE') throw new CtfError('safetensors: this reader assumes a little-endian host');

// ---------------------------------------------------------------- half-precision conversions
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);
let f16Table: Float32Array | null = null;

function f16ToF32Table(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1, exp = (h >>> 10) & 0x1f, mant = h & 0x3ff;
    if (exp === 0) t[h] = sign * mant * 2 ** -24;
    else if (exp === 31) t[h] = mant ? NaN : sign * Infinity;
    else t[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return (f16Table = t);
}

/** IEEE binary16 bits of v, rounded to nearest even (overflow gives ±Inf; the caller checks). */
function f32ToF16Bits(v: number): number {
  scratchF32[0] = v;
  const x = scratchU32[0]!;
  const sign = (x >>> 16) & 0x8000, exp = (x >>> 23) & 0xff, mant = x & 0x7fffff;
  if (exp === 255) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000, shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1), halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry into the exponent is correct rounding
  return sign | h;
}

function f32ToBf16Bits(v: number): number {
  scratchF32[0] = v;
  const x = scratchU32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return (x >>> 16) | 0x40; // keep NaN a NaN
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

// ---------------------------------------------------------------- encode
function storedDType(t: StTensorInput): StDType {
  const d = t.dtype ?? (t.data instanceof Float32Array ? 'F32' : 'I32');
  return d === 'f32' ? 'F32' : d === 'i32' ? 'I32' : d;
}

/** Serialises tensors (the buffer is ordered by item size, then insertion order, to keep data aligned). */
export function encodeSafetensors(
  tensors: Record<string, StTensorInput> | Map<string, StTensorInput>,
  metadata: Record<string, string> = {},
  where = 'safetensors',
): Uint8Array {
  const entries = [...(tensors instanceof Map ? tensors.entries() : Object.entries(tensors))];
  const items = entries.map(([name, t], order) => {
    const dtype = storedDType(t);
    const what = `${where}: tensor "${name}"`;
    if (name === '__metadata__') throw new CtfError(`${where}: "__metadata__" is reserved and cannot name a tensor`);
    if (!(dtype in ITEM_BYTES)) throw new CtfError(`${what}: dtype ${String(dtype)} is not supported (${SUPPORTED})`);
    const isFloat = dtype === 'F32' || dtype === 'F16' || dtype === 'BF16';
    if (isFloat !== t.data instanceof Float32Array)
      throw new CtfError(
        `${what}: dtype ${dtype} needs ${isFloat ? 'a Float32Array' : 'an Int32Array'}, got ${t.data.constructor.name}`,
      );
    if (sizeOf(t.shape) !== t.data.length)
      throw new CtfError(
        `${what}: shape ${shapeStr(t.shape)} needs ${sizeOf(t.shape)} elements, data has ${t.data.length}`,
      );
    return { name, dtype, shape: [...t.shape], data: t.data, bytes: t.data.length * ITEM_BYTES[dtype], order };
  });
  items.sort((a, b) => ITEM_BYTES[b.dtype] - ITEM_BYTES[a.dtype] || a.order - b.order);

  const header: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(metadata))
    if (typeof v !== 'string') throw new CtfError(`${where}: metadata "${k}" must be a string, got ${typeof v}`);
  if (Object.keys(metadata).length > 0) header['__metadata__'] = metadata;
  let offset = 0;
  for (const it of items) {
    header[it.name] = { dtype: it.dtype, shape: it.shape, data_offsets: [offset, offset + it.bytes] };
    offset += it.bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);

  const out = new Uint8Array(8 + json.length + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, json.length, true);
  view.setUint32(4, 0, true);
  out.set(json, 8);
  let pos = 8 + json.length;
  for (const it of items) {
    writeData(it.name, it.dtype, it.data, out, pos, where);
    pos += it.bytes;
  }
  return out;
}

function writeData(
  name: string,
  dtype: StDType,
  data: Float32Array | Int32Array,
  out: Uint8Array,
  pos: number,
  where: string,
): void {
  if (dtype === 'F32' || dtype === 'I32') {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), pos);
    return;
  }
  const view = new DataView(out.buffer, out.byteOffset + pos);
  if (dtype === 'I64') {
    for (let i = 0; i < data.length; i++) view.setBigInt64(8 * i, BigInt(data[i]!), true);
    return;
  }
  const toBits = dtype === 'F16' ? f32ToF16Bits : f32ToBf16Bits;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!,
      h = toBits(v);
    if ((h & 0x7fff) === (dtype === 'F16' ? 0x7c00 : 0x7f80) && Number.isFinite(v))
      throw new CtfError(
        `${where}: tensor "${name}": element ${i} = ${v} overflows ${dtype} (max ` +
        `${dtype === 'F16' ? 65504 : '3.39e38'})`,
      );
    view.setUint16(2 * i, h, true);
  }
}

// ---------------------------------------------------------------- decode
function foreignHint(bytes: Uint8Array): string {
  const b = (i: number): number => bytes[i] ?? -1;
  if (b(0) === 0x89 && b(1) === 0x50 && b(2) === 0x4e && b(3) === 0x47) return ' (it starts like a PNG image)';
  if (b(0) === 0xff && b(1) === 0xd8) return ' (it starts like a JPEG image)';
  if (b(0) === 0x50 && b(1) === 0x4b) return ' (it starts like a ZIP archive, e.g. a PyTorch .pt/.pth file)';
  if (b(0) === 0x1f && b(1) === 0x8b) return ' (it starts like a gzip file)';
  if (b(0) === 0x80 && b(1) >= 2 && b(1) <= 5) return ' (it starts like a Python pickle)';
  if (b(0) === 0x7b) return ' (it starts like plain JSON)';
  return '';
}

function isNonNegInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

/** Parses and validates a safetensors file held in memory; data is copied into aligned arrays. */
export function decodeSafetensors(bytes: Uint8Array, source: string): SafetensorsFile {
  const where = `safetensors ${source}`;
  const notSt = `: truncated, or not a safetensors file${foreignHint(bytes)}`;
  if (bytes.length < 8)
    throw new CtfError(`${where}: file is ${bytes.length} bytes, too short for the 8-byte header length${notSt}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
  if (headerLen > bytes.length - 8 || headerLen > MAX_HEADER_BYTES)
    throw new CtfError(
      `${where}: header length ${headerLen} runs past the end of the ${bytes.length}-byte file${notSt}`,
    );
  if (headerLen < 2 || bytes[8] !== 0x7b) throw new CtfError(`${where}: header does not start with "{"${notSt}`);

  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen)));
  } catch (e) {
    throw new CtfError(
      `${where}: header is not valid UTF-8 JSON (${e instanceof Error ? e.message : String(e)})${notSt}`,
    );
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    throw new CtfError(`${where}: header is not a JSON object`);

  const bufStart = 8 + headerLen, bufLen = bytes.length - bufStart;
  const metadata: Record<string, string> = {};
  const spans: { name: string; dtype: StDType; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
        throw new CtfError(`${where}: "__metadata__" is not an object`);
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string') throw new CtfError(`${where}: metadata "${k}" is a ${typeof v}, expected a string`);
        metadata[k] = v;
      }
      continue;
    }
    const what = `${where}: tensor "${name}"`;
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (typeof e !== 'object' || e === null) throw new CtfError(`${what}: entry is not an object`);
    if (typeof e.dtype !== 'string' || !(e.dtype in ITEM_BYTES))
      throw new CtfError(`${what}: dtype ${JSON.stringify(e.dtype)} is not supported (${SUPPORTED})`);
    const dtype = e.dtype as StDType;
    if (!Array.isArray(e.shape) || !e.shape.every(isNonNegInt))
      throw new CtfError(`${what}: shape ${JSON.stringify(e.shape)} is not a list of integers ≥ 0`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !isNonNegInt(off[0]) || !isNonNegInt(off[1]) || off[0] > off[1])
      throw new CtfError(`${what}: data_offsets ${JSON.stringify(off)} is not [begin, end] with 0 ≤ begin ≤ end`);
    const [begin, end] = off as [number, number];
    if (end > bufLen)
      throw new CtfError(
        `${what}: data_offsets [${begin},${end}] run past the ${bufLen}-byte data buffer (file truncated?)`,
      );
    const shape = e.shape as number[];
    const need = sizeOf(shape) * ITEM_BYTES[dtype];
    if (end - begin !== need)
      throw new CtfError(`${what}: shape ${shapeStr(shape)} ${dtype} needs ${need} bytes, data_offsets ` +
        `[${begin},${end}] hold ${end - begin}`);
    spans.push({ name, dtype, shape, begin, end });
  }

  // The spec requires the tensors to tile the buffer exactly: no overlaps, no holes, nothing after.
  const sorted = [...spans].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let prev: string | null = null;
  for (const s of sorted) {
    if (s.begin < covered)
      throw new CtfError(`${where}: tensor "${s.name}" data_offsets [${s.begin},${s.end}] overlap tensor "${prev}" ` +
        `(which ends at ${covered})`);
    if (s.begin > covered)
      throw new CtfError(
        `${where}: bytes [${covered},${s.begin}) of the data buffer belong to no tensor (before "${s.name}")`,
      );
    covered = s.end;
    prev = s.name;
  }
  if (covered !== bufLen)
    throw new CtfError(`${where}: the data buffer is ${bufLen} bytes but the tensors cover only ${covered} (trailing ` +
      `garbage or a wrong header)`);

  const tensors = new Map<string, StTensor>();
  for (const s of spans)
    tensors.set(s.name, { dtype: s.dtype, shape: s.shape, data: readData(bytes, bufStart + s.begin, s, where) });
  return { source, tensors, metadata };
}

function readData(
  bytes: Uint8Array,
  pos: number,
  s: { name: string; dtype: StDType; shape: number[] },
  where: string,
): Float32Array | Int32Array {
  const n = sizeOf(s.shape);
  const src = bytes.subarray(pos, pos + n * ITEM_BYTES[s.dtype]);
  if (s.dtype === 'F32' || s.dtype === 'I32') {
    // Copy through bytes: the source offset need not be 4-aligned.
    const out = s.dtype === 'F32' ? new Float32Array(n) : new Int32Array(n);
    new Uint8Array(out.buffer).set(src);
    return out;
  }
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
  if (s.dtype === 'I64') {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const lo = view.getInt32(8 * i, true),
        hi = view.getInt32(8 * i + 4, true);
      if (hi !== lo >> 31)
        throw new CtfError(
          `${where}: tensor "${s.name}" (I64): element ${i} = ${view.getBigInt64(8 * i, true)} does not fit in int32`,
        );
      out[i] = lo;
    }
    return out;
  }
  const out = new Float32Array(n);
  if (s.dtype === 'F16') {
    const table = f16ToF32Table();
    for (let i = 0; i < n; i++) out[i] = table[view.getUint16(2 * i, true)]!;
  } else {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) u[i] = view.getUint16(2 * i, true) << 16;
  }
  return out;
}

// ---------------------------------------------------------------- files
export async function saveSafetensors(
  path: string,
  tensors: Record<string, StTensorInput> | Map<string, StTensorInput>,
  metadata: Record<string, string> = {},
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata, `safetensors ${path}`));
}

export function saveSafetensorsSync(
  path: string,
  tensors: Record<string, StTensorInput> | Map<string, StTensorInput>,
  metadata: Record<string, string> = {},
): void {
  writeFileAtomicSync(path, encodeSafetensors(tensors, metadata, `safetensors ${path}`));
}

export async function loadSafetensors(path: string): Promise<SafetensorsFile> {
  return decodeSafetensors(await readFileChecked(path, { what: 'safetensors file' }), path);
}

export function loadSafetensorsSync(path: string): SafetensorsFile {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CtfError(
      code === 'ENOENT'
        ? `safetensors file ${path} does not exist`
        : `cannot read safetensors file ${path}: ${(e as Error).message}`,
    );
  }
  return decodeSafetensors(bytes, path);
}

// ---------------------------------------------------------------- checked access
function engineDType(d: StDType): DType {
  return d === 'I32' || d === 'I64' ? 'i32' : 'f32';
}

/**
 * The tensor `name` as an engine Tensor (sharing the loaded data), checked against an expected shape
 * (undefined skips the check) and dtype (an engine dtype matches any stored width, e.g. 'f32' ↔ F16).
 */
export function expectTensor(file: SafetensorsFile, name: string, shape?: Shape, dtype?: DType | StDType): Tensor {
  const t = file.tensors.get(name);
  if (!t) {
    const have = [...file.tensors.keys()];
    throw new CtfError(`safetensors ${file.source}: tensor "${name}" is missing (the file has ${have.length}: ` +
      `${have.slice(0, 8).join(', ')}${have.length > 8 ? ', …' : ''})`);
  }
  if (shape && (shape.length !== t.shape.length || shape.some((d, i) => d !== t.shape[i])))
    throw new CtfError(
      `safetensors ${file.source}: tensor "${name}" has shape ${shapeStr(t.shape)}, expected ${shapeStr(shape)}`,
    );
  if (dtype && dtype !== t.dtype && dtype !== engineDType(t.dtype))
    throw new CtfError(`safetensors ${file.source}: tensor "${name}" is ${t.dtype}, expected ${dtype}`);
  return new Tensor(t.data, t.shape, { name });
}

/**
 * Refuses a float tensor holding NaN or ±Inf (a flipped exponent bit, or the weights of a diverged run), naming
 * the first; integer tensors are skipped. `where` names the file in the error.
 */
export function expectFinite(
  tensors: ReadonlyMap<string, { readonly data: Float32Array | Int32Array }>, where: string,
): void {
  for (const [name, t] of tensors) {
    if (!(t.data instanceof Float32Array)) continue;
    const d = t.data;
    for (let i = 0; i < d.length; i++)
      if (d[i]! - d[i]! !== 0)  // NaN and ±Inf only
        throw new CtfError(`${where}: tensor "${name}" holds ${d[i]} at element ${i}, expected finite values ` +
          '— the file is corrupted or was saved from a diverged run');
  }
}

/**
 * Copies the file's tensors into existing parameters in place (optimizer references stay valid).
 * Every parameter must be present with its exact shape and dtype; with strict (the default) the file
 * may hold no other tensors. All problems are reported together.
 */
export function loadInto(
  params: Map<string, Tensor>,
  file: SafetensorsFile,
  o: { strict?: boolean } = {},
): { loaded: string[]; unexpected: string[] } {
  const strict = o.strict ?? true;
  const problems: string[] = [];
  const loaded: string[] = [];
  for (const [name, p] of params) {
    const t = file.tensors.get(name);
    if (!t) {
      problems.push(`"${name}" is missing (expected ${p.dtype}${shapeStr(p.shape)})`);
      continue;
    }
    if (shapeStr(t.shape) !== shapeStr(p.shape)) {
      problems.push(`"${name}" has shape ${shapeStr(t.shape)}, expected ${shapeStr(p.shape)}`);
      continue;
    }
    if (engineDType(t.dtype) !== p.dtype) {
      problems.push(`"${name}" is ${t.dtype}, expected ${p.dtype}`);
      continue;
    }
    loaded.push(name);
  }
  const unexpected = [...file.tensors.keys()].filter((n) => !params.has(n));
  if (strict) for (const n of unexpected) problems.push(`"${n}" is not a parameter of the model`);
  if (problems.length > 0) {
    const shown = problems.slice(0, 10).join('; ') + (problems.length > 10 ? `; … (${problems.length - 10} more)` : '');
    throw new CtfError(
      `safetensors ${file.source}: ${problems.length} tensor${problems.length > 1 ? 's do' : ' does'} not match the ` +
      `model: ${shown} — was it saved from another config?`,
    );
  }
  for (const name of loaded) params.get(name)!.data.set(file.tensors.get(name)!.data);
  return { loaded, unexpected };
}
