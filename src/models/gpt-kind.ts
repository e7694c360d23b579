// The three GPTs of CTF, one name each everywhere: the `ctfgen train` commands, the sampler flags, the run-directory
// files, checkpoint metadata (ctf_kind), train-state tasks (gpt:<kind>) and train reports (model):
//   baseline  plain LlamaGen: causal, fine tokens in and out
//   stage1    CTF stage 1: causal, coarse labels in and out
//   aux       CTF stage 2, the auxiliary model: bidirectional, coarse labels in, fine tokens out
// What each one reads and predicts: src/train/gpt-train.ts (gptTask, sequenceBatch); docs/method.md.
export const GPT_KINDS = ['baseline', 'stage1', 'aux'] as const;
export type GptKind = (typeof GPT_KINDS)[number];

/**
 * The names before the renaming (`ctfgen train coarse-ar|fine-aux`). Files written then carry them (ctf_kind,
 * gpt:coarse-ar); storedGptKind maps them when a file is read, and the old command names stay as aliases.
 */
export const LEGACY_GPT_KINDS: Readonly<Record<string, GptKind>> = { 'coarse-ar': 'stage1', 'fine-aux': 'aux' };

/** A kind as a file stores it, in today's naming: the old names mapped, anything else unchanged (the caller checks). */
export function storedGptKind(stored: string): string;
export function storedGptKind(stored: string | undefined): string | undefined;
export function storedGptKind(stored: string | undefined): string | undefined {
  return stored !== undefined && Object.hasOwn(LEGACY_GPT_KINDS, stored) ? LEGACY_GPT_KINDS[stored] : stored;
}

/** The legacy name of a kind, if it had another one (run directories made before the renaming hold such files). */
export function legacyGptKind(kind: GptKind): string | undefined {
  return Object.keys(LEGACY_GPT_KINDS).find((k) => LEGACY_GPT_KINDS[k] === kind);
}

/** How messages name each model. */
export const GPT_KIND_TITLES: Readonly<Record<GptKind, string>> = {
  baseline: 'the baseline', stage1: 'the stage-1 model', aux: 'the auxiliary model',
};
