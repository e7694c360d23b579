// The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/): a big-endian header
// [0, 0, type, ndims], then ndims u32 dimensions, then exactly prod(dims) items in row-major order.
// Only unsigned bytes (type 0x08) occur in these sets, so only they are accepted. Files may be
// gzipped (recognised by the magic 1f 8b, not the name). Anything that does not add up is an error
// naming the file: wrong magic, another item type, an unexpected number of dimensions, a payload
// shorter or longer than the dimensions say, a damaged gzip stream.
import { gunzip } from 'node:zlib';
import { promisify } from 'node:util';
import { CtfError } from '../errors.js';
import { readFileChecked } from '../io/atomic.js';

const gunzipAsync = promisify(gunzip);

const IDX_TYPE_NAMES: Record<number, string> = {
  0x08: 'unsigned byte', 0x09: 'signed byte', 0x0b: 'int16', 0x0c: 'int32', 0x0d: 'float32', 0x0e: 'float64',
};
const U8 = 0x08;
/** Larger than any IDX file of the supported sets by far; guards against a wrong path. */
const MAX_FILE_BYTES = 2 ** 31 - 1;

export interface IdxArray {
  dims: number[];     // e.g. [60000, 28, 28] for images, [60000] for labels
  data: Uint8Array;   // prod(dims) bytes, row-major; a view into the (decompressed) file
}

export interface IdxExpect {
  ndims?: number;     // 3 for images (magic 0x00000803), 1 for labels (0x00000801)
  what?: string;      // "images" / "labels", for messages
}

const hex = (n: number, width = 2): string => '0x' + n.toString(16).padStart(width, '0');

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Parses an (already decompressed) IDX buffer. `source` names the file in every error. */
export function parseIdx(bytes: Uint8Array, source: string, expect: IdxExpect = {}): IdxArray {
  const what = expect.what ? `${expect.what} file` : 'IDX file';
  if (bytes.length < 4)
    throw new CtfError(`${what} ${source}: ${bytes.length} bytes, too short for the 4-byte IDX magic number`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = dv.getUint32(0, false);
  const type = bytes[2]!, ndims = bytes[3]!;
  const wantMagic = expect.ndims !== undefined ? ` (expected ${hex((U8 << 8) | expect.ndims, 8)})` : '';
  if (bytes[0] !== 0 || bytes[1] !== 0)
    throw new CtfError(`${what} ${source}: magic number ${hex(magic, 8)} does not start with two zero ` +
      `bytes${wantMagic} — not an IDX file`);
  if (type !== U8)
    throw new CtfError(`${what} ${source}: item type ${hex(type)} (${IDX_TYPE_NAMES[type] ?? 'unknown'}), expected ` +
      `${hex(U8)} (unsigned byte)`);
  if (ndims === 0) throw new CtfError(`${what} ${source}: magic number ${hex(magic, 8)} declares 0 dimensions`);
  if (expect.ndims !== undefined && ndims !== expect.ndims)
    throw new CtfError(`${what} ${source}: magic number ${hex(magic, 8)} declares ${ndims} dimension(s), expected ` +
      `${expect.ndims}${wantMagic}`);
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes)
    throw new CtfError(`${what} ${source}: truncated header: ${ndims} dimensions need ${headerBytes} bytes, the file ` +
      `has ${bytes.length}`);
  const dims: number[] = [];
  let items = 1;
  for (let i = 0; i < ndims; i++) {
    const d = dv.getUint32(4 + 4 * i, false);
    dims.push(d);
    items *= d;
  }
  const payload = bytes.length - headerBytes;
  const shape = `[${dims.join(', ')}]`;
  if (payload < items)
    throw new CtfError(`${what} ${source}: truncated: dimensions ${shape} need ${items} data bytes, the file has ` +
      `${payload} (${items - payload} missing)`);
  if (payload > items)
    throw new CtfError(`${what} ${source}: ${payload - items} extra byte(s) after the ${items} data bytes that ` +
      `dimensions ${shape} describe`);
  return { dims, data: bytes.subarray(headerBytes) };
}

/** Decompresses when the bytes start with the gzip magic; otherwise returns them as they are. */
export async function maybeGunzip(bytes: Uint8Array, source: string): Promise<Uint8Array> {
  if (!isGzip(bytes)) return bytes;
  try {
    return await gunzipAsync(bytes, { maxOutputLength: MAX_FILE_BYTES });
  } catch (e) {
    throw new CtfError(`${source}: corrupt or truncated gzip stream (${(e as Error).message})`);
  }
}

/** Reads an IDX file (plain or gzipped) and checks it completely. */
export async function readIdxFile(path: string, expect: IdxExpect = {}): Promise<IdxArray> {
  const raw = await readFileChecked(path, {
    maxBytes: MAX_FILE_BYTES,
    what: expect.what ? `${expect.what} file` : 'IDX file',
  });
  return parseIdx(await maybeGunzip(raw, path), path, expect);
}

/** Encodes u8 data as IDX (for tests and fixtures). */
export function encodeIdx(dims: number[], data: Uint8Array): Uint8Array {
  const items = dims.reduce((a, b) => a * b, 1);
  if (data.length !== items)
    throw new CtfError(`encodeIdx: ${data.length} bytes for dimensions [${dims.join(', ')}] (${items} expected)`);
  const out = new Uint8Array(4 + 4 * dims.length + items);
  const dv = new DataView(out.buffer);
  out[2] = U8;
  out[3] = dims.length;
  dims.forEach((d, i) => dv.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}
