// Seeded mutations of a safetensors file, each returning the new bytes and a one-line description:
//   bytes      bit flips, truncation, garbage appended or written over a run of bytes
//   length     the 8-byte header length changed
//   metadata   a key dropped, set to junk, or given a non-string value
//   json       a value inside a JSON metadata field (config, options, rng, data, extra, …) replaced by a hostile one
//              (huge, negative, fractional, a string, null, Infinity via 1e999, …), dropped, or swapped with another
//   shape      a tensor's shape rewritten (same element count: a consistent lie; or not), a dimension added or dropped
//   dtype      a tensor's dtype changed (F32 ↔ I32 keeps the byte size: a consistent lie)
//   offsets    a tensor's data_offsets shifted, or two tensors' offsets swapped
//   rename     a tensor renamed
//   value      one element of a tensor set to NaN, ±Inf, a huge or a negative number
import { Rng } from '../../src/engine/rng.js';

export interface Mutation {
  kind: string;
  what: string;
  bytes: Uint8Array;
}

/** Values a hostile or careless editor puts into a JSON field; '__INF__' becomes 1e999 (Infinity once parsed). */
const HOSTILE: unknown[] = [
  0, -1, 1, 2, 3, 1.5, -0.5, 65, 1e7, 1e9, 2 ** 20, 2 ** 31, 2 ** 32 + 1, 2 ** 53, 1e308, -1e308, '__INF__',
  'x', '', '1', 'NaN', null, true, false, [], [1, 2], {}, { a: 1 },
];

interface Parsed {
  header: Record<string, unknown>;
  data: Uint8Array;  // everything after the header
}

function parse(bytes: Uint8Array): Parsed {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8')) as Record<string, unknown>;
  return { header, data: bytes.subarray(8 + n) };
}

function serialize(header: Record<string, unknown>, data: Uint8Array): Uint8Array {
  const text = JSON.stringify(header).replaceAll('"__INF__"', '1e999');
  const json = Buffer.from(text + ' '.repeat((8 - (Buffer.byteLength(text) % 8)) % 8));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

type Entry = { dtype: string; shape: number[]; data_offsets: [number, number] };

function tensorNames(h: Record<string, unknown>): string[] {
  return Object.keys(h).filter((k) => k !== '__metadata__');
}

/** Every path into a JSON value (objects and arrays), the root excluded. */
function paths(v: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (typeof v !== 'object' || v === null) return [];
  const keys: (string | number)[] = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
  return keys.flatMap((k) => [[...prefix, k], ...paths((v as Record<string | number, unknown>)[k], [...prefix, k])]);
}

function getAt(root: unknown, path: (string | number)[]): unknown {
  return path.reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], root);
}

function setAt(root: unknown, path: (string | number)[], value: unknown): void {
  const parent = getAt(root, path.slice(0, -1)) as Record<string | number, unknown>;
  if (value === undefined) {
    if (Array.isArray(parent)) parent.splice(path.at(-1) as number, 1);
    else delete parent[path.at(-1)!];
  } else parent[path.at(-1)!] = value;
}

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)]!;

/** Weighted by repetition: raw bytes and JSON values are where most of the damage is done. */
const KINDS = ['bytes', 'bytes', 'length', 'metadata', 'json', 'json', 'json', 'shape', 'dtype', 'offsets', 'rename',
  'value'];
/** Strings a metadata value is replaced with. */
const JUNK = ['', 'x', '0', '-1', '1e999', '{', 'null', '[]', '{}', 'ctfgen.gpt', 'ctfgen.tokens', '2'];

