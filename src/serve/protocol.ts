// The web demo's API as data, shared by the server (src/serve) and the page (web/): the request bodies as JSON
// schemas (the server validates with them, the page builds its form from them), the defaults, the server-sent
// events and the answers. Pure — no Node, no DOM — because the page's build compiles this file too.
//
//   GET  /api/info       -> InfoResponse
//   GET  /api/health     -> HealthResponse
//   POST /api/generate   GenerateBody -> GenerateResponse, or with `Accept: text/event-stream` a stream of StreamEvents
//   POST /api/why        WhyBody -> WhyResponse           (the paper's key observation on one image)
//   POST /api/members    MembersBody -> MembersResponse   (one token's cluster members, decoded in place)
// Errors: 400 / 404 / 413 / 415 / 429 with ErrorResponse; 429 also carries Retry-After (seconds).
import { SAMPLING_DEFAULTS } from '../ctf/defaults.js';

export type SampleMethod = 'ctf' | 'baseline';
export type GenerateMethod = SampleMethod | 'both';

/** POST /api/generate. Everything but `class` has a default (GENERATE_DEFAULTS, those of `ctfgen sample`). */
export interface GenerateBody {
  class: number | string;   // class id, or its name ("Trouser")
  method?: GenerateMethod;  // both: CTF and the baseline side by side, same seed and options
  cfg?: number;             // classifier-free guidance of stage 1 / the baseline (1 = off)
  t1?: number;              // temperature of stage 1 / the baseline (0 = greedy)
  t2?: number;              // temperature of stage 2
  topK?: number;            // both stages (0 = off)
  topP?: number;            // both stages (1 = off)
  seed?: number;            // root of every image's random stream
  n?: number;               // images
  rounds?: number;          // stage-2 rounds of masked refinement (1 = the paper's single pass)
}
export type GenerateRequest = Required<GenerateBody>;

export const GENERATE_DEFAULTS: Omit<GenerateRequest, 'class'> = {
  method: 'ctf', ...SAMPLING_DEFAULTS, topK: 0, topP: 1, seed: 0, n: 1, rounds: 1,
};

/** What the server's run holds: the page's choices depend on it. */
export interface RunInfo {
  run: string;                  // the run directory as the server was started with it (for `ctfgen sample --run`)
  classNames: string[];         // classNames[id], from the dataset the tokenizer was trained on
  methods: SampleMethod[];      // the methods whose checkpoints the run has
  grid: number;                 // tokens per side; T = grid²
  imageSize: number;            // pixels per side
  channels: number;             // 1 (grey) or 3
  v: number;                    // codebook size V
  k: number | null;             // clusters K (null without a coarse map)
  maskedAux: boolean;           // the aux reads chosen fine tokens, so stage 2 may run several rounds
  testImages: string | null;    // dataset whose test split the "why it works" view can encode, if installed
}

export interface ServerLimits {
  maxImages: number;   // n per request
  maxRounds: number;   // stage-2 rounds per request (1 when the aux is not a masked one)
  maxMembers: number;  // cluster members decoded per /api/members answer
  queue: number;       // requests waiting for the sampler (beyond the one it runs); more get 429
  bodyBytes: number;   // larger bodies get 413
}

export interface InfoResponse {
  run: RunInfo;
  limits: ServerLimits;
  defaults: typeof GENERATE_DEFAULTS;
  schemas: { generate: JsonSchema; why: JsonSchema; members: JsonSchema };
}

export interface HealthResponse {
  status: 'ok';
  queue: { running: number; waiting: number; limit: number };
  served: { completed: number; cancelled: number; rejected: number; failed: number };
  rssMb: number;
  uptimeSeconds: number;
}

/** One method's images. Pixels are base64 u8 (C, S, S), what the page draws; png the same pixels as files. */
export interface MethodResult {
  method: SampleMethod;
  classId: number;
  className: string;
  pixels: string[];       // one per image
  png: string[];          // base64 PNG per image: the bytes `ctfgen sample --each DIR --scale 1` writes
  tokens: number[][];     // (n, T) fine tokens
  coarse: number[][] | null;  // (n, T) CTF's stage-1 labels
  tokensJson: string;     // what `ctfgen sample --tokens-out` writes
  seconds: { stage1: number; stage2: number; decode: number; total: number; previews: number };
  imagesPerSecond: number;    // n / total; total excludes drawing the previews (seconds.previews)
  command: string;        // the `ctfgen sample …` command that makes the same images and tokens
  frames: number;         // preview frames streamed for this method
}

