// The page's side of the API (src/serve/protocol.ts): JSON calls and the streamed generate, read with fetch()
// because EventSource cannot POST a body.
import { SseParser, type ErrorResponse, type GenerateBody, type StreamEvent } from '../src/serve/protocol.js';

/** A non-2xx answer: the server's message, and Retry-After (seconds) on 429. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly retryAfter: number | null) { super(message); }
}

async function failure(res: Response): Promise<ApiError> {
  let message = `${res.status} ${res.statusText}`;
  try { message = ((await res.json()) as ErrorResponse).error; } catch { /* not JSON: keep the status line */ }
  const retry = Number(res.headers.get('retry-after'));
  return new ApiError(res.status, message, Number.isFinite(retry) && retry > 0 ? retry : null);
}

export async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path, { headers: { accept: 'application/json' } });
  if (!res.ok) throw await failure(res);
  return (await res.json()) as T;
}

export async function postJson<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
  const headers = { 'content-type': 'application/json', accept: 'application/json' };
  const res = await fetch(path, { method: 'POST', headers, body: JSON.stringify(body), signal });
  if (!res.ok) throw await failure(res);
  return (await res.json()) as T;
}

/** POST /api/generate as a stream: calls onEvent for every event until the server ends it (or signal aborts). */
export async function streamGenerate(body: GenerateBody, onEvent: (e: StreamEvent) => void,
  signal: AbortSignal): Promise<void> {
  const headers = { 'content-type': 'application/json', accept: 'text/event-stream' };
  const res = await fetch('/api/generate', { method: 'POST', headers, body: JSON.stringify(body), signal });
  if (!res.ok || !res.body) throw await failure(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    for (const e of parser.push(value)) onEvent(e);
  }
}
