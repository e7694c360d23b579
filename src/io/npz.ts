// numpy's .npz: a ZIP archive of .npy files, here uncompressed (method 0 "stored", like np.savez), so
// others can load our samples with np.load and their own evaluators. Array "arr_0" is the member
// "arr_0.npy", an .npy v1.0 file: magic, a Python-literal header dict padded to 64 bytes, then the
// raw little-endian data in C order. No ZIP64: a member or the archive must stay under 4 GiB.
import { CtfError } from '../errors.js';
import { readFileChecked, writeFileAtomic } from './atomic.js';

export type NpyData = Uint8Array | Float32Array | Int32Array;

export interface NpyArray {
  data: NpyData;
  shape: number[];  // C order; [] is a scalar
}

const DESCR = { u1: '|u1', f4: '<f4', i4: '<i4' } as const;

function descrOf(data: NpyData): string {
  if (data instanceof Uint8Array) return DESCR.u1;
  if (data instanceof Float32Array) return DESCR.f4;
  if (data instanceof Int32Array) return DESCR.i4;
  throw new CtfError('npz: array data must be a Uint8Array, Float32Array or Int32Array');
}

// ── CRC-32 (IEEE 802.3, the ZIP checksum) ─────────────────────────────────────────────────────────
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

// ── .npy ──────────────────────────────────────────────────────────────────────────────────────────
const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];  // "\x93NUMPY"

/** An .npy v1.0 file: the header dict padded with spaces and a newline so the data starts at a multiple of 64. */
export function encodeNpy(name: string, a: NpyArray): Uint8Array {
  const count = a.shape.reduce((p, d) => p * d, 1);
  if (!a.shape.every((d) => Number.isInteger(d) && d >= 0))
    throw new CtfError(`npz: array "${name}" has shape [${a.shape.join(', ')}], expected non-negative integers`);
  if (a.data.length !== count)
    throw new CtfError(
      `npz: array "${name}" has ${a.data.length} elements, its shape [${a.shape.join(', ')}] needs ${count}`,
    );
  const shape = a.shape.length === 1 ? `(${a.shape[0]},)` : `(${a.shape.join(', ')})`;
  let dict = `{'descr': '${descrOf(a.data)}', 'fortran_order': False, 'shape': ${shape}, }`;
  const pad = 64 - ((10 + dict.length + 1) % 64);
  dict += ' '.repeat(pad % 64) + '\n';
  const body = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);  // little-endian hosts (x86, arm)
  const out = new Uint8Array(10 + dict.length + body.length);
  out.set(NPY_MAGIC, 0);
  out[6] = 1; out[7] = 0;  // version 1.0
  new DataView(out.buffer).setUint16(8, dict.length, true);
  out.set(Buffer.from(dict, 'latin1'), 10);
  out.set(body, 10 + dict.length);
  return out;
}