export interface GenerateResponse { request: GenerateRequest & { class: number }; results: MethodResult[] }

/** Server-sent events of a streamed generate: `event: <type>` then `data: <JSON of the rest>`. */
export type StreamEvent =
  | { type: 'queued'; ahead: number }                 // requests before this one
  | { type: 'start'; method: SampleMethod }
  | {
    type: 'preview'; method: SampleMethod;
    phase: 'stage1' | 'stage2';   // stage 1 (CTF's coarse labels, or the baseline's fine tokens) or a stage-2 round
    first: number;                // index of the first image these pixels show (requests over 64 images come in chunks)
    step: number; steps: number;  // tokens known of T in stage 1; round of rounds in stage 2
    pixels: string[];             // per image, base64 u8 (C, S, S); cells not sampled yet are mid-grey
  }
  | { type: 'result'; result: MethodResult }
  | { type: 'done'; request: GenerateRequest & { class: number } }
  | { type: 'error'; status: number; error: string };

/** POST /api/why: a test image of a class (encoded by the tokenizer) or given tokens (a generated image). */
export type WhyBody =
  | { source: 'test'; class: number | string; index?: number; seed?: number }
  | { source: 'tokens'; tokens: number[]; seed?: number };

export interface WhyRow {
  name: 'original' | 'reconstruction' | 'k-means swap' | 'random swap';
  pixels: string;                // base64 u8 (C, S, S)
  psnrVsRecon: number | null;    // dB, pixels on [0, 1]; null for the reconstruction itself and the original
  tokensChanged: number;         // fraction of the tokens that differ from the image's own
}

export interface WhyResponse {
  tokens: number[];     // (T) the image's fine tokens
  clusters: number[];   // (T) their k-means clusters
  rows: WhyRow[];
  seed: number;
}

/** POST /api/members: which codewords share the token at `position`'s cluster, each decoded in its place. */
export interface MembersBody { tokens: number[]; position: number; seed?: number }

export interface ClusterMembers {
  cluster: number;
  size: number;                                  // members in all
  members: { id: number; pixels: string }[];     // at most limits.maxMembers, the token itself first
}

export interface MembersResponse { position: number; token: number; kmeans: ClusterMembers; random: ClusterMembers }

export interface ErrorResponse { error: string; code: string; status: number }

// ---- schemas ---------------------------------------------------------------------------------------------------

