// `ctfgen serve`'s HTTP side, on Fastify: the page's files (a fixed table, assets.ts), the JSON API of protocol.ts,
// and generate's server-sent events. Fastify is here for what it does for every route the same way: bodies parsed
// with a size limit (413) and prototype-poisoning checks, validated by compiled JSON schemas (the ones the page
// reads), unknown routes and methods answered 404, malformed URLs 400 — all through one error handler that turns
// anything a client can cause into a 4xx JSON error and keeps 500 for our own bugs.
// Sampling runs on the sampler thread (jobs.ts); a client that goes away cancels its job.
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { CtfError } from '../errors.js';
import { loadAssets } from './assets.js';
import type { GenerateJob } from './generate.js';
import { Cancelled, QueueFull, SamplerThread, type JobSpec, type Ticket } from './jobs.js';
import {
  GENERATE_DEFAULTS, formatSse, generateSchema, membersSchema, whySchema, type ErrorResponse, type GenerateRequest,
  type HealthResponse, type InfoResponse, type JsonSchema, type MembersBody, type RunInfo, type SampleMethod,
  type ServerLimits, type StreamEvent, type WhyBody,
} from './protocol.js';

export interface ServeOptions {
  run: string;                 // the run directory
  shownRun?: string;           // how reproducing commands name it (default: run)
  queue?: number;              // requests waiting beyond the running one (default 8)
  maxImages?: number;          // n per request (default 16)
  maxRounds?: number;          // stage-2 rounds per request (default 8)
  maxMembers?: number;         // members decoded per /api/members (default 32)
  bodyBytes?: number;          // request body limit (default 16 KiB)
  /** Host header names accepted (DNS-rebinding guard for a loopback server); null accepts any. */
  hosts?: string[] | null;
  log?: (line: string) => void;  // one line per API request (default: none)
}

export const LOOPBACK_HOSTS = ['127.0.0.1', 'localhost', '[::1]', '::1'];

export interface DemoServer {
  app: FastifyInstance;
  sampler: SamplerThread;
  info: RunInfo;
  limits: ServerLimits;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) { super(message); }
}

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  // Everything the page uses comes from this server: scripts, styles, API; images are data: URLs it makes.
  'content-security-policy':
    "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
};

function errorBody(status: number, code: string, error: string): ErrorResponse {
  return { error, code, status };
}

/** One of Ajv's errors, as Fastify hands them on. */
export interface SchemaError {
  instancePath: string; keyword: string; message?: string; params: Record<string, unknown>;
}

/** A readable sentence from Ajv's errors: the field, what is wrong, and what the schema allows. */
export function validationMessage(errors: SchemaError[], schema: JsonSchema): string {
  const unknown = errors.find((e) => e.keyword === 'additionalProperties');
  const fields = (s: JsonSchema): string[] => Object.keys(s.properties ?? {});
  const allowed = fields(schema);
  if (unknown)
    return `unknown field "${String(unknown.params['additionalProperty'])}"; the fields are ${allowed.join(', ')}`;
  const missing = errors.find((e) => e.keyword === 'required');
  // A field required by one form of the body (allOf/if) is explained with the forms.
  const forms = schema.allOf ? ` — ${schema.description}` : '';
  if (missing) return `missing field "${String(missing.params['missingProperty'])}"${forms}`;
  const first = errors[0];
  if (!first) return 'invalid request body';
  const path = first.instancePath.split('/').filter(Boolean);
  if (path.length === 0)
    return `the body must be a JSON object: ${schema.description ?? `with the fields ${allowed.join(', ')}`}`;
  const field = path[0]!;
  const prop = schema.properties?.[field];
  const oneOf = errors.some((e) => e.keyword === 'oneOf' && e.instancePath === `/${field}`);
  const what = oneOf ? 'matches none of the allowed forms' : first.message ?? 'is invalid';
  const expected = prop?.description ? ` — expected ${prop.description.replace(/^\w+: /, '')}` : '';
  return `${path.join('.')}: ${what}${expected}`;
}