/** Parses an .npy file of dtype u1, f4 or i4 (little-endian, C order); `what` names it in errors. */
export function decodeNpy(bytes: Uint8Array, what: string): NpyArray {
  if (bytes.length < 10 || NPY_MAGIC.some((b, i) => bytes[i] !== b))
    throw new CtfError(`${what}: not an .npy file (bad magic)`);
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen =
    major === 1 ? view.getUint16(8, true) : major <= 3 && bytes.length >= 12 ? view.getUint32(8, true) : -1;
  if (headerLen < 0) throw new CtfError(`${what}: .npy version ${major}.${bytes[7]} is not supported`);
  const start = major === 1 ? 10 : 12;
  if (start + headerLen > bytes.length)
    throw new CtfError(`${what}: header of ${headerLen} bytes runs past the end of the file`);
  const header = Buffer.from(bytes.subarray(start, start + headerLen)).toString('latin1');
  const descr = /'descr':\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined)
    throw new CtfError(`${what}: header ${JSON.stringify(header.trim())} lacks descr, fortran_order or shape`);
  if (fortran === 'True')
    throw new CtfError(`${what}: Fortran-order arrays are not supported; save with np.ascontiguousarray`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  if (!shape.every((d) => Number.isInteger(d) && d >= 0)) throw new CtfError(`${what}: bad shape (${shapeText})`);
  const count = shape.reduce((p, d) => p * d, 1);
  const dataStart = start + headerLen;
  const ctor =
    descr === '|u1' || descr === '<u1'
      ? Uint8Array
      : descr === '<f4'
        ? Float32Array
        : descr === '<i4'
          ? Int32Array
          : undefined;
  if (ctor === undefined) throw new CtfError(`${what}: dtype ${descr} is not supported; expected |u1, <f4 or <i4`);
  const nbytes = count * ctor.BYTES_PER_ELEMENT;
  if (bytes.length - dataStart !== nbytes)
    throw new CtfError(
      `${what}: ${bytes.length - dataStart} data bytes, shape (${shape.join(', ')}) of ${descr} needs ${nbytes}`,
    );
  // Copy: the data may sit at any offset, and typed arrays need aligned views.
  const data = new ctor(count);
  new Uint8Array(data.buffer).set(bytes.subarray(dataStart, dataStart + nbytes));
  return { data, shape };
}

// ── ZIP (stored members only) ─────────────────────────────────────────────────────────────────────
// A fixed timestamp (1980-01-01 00:00, the DOS epoch) makes the archive a pure function of its arrays.
const DOS_TIME = 0, DOS_DATE = (0 << 9) | (1 << 5) | 1;
const LOCAL_SIG = 0x04034b50, CENTRAL_SIG = 0x02014b50, END_SIG = 0x06054b50;

/** The bytes of an uncompressed ZIP archive holding name.npy for every array, in key order. */
export function encodeNpz(arrays: Record<string, NpyArray>): Uint8Array {
  const members = Object.entries(arrays).map(([name, a]) => {
    if (name.length === 0 || /[/\\\0]/.test(name))
      throw new CtfError(`npz: array name "${name}" must be non-empty without / \\ or NUL`);
    const file = Buffer.from(`${name}.npy`, 'utf8'), body = encodeNpy(name, a);
    return { file, body, crc: crc32(body) };
  });
  let size = 22;
  for (const m of members) size += 30 + 46 + 2 * m.file.length + m.body.length;
  if (size > 0xffffffff)
    throw new CtfError(`npz: ${size} bytes exceed the 4 GiB a ZIP without ZIP64 can hold; save fewer samples per file`);
  const out = new Uint8Array(size), v = new DataView(out.buffer);
  let p = 0;
  const offsets: number[] = [];
  for (const m of members) {
    offsets.push(p);
    v.setUint32(p, LOCAL_SIG, true);
    v.setUint16(p + 4, 20, true);  // version needed: 2.0
    v.setUint16(p + 6, 0, true);   // flags
    v.setUint16(p + 8, 0, true);   // method: stored
    v.setUint16(p + 10, DOS_TIME, true);
    v.setUint16(p + 12, DOS_DATE, true);
    v.setUint32(p + 14, m.crc, true);
    v.setUint32(p + 18, m.body.length, true);  // compressed size
    v.setUint32(p + 22, m.body.length, true);  // uncompressed size
    v.setUint16(p + 26, m.file.length, true);
    v.setUint16(p + 28, 0, true);  // extra field length
    out.set(m.file, p + 30);
    out.set(m.body, p + 30 + m.file.length);
    p += 30 + m.file.length + m.body.length;
  }
  const centralStart = p;
  members.forEach((m, i) => {
    v.setUint32(p, CENTRAL_SIG, true);
    v.setUint16(p + 4, 20, true);  // made by: MS-DOS, 2.0
    v.setUint16(p + 6, 20, true);  // version needed
    v.setUint16(p + 8, 0, true);
    v.setUint16(p + 10, 0, true);
    v.setUint16(p + 12, DOS_TIME, true);
    v.setUint16(p + 14, DOS_DATE, true);
    v.setUint32(p + 16, m.crc, true);
    v.setUint32(p + 20, m.body.length, true);
    v.setUint32(p + 24, m.body.length, true);
    v.setUint16(p + 28, m.file.length, true);
    // extra, comment, disk number, internal and external attributes: all 0
    v.setUint32(p + 42, offsets[i]!, true);
    out.set(m.file, p + 46);
    p += 46 + m.file.length;
  });
  v.setUint32(p, END_SIG, true);
  v.setUint16(p + 8, members.length, true);
  v.setUint16(p + 10, members.length, true);
  v.setUint32(p + 12, p - centralStart, true);
  v.setUint32(p + 16, centralStart, true);
  return out;
}