/** One mutation of `file`, chosen and shaped by rng (the input is not modified). */
export function mutate(file: Uint8Array, rng: Rng): Mutation {
  const bytes = new Uint8Array(file);  // a copy with its own buffer at offset 0 (Node's file buffers may be pooled)
  const out = (kind: string, what: string, b: Uint8Array): Mutation => ({ kind, what, bytes: b });
  const { header, data } = parse(bytes);
  const headerEnd = bytes.length - data.length;
  const meta = (header['__metadata__'] ?? {}) as Record<string, string>;
  const names = tensorNames(header);
  const kind = pick(rng, KINDS);
  switch (kind) {
    case 'bytes': {
      const b = bytes.slice(), how = rng.int(4);
      if (how === 0) {
        const flips = 1 + rng.int(8), inHeader = rng.uniform() < 0.5, span = inHeader ? headerEnd : b.length;
        for (let i = 0; i < flips; i++) b[rng.int(span)]! ^= 1 << rng.int(8);
        return out(kind, `${flips} bit flips${inHeader ? ' in the header' : ''}`, b);
      }
      if (how === 1) {
        const at = rng.uniform() < 0.5 ? rng.int(b.length) : b.length - 1 - rng.int(16);
        return out(kind, `truncated to ${at} of ${b.length} bytes`, b.subarray(0, at));
      }
      if (how === 2) {
        const extra = Uint8Array.from({ length: 1 + rng.int(64) }, () => rng.int(256));
        const joined = new Uint8Array(b.length + extra.length);
        joined.set(b);
        joined.set(extra, b.length);
        return out(kind, `${extra.length} garbage bytes appended`, joined);
      }
      const at = rng.int(b.length), n = 1 + rng.int(32);
      for (let i = at; i < Math.min(b.length, at + n); i++) b[i] = rng.int(256);
      return out(kind, `${n} random bytes written at ${at}`, b);
    }
    case 'length': {
      const b = bytes.slice(), n = headerEnd - 8;
      const v = pick(rng, [0, 1, n - 8, n + 8, n - 1, n + 1, rng.int(2 ** 31), 2 ** 40, 2 ** 53]);
      new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
      return out(kind, `header length ${n} → ${v}`, b);
    }
    case 'metadata': {
      const keys = Object.keys(meta);
      if (keys.length === 0) return mutate(file, rng);
      const k = pick(rng, keys), how = rng.int(4);
      const m = { ...meta } as Record<string, unknown>;
      if (how === 0) delete m[k];
      else if (how === 1) m[k] = pick(rng, JUNK);
      else if (how === 2) m[k] = pick(rng, [0, null, true, ['x'], { a: 'b' }]);
      else m[`${k}_`] = meta[k];
      header['__metadata__'] = m;
      const shown = JSON.stringify(m[k]);
      const what = ['dropped', `set to ${shown}`, `given the non-string ${shown}`, 'copied to another key'][how];
      return out(kind, `metadata "${k}" ${what}`, serialize(header, data));
    }
    case 'json': {
      const isJson = (k: string): boolean => {
        try { return typeof JSON.parse(meta[k]!) === 'object'; } catch { return false; }
      };
      const fields = Object.keys(meta).filter(isJson);
      if (fields.length === 0) return mutate(file, rng);
      const k = pick(rng, fields), v = JSON.parse(meta[k]!) as unknown, all = paths(v);
      if (all.length === 0) return mutate(file, rng);
      const p = pick(rng, all), how = rng.int(5);
      let what: string;
      if (how <= 2) {
        const x = pick(rng, HOSTILE);
        setAt(v, p, x);
        what = `${k}.${p.join('.')} = ${JSON.stringify(x)}`;
      } else if (how === 3) {
        setAt(v, p, undefined);
        what = `${k}.${p.join('.')} dropped`;
      } else {
        const q = pick(rng, all), a = getAt(v, p), b = getAt(v, q);
        if (p.join('.').startsWith(q.join('.')) || q.join('.').startsWith(p.join('.'))) return mutate(file, rng);
        setAt(v, p, b);
        setAt(v, q, a);
        what = `${k}.${p.join('.')} ⇄ ${k}.${q.join('.')}`;
      }
      header['__metadata__'] = { ...meta, [k]: JSON.stringify(v).replaceAll('"__INF__"', '1e999') };
      return out(kind, what, serialize(header, data));
    }
    case 'shape': {
      const name = pick(rng, names), e = header[name] as Entry, old = JSON.stringify(e.shape), how = rng.int(4);
      if (how === 0 && e.shape.length >= 2) e.shape = [...e.shape].reverse();          // same element count
      else if (how === 1) e.shape = [e.shape.reduce((a, b) => a * b, 1)];                 // flattened, same count
      else if (how === 2) e.shape = [...e.shape, pick(rng, [1, 2, 1e9])];
      else e.shape = e.shape.map((d) => (rng.uniform() < 0.5 ? pick(rng, [0, 1, d * 2, 2 ** 31, -1]) : d));
      return out(kind, `tensor "${name}" shape ${old} → ${JSON.stringify(e.shape)}`, serialize(header, data));
    }
    case 'dtype': {
      const name = pick(rng, names), e = header[name] as Entry, old = e.dtype;
      const floats = ['I32', 'I32', 'F16', 'BF16', 'U8', 'f32'], ints = ['F32', 'F32', 'I64', 'F16', 'BOOL'];
      e.dtype = pick(rng, old === 'F32' ? floats : ints);
      return out(kind, `tensor "${name}" dtype ${old} → ${e.dtype}`, serialize(header, data));
    }
    case 'offsets': {
      const name = pick(rng, names), e = header[name] as Entry, old = JSON.stringify(e.data_offsets);
      if (rng.uniform() < 0.5) {
        const other = pick(rng, names), f = header[other] as Entry;
        [e.data_offsets, f.data_offsets] = [f.data_offsets, e.data_offsets];
        return out(kind, `tensors "${name}" and "${other}" swap data_offsets`, serialize(header, data));
      }
      const d = pick(rng, [-4, 4, 8, -8, 2 ** 31]);
      e.data_offsets = [e.data_offsets[0] + d, e.data_offsets[1] + (rng.uniform() < 0.5 ? d : 0)];
      return out(kind, `tensor "${name}" data_offsets ${old} → ${JSON.stringify(e.data_offsets)}`,
        serialize(header, data));
    }
    case 'rename': {
      const name = pick(rng, names);
      const to = pick(rng, [name + 'x', name.replace(/\d/, '9'), name.toUpperCase(), '__metadata__x', '']);
      const h: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(header)) h[k === name ? to : k] = v;
      return out(kind, `tensor "${name}" renamed "${to}"`, serialize(h, data));
    }
    default: {  // value
      const name = pick(rng, names), e = header[name] as Entry;
      const count = (e.data_offsets[1] - e.data_offsets[0]) / 4;
      if (!(count >= 1) || (e.dtype !== 'F32' && e.dtype !== 'I32')) return mutate(file, rng);
      const b = bytes.slice(), view = new DataView(b.buffer, headerEnd + e.data_offsets[0]), i = rng.int(count);
      const floats = [NaN, Infinity, -Infinity, 3e38, -1e-45], ints = [-1, 2 ** 31 - 1, -(2 ** 31), 1e6];
      const v = pick(rng, e.dtype === 'F32' ? floats : ints);
      if (e.dtype === 'F32') view.setFloat32(4 * i, v, true);
      else view.setInt32(4 * i, v, true);
      return out('value', `tensor "${name}"[${i}] = ${v}`, b);
    }
  }
}