export async function createDemoServer(o: ServeOptions): Promise<DemoServer> {
  const assets = loadAssets();
  const sampler = await SamplerThread.start(o.run, { queue: o.queue ?? 8, shownRun: o.shownRun });
  const info = sampler.info;
  const limits: ServerLimits = {
    maxImages: o.maxImages ?? 16, maxRounds: info.maskedAux ? (o.maxRounds ?? 8) : 1, maxMembers: o.maxMembers ?? 32,
    queue: sampler.queueLimit, bodyBytes: o.bodyBytes ?? 16 * 1024,
  };
  const schemas = { generate: generateSchema(info, limits), why: whySchema(info), members: membersSchema(info) };
  const hosts = o.hosts === undefined ? LOOPBACK_HOSTS : o.hosts;
  const started = performance.now();

  const app = Fastify({
    bodyLimit: limits.bodyBytes,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    // Reject what is wrong instead of repairing it: no type coercion, no silently dropped fields.
    ajv: {
      customOptions: {
        coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false, strictNumbers: true,
      },
    },
    // Malformed URLs (bad percent-encoding): the reply's generic type cannot be named here, hence the raw write.
    frameworkErrors: (err, _req, reply) => {
      reply.raw.writeHead(400, { 'content-type': 'application/json; charset=utf-8', ...SECURITY_HEADERS });
      reply.raw.end(JSON.stringify(errorBody(400, err.code, err.message)));
    },
    return503OnClosing: true,
  });

  // JSON only: a text/plain POST is what a foreign page can send without a CORS preflight.
  app.removeContentTypeParser('text/plain');
  app.addHook('onRequest', async (req) => {
    if (hosts && !hosts.includes(req.hostname))
      throw new HttpError(400, 'BAD_HOST', `Host "${req.hostname}" is not this server's (expected one of ` +
        `${hosts.join(', ')}): a loopback demo only answers requests addressed to loopback`);
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.headers(SECURITY_HEADERS);
    return payload;
  });
  if (o.log) {
    const log = o.log;
    app.addHook('onResponse', async (req, reply) => {
      if (req.url.startsWith('/api/') && req.url !== '/api/health')
        log(`${req.method} ${req.url} ${reply.statusCode} ${reply.elapsedTime.toFixed(0)} ms`);
    });
  }

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err.validation) {
      const schema = req.routeOptions.schema?.body as JsonSchema | undefined;
      const message = schema ? validationMessage(err.validation, schema) : err.message;
      return reply.code(400).send(errorBody(400, 'BAD_REQUEST', message));
    }
    if (err instanceof HttpError) return reply.code(err.status).send(errorBody(err.status, err.code, err.message));
    if (err instanceof CtfError) return reply.code(400).send(errorBody(400, 'BAD_REQUEST', err.message));
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500)
      return reply.code(status).send(errorBody(status, err.code ?? 'BAD_REQUEST', err.message));
    o.log?.(`internal error on ${req.method} ${req.url}: ${err.stack ?? err.message}`);
    return reply.code(500).send(errorBody(500, 'INTERNAL', 'internal error (the server log has the details)'));
  });
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0]!.slice(0, 200);
    const message = `no ${req.method} ${path} here; the page is at / and the API under /api/ (GET /api/info)`;
    return reply.code(404).send(errorBody(404, 'NOT_FOUND', message));
  });

  for (const [url, asset] of assets)
    app.get(url, (_req, reply) => reply.type(asset.type).header('cache-control', 'no-cache').send(asset.body));

  app.get('/api/health', async (): Promise<HealthResponse> => ({
    status: 'ok', queue: sampler.queue(), served: { ...sampler.stats },
    rssMb: process.memoryUsage.rss() / 2 ** 20, uptimeSeconds: (performance.now() - started) / 1000,
  }));
  app.get('/api/info', async (): Promise<InfoResponse> => ({
    run: info, limits, defaults: GENERATE_DEFAULTS, schemas,
  }));
  const classId = (c: number | string): number => (typeof c === 'number' ? c : info.classNames.indexOf(c));

  /** Queues a job; a full queue answers 429 with Retry-After. */
  const submit = (reply: FastifyReply, spec: JobSpec, onEvent?: (e: StreamEvent) => void): Ticket => {
    try {
      return sampler.submit(spec, onEvent);
    } catch (e) {
      if (e instanceof QueueFull) {
        void reply.header('retry-after', String(e.retryAfter));
        throw new HttpError(429, 'BUSY', e.message);
      }
      throw e;
    }
  };
  /** Waits for a plain JSON job; the client leaving first cancels it. */
  const answer = async (reply: FastifyReply, ticket: Ticket): Promise<unknown> => {
    reply.raw.on('close', () => { if (!reply.raw.writableFinished) ticket.cancel(); });
    try {
      return await ticket.done;
    } catch (e) {
      if (e instanceof Cancelled) return reply.code(503).send(errorBody(503, 'CANCELLED', e.message));
      throw e;
    }
  };

  app.post('/api/generate', { schema: { body: schemas.generate } }, async (req: FastifyRequest, reply) => {
    const body = req.body as GenerateRequest;
    const cls = classId(body.class);
    const methods: SampleMethod[] = body.method === 'both' ? ['ctf', 'baseline'] : [body.method];
    const stream = /\btext\/event-stream\b/.test(req.headers.accept ?? '');
    const job: GenerateJob = {
      classId: cls, methods, cfg: body.cfg, t1: body.t1, t2: body.t2, topK: body.topK, topP: body.topP, seed: body.seed,
      n: body.n, rounds: body.rounds, previews: stream,
    };
    const request = { ...body, class: cls };
    if (!stream) {
      const results = await answer(reply, submit(reply, { kind: 'generate', job, stream }));
      return reply.sent ? reply : { request, results };
    }
    const raw = reply.raw;
    const send = (e: StreamEvent): void => { if (!raw.writableEnded && !raw.destroyed) raw.write(formatSse(e)); };
    const ticket = submit(reply, { kind: 'generate', job, stream }, send);
    reply.hijack();  // from here on the response is ours: Fastify's hooks do not run, so set the headers here
    raw.writeHead(200, {
      ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    });
    send({ type: 'queued', ahead: ticket.ahead });
    const heartbeat = setInterval(() => { if (!raw.writableEnded) raw.write(': waiting\n\n'); }, 15000);
    raw.on('close', () => { clearInterval(heartbeat); if (!raw.writableFinished) ticket.cancel(); });
    ticket.done.then(
      () => send({ type: 'done', request }),
      (e: Error) => {
        if (e instanceof Cancelled) return;
        const input = e instanceof CtfError;
        if (!input) o.log?.(`internal error in a generate job: ${e.message}`);
        send({ type: 'error', status: input ? 400 : 500, error: input ? e.message : 'internal error' });
      },
    ).finally(() => { clearInterval(heartbeat); raw.end(); o.log?.(`POST /api/generate (stream) ${raw.statusCode}`); });
    return reply;
  });

  const noClusters = (): HttpError =>
    new HttpError(404, 'NO_CLUSTERS', `${info.run} has no coarse map (clusters.safetensors): this view needs one`);
  app.post('/api/why', { schema: { body: schemas.why } }, async (req, reply) => {
    if (!info.k) throw noClusters();
    const body = req.body as WhyBody;
    const seed = body.seed ?? 0;
    const job = body.source === 'test'
      ? { source: 'test' as const, classId: classId(body.class), index: body.index ?? 0, seed }
      : { source: 'tokens' as const, tokens: Int32Array.from(body.tokens), seed };
    if (job.source === 'test' && !info.testImages)
      throw new HttpError(404, 'NO_TEST_IMAGES',
        'this machine lacks the tokenizer\'s dataset; use {"source": "tokens", …} with a generated image');
    return answer(reply, submit(reply, { kind: 'why', job }));
  });

  app.post('/api/members', { schema: { body: schemas.members } }, async (req, reply) => {
    if (!info.k) throw noClusters();
    const body = req.body as MembersBody;
    const job = {
      tokens: Int32Array.from(body.tokens), position: body.position, seed: body.seed ?? 0,
      maxMembers: limits.maxMembers,
    };
    return answer(reply, submit(reply, { kind: 'members', job }));
  });

  await app.ready();
  return {
    app, sampler, info, limits,
    close: async () => { await app.close(); await sampler.close(); },
  };
}