/** Writes arrays to path as an .npz (np.load(path)["arr_0"] etc.), atomically. */
export async function writeNpz(path: string, arrays: Record<string, NpyArray>): Promise<void> {
  await writeFileAtomic(path, encodeNpz(arrays));
}

/** Parses an uncompressed .npz (np.savez, writeNpz) through its central directory, checking every CRC. */
export function decodeNpz(bytes: Uint8Array, what: string): Record<string, NpyArray> {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let end = -1;
  for (let p = bytes.length - 22; p >= Math.max(0, bytes.length - 22 - 0xffff); p--)
    if (v.getUint32(p, true) === END_SIG) { end = p; break; }
  if (end < 0) throw new CtfError(`${what}: not a ZIP archive (no end-of-central-directory record)`);
  const count = v.getUint16(end + 10, true), centralStart = v.getUint32(end + 16, true);
  if (count === 0xffff || centralStart === 0xffffffff) throw new CtfError(`${what}: ZIP64 archives are not supported`);
  const out: Record<string, NpyArray> = {};
  let p = centralStart;
  for (let m = 0; m < count; m++) {
    if (p + 46 > bytes.length || v.getUint32(p, true) !== CENTRAL_SIG)
      throw new CtfError(`${what}: central directory entry ${m} is damaged`);
    const method = v.getUint16(p + 10, true), crc = v.getUint32(p + 16, true);
    const size = v.getUint32(p + 20, true), nameLen = v.getUint16(p + 28, true);
    const skip = nameLen + v.getUint16(p + 30, true) + v.getUint16(p + 32, true);
    const local = v.getUint32(p + 42, true);
    const file = Buffer.from(bytes.subarray(p + 46, p + 46 + nameLen)).toString('utf8');
    p += 46 + skip;
    if (method !== 0) throw new CtfError(`${what}: member ${file} is compressed (method ${method}); only stored ` +
      `members (np.savez, not np.savez_compressed) are supported`);
    if (local + 30 > bytes.length || v.getUint32(local, true) !== LOCAL_SIG)
      throw new CtfError(`${what}: local header of ${file} is damaged`);
    const dataStart = local + 30 + v.getUint16(local + 26, true) + v.getUint16(local + 28, true);
    if (dataStart + size > bytes.length) throw new CtfError(`${what}: member ${file} runs past the end of the archive`);
    const body = bytes.subarray(dataStart, dataStart + size);
    if (crc32(body) !== crc) throw new CtfError(`${what}: member ${file} fails its CRC-32 check (corrupt file)`);
    if (!file.endsWith('.npy')) continue;  // np.load ignores non-.npy members too
    out[file.slice(0, -4)] = decodeNpy(body, `${what}: ${file}`);
  }
  return out;
}

/** Reads an uncompressed .npz written by writeNpz or np.savez. */
export async function readNpz(path: string): Promise<Record<string, NpyArray>> {
  return decodeNpz(await readFileChecked(path, { what: 'npz file' }), `npz file ${path}`);
}
