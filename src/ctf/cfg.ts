// Classifier-free guidance (docs/method.md, Sampling). The GPTs learn the null class (the last row of the class
// table, index numClasses) by class dropout in training (Gpt.dropClasses); everything else is here: at sampling
// time every image runs twice in one batch, conditioned and unconditioned, and the two are mixed:
//
//   classes (B)            -> cfgClasses -> (2B) [classes; null × B]
//   tokens (B) or (B·T)    -> cfgTokens  -> [tokens; tokens], the same inputs for both halves
//   rows (2B·…, W)         -> guide      -> (B·…, W) uncond + s · (cond − uncond)
//
// Scale 1 is no guidance and skips the doubled batch altogether (usesCfg). guide() mixes logits, and — since the
// output head is linear and bias-free — final hidden states just as well, which is how stage 2's members-only head
// guides without computing every logit. Stage 1 and the baseline guide at every decoding step (generate.ts);
// stage 2 once per pass (stage2.ts).
import { resolveSampleOptions, type OptionName, type SampleOptions } from '../engine/sampling.js';
import { CtfError } from '../errors.js';

/** What decides a token at one position: guidance, then the row sampler (temperature → top-k → top-p). */
export interface GuidedOptions extends SampleOptions {
  /** Guidance scale s: logits = uncond + s·(cond − uncond). Default 1 = none (no batch doubling). */
  cfgScale?: number;
}

/** The options with their defaults, or a CtfError naming the bad one (`name`: see OptionName). */
export function resolveGuidedOptions(o: GuidedOptions, name: OptionName): Required<GuidedOptions> {
  const cfgScale = o.cfgScale ?? 1;
  if (!Number.isFinite(cfgScale))
    throw new CtfError(`${name('cfgScale')} ${cfgScale} must be a finite number (1 = no guidance)`);
  return { cfgScale, ...resolveSampleOptions(o, name) };
}

/** True when guidance needs the doubled [cond; null] batch. */
export function usesCfg(cfgScale: number): boolean {
  return cfgScale !== 1;
}

/** classes (B) -> (2B) [classes; null × B]; nullClass = numClasses. */
export function cfgClasses(classes: Int32Array, nullClass: number): Int32Array {
  const out = new Int32Array(2 * classes.length).fill(nullClass);
  out.set(classes);
  return out;
}

/** tokens (n) -> out (2n) = [tokens; tokens], the inputs of both halves of a doubled batch. */
export function cfgTokens(tokens: Int32Array, out: Int32Array = new Int32Array(2 * tokens.length)): Int32Array {
  out.set(tokens);
  out.set(tokens, tokens.length);
  return out;
}

/** Rows (2n, width) = [cond; uncond] -> guided rows (n, width) = uncond + scale · (cond − uncond), into out. */
export function guide(doubled: Float32Array, width: number, scale: number,
  out: Float32Array<ArrayBuffer> = new Float32Array(doubled.length / 2)): Float32Array {
  const n = doubled.length / 2;
  if (out.length !== n || n % width !== 0)
    throw new CtfError(`guide: ${doubled.length} values are not (2B, ${width}) rows for an output of ${out.length}`);
  for (let i = 0; i < n; i++) {
    const u = doubled[n + i]!;
    out[i] = u + (doubled[i]! - u) * scale;
  }
  return out;
}
