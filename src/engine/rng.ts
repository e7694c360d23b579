// Seeded, splittable, counter-based RNG. A stream is (key0, key1, counter); split(k) derives an
// independent child stream, so randomness can be tied to names ("dropout", image index) and stays
// the same whatever else draws numbers. Native kernels get a u32 seed and hash (seed, index) the same way.

/** A 32-bit integer hash with good avalanche (lowbias32). Same function in native/common.h. */
export function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

function hashKey(key: number | string): number {
  if (typeof key === 'number') return mix32((key >>> 0) ^ mix32(Math.floor(key / 4294967296) >>> 0));
  let h = 0x811c9dc5; // FNV-1a
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return mix32(h >>> 0);
}

export interface RngState { key0: number; key1: number; counter: number }

export class Rng {
  private key0: number;
  private key1: number;
  private counter = 0;

  constructor(seed: number, key1 = 0x9e3779b9) {
    this.key0 = hashKey(seed);
    this.key1 = mix32(key1 ^ 0x85ebca6b);
  }

  /** An independent child stream named by key; does not advance this stream. */
  split(key: number | string): Rng {
    const child = new Rng(0);
    const k = hashKey(key);
    child.key0 = mix32(this.key0 ^ k);
    child.key1 = mix32((this.key1 + Math.imul(k, 0x27d4eb2d)) >>> 0);
    return child;
  }

  nextU32(): number {
    const c = this.counter++;
    return mix32((mix32((c ^ this.key0) >>> 0) + this.key1) >>> 0);
  }

  /** Uniform in [0, 1) with 24 bits of resolution (what float32 holds). */
  uniform(): number {
    return (this.nextU32() >>> 8) / 16777216;
  }

  /** Uniform in [0, 1) with 53 bits, for sampling from large vocabularies. */
  uniform53(): number {
    return ((this.nextU32() >>> 5) * 67108864 + (this.nextU32() >>> 6)) / 9007199254740992;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform53() * n);
  }

  /** Standard normal (Box–Muller; one draw per call keeps the state a plain counter). */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.uniform53();
    const v = this.uniform53();
    const r = Math.sqrt(-2 * Math.log(u));
    return r * Math.cos(2 * Math.PI * v);
  }

  fillNormal(out: Float32Array, mean = 0, std = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.normal();
    return out;
  }

  fillUniform(out: Float32Array, lo = 0, hi = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = lo + (hi - lo) * this.uniform();
    return out;
  }

  /** A fresh u32 seed for a native kernel (which hashes it with the element index). */
  seed(): number {
    return this.nextU32();
  }

  /** Fisher–Yates permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = p[i]!;
      p[i] = p[j]!;
      p[j] = t;
    }
    return p;
  }

  getState(): RngState {
    return { key0: this.key0, key1: this.key1, counter: this.counter };
  }

  setState(s: RngState): void {
    this.key0 = s.key0 >>> 0;
    this.key1 = s.key1 >>> 0;
    this.counter = s.counter;
  }
}