/** The subset of JSON Schema (draft 7) used here. `description` names the field for error messages. */
export interface JsonSchema {
  type?: 'object' | 'array' | 'integer' | 'number' | 'string';
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean;
  enum?: (string | number)[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  if?: JsonSchema; then?: JsonSchema;
  items?: JsonSchema;
  minItems?: number; maxItems?: number;
  minimum?: number; maximum?: number; exclusiveMinimum?: number;
  default?: unknown;
  const?: unknown;
}

const MAX_SEED = 2 ** 31 - 1;

/** A bounded number; `description` ("field: what it is") is what error messages quote. */
function range(type: 'number' | 'integer', minimum: number, maximum: number, description: string,
  more: JsonSchema = {}): JsonSchema {
  return { type, minimum, maximum, description, ...more };
}

function classSchema(run: RunInfo): JsonSchema {
  const last = run.classNames.length - 1;
  return {
    description: `class: an id in 0…${last} or one of the names ${JSON.stringify(run.classNames)}`,
    oneOf: [{ type: 'integer', minimum: 0, maximum: last }, { type: 'string', enum: run.classNames }],
  };
}

// The server fills in the defaults of seed and index where it reads them.
const seedSchema = range('integer', 0, MAX_SEED, `seed: an integer in 0…${MAX_SEED} (default 0)`);

export function generateSchema(run: RunInfo, limits: ServerLimits): JsonSchema {
  const d = GENERATE_DEFAULTS, rounds = run.maskedAux ? limits.maxRounds : 1;
  const methods: GenerateMethod[] = run.methods.length === 2 ? ['ctf', 'baseline', 'both'] : [...run.methods];
  const method = run.methods.includes(d.method as SampleMethod) ? d.method : run.methods[0];
  return {
    type: 'object',
    additionalProperties: false,
    required: ['class'],
    properties: {
      class: classSchema(run),
      method: { type: 'string', enum: methods, default: method, description: `method: one of ${methods.join(', ')}` },
      cfg: range('number', 0, 20, 'cfg: guidance scale in [0, 20] (1 = off)', { default: d.cfg }),
      t1: range('number', 0, 10, 't1: stage-1 temperature in [0, 10] (0 = greedy)', { default: d.t1 }),
      t2: range('number', 0, 10, 't2: stage-2 temperature in [0, 10] (0 = greedy)', { default: d.t2 }),
      topK: range('integer', 0, 65536, 'topK: an integer in 0…65536 (0 = off)', { default: d.topK }),
      topP: {
        type: 'number', exclusiveMinimum: 0, maximum: 1, default: d.topP,
        description: 'topP: a number in (0, 1] (1 = off)',
      },
      seed: { ...seedSchema, default: d.seed },
      n: range('integer', 1, limits.maxImages, `n: images per request, 1…${limits.maxImages}`, { default: d.n }),
      rounds: range('integer', 1, rounds, run.maskedAux ? `rounds: stage-2 rounds, 1…${rounds}`
        : 'rounds: 1 (this run\'s aux refines in one pass; more rounds need an aux trained with --refine masked)',
      { default: d.rounds }),
    },
  };
}

function tokensSchema(run: RunInfo): JsonSchema {
  const T = run.grid * run.grid;
  return {
    type: 'array', minItems: T, maxItems: T, items: { type: 'integer', minimum: 0, maximum: run.v - 1 },
    description: `tokens: ${T} codebook ids (a ${run.grid}×${run.grid} grid, row-major), each in 0…${run.v - 1}`,
  };
}

export function whySchema(run: RunInfo): JsonSchema {
  return {
    type: 'object', additionalProperties: false, required: ['source'],
    description: 'body: {"source": "test", "class": …, "index"?, "seed"?} or {"source": "tokens", "tokens": […]}',
    properties: {
      source: { type: 'string', enum: ['test', 'tokens'], description: 'source: "test" (a test image) or "tokens"' },
      class: classSchema(run),
      index: range('integer', 0, 100000, 'index: which test image of the class, 0… (default 0)'),
      tokens: tokensSchema(run),
      seed: seedSchema,
    },
    allOf: [
      { if: { properties: { source: { const: 'test' } } }, then: { required: ['class'] } },
      { if: { properties: { source: { const: 'tokens' } } }, then: { required: ['tokens'] } },
    ],
  };
}

export function membersSchema(run: RunInfo): JsonSchema {
  const T = run.grid * run.grid;
  return {
    type: 'object', additionalProperties: false, required: ['tokens', 'position'],
    properties: {
      tokens: tokensSchema(run), seed: seedSchema,
      position: range('integer', 0, T - 1, `position: a token in 0…${T - 1}`),
    },
  };
}

// ---- server-sent events ------------------------------------------------------------------------------------------

/** One event on the wire: `event: type`, `data: JSON of the rest`, a blank line. */
export function formatSse(e: StreamEvent): string {
  const { type, ...rest } = e;
  return `event: ${type}\ndata: ${JSON.stringify(rest)}\n\n`;
}

/**
 * Incremental parser of a text/event-stream (the subset formatSse writes: event and data lines, comments ignored).
 * push(chunk) returns the events completed by it.
 */
export class SseParser {
  private buffer = '';

  push(chunk: string): StreamEvent[] {
    this.buffer += chunk;
    const out: StreamEvent[] = [];
    let end: number;
    while ((end = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      let type = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) type = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length) out.push({ type, ...(JSON.parse(data.join('\n')) as object) } as StreamEvent);
    }
    return out;
  }
}

// ---- pixels ------------------------------------------------------------------------------------------------------

/** Mid-grey, the colour of a cell whose token is not known yet (0 on the model's [−1, 1] scale). */
export const UNKNOWN_GREY = 128;
