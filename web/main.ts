// The demo page: a form built from the server's schema (GET /api/info), a streamed generate per click — stage 1
// filling in token by token, then the final image in the same place — with each stage's time, downloads and the
// `ctfgen sample` command that makes the same images, and the "why it works" view (why.ts).
import type {
  GenerateBody, GenerateMethod, InfoResponse, JsonSchema, MethodResult, SampleMethod, StreamEvent,
} from '../src/serve/protocol.js';
import { ApiError, getJson, streamGenerate } from './api.js';
import { drawPixels, el, imageCanvas, textLink } from './draw.js';
import { WhyView } from './why.js';

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const NUMBERS = ['cfg', 't1', 't2', 'topK', 'topP', 'seed', 'n', 'rounds'] as const;
const NAMES: Record<SampleMethod, string> = { ctf: 'CTF', baseline: 'Baseline' };

interface Panel {
  method: SampleMethod;
  root: HTMLElement;
  phase: HTMLElement;
  canvases: HTMLCanvasElement[];
  buttons: HTMLButtonElement[];
  pngLinks: HTMLAnchorElement[];
  times: Record<'stage1' | 'stage2' | 'decode' | 'rate' | 'frames', HTMLElement>;
  tokensLink: HTMLAnchorElement;
  command: HTMLElement;
  frames: number;
  result: MethodResult | null;
}

let info: InfoResponse;
let running: AbortController | null = null;
let why: WhyView;
const testIndex = new Map<number, number>();
const status = (s: string): void => { $('status').textContent = s || '\u00a0'; };

function input(name: string): HTMLInputElement { return $<HTMLInputElement>(`f-${name}`); }

/** The form's request, as the API takes it (the server validates; its message is shown when it refuses). */
function readForm(): GenerateBody {
  const body: GenerateBody = { class: Number($<HTMLSelectElement>('f-class').value) };
  const method = document.querySelector<HTMLInputElement>('input[name="method"]:checked');
  body.method = (method?.value ?? 'ctf') as GenerateMethod;
  for (const k of NUMBERS) {
    const f = input(k);
    if (!f.disabled) (body as unknown as Record<string, number>)[k] = f.value.trim() === '' ? NaN : Number(f.value);
  }
  return body;
}

function applyQuery(q: URLSearchParams): void {
  const cls = q.get('class');
  if (cls !== null) {
    const id = /^\d+$/.test(cls) ? Number(cls) : info.run.classNames.indexOf(cls);
    if (id >= 0 && id < info.run.classNames.length) $<HTMLSelectElement>('f-class').value = String(id);
  }
  const method = q.get('method');
  const radio = document.querySelector<HTMLInputElement>(`input[name="method"][value="${CSS.escape(method ?? '')}"]`);
  if (radio && !radio.disabled) radio.checked = true;
  for (const k of NUMBERS) { const v = q.get(k); if (v !== null && !input(k).disabled) input(k).value = v; }
}

function shareUrl(body: GenerateBody): string {
  const q = new URLSearchParams(Object.entries(body).map(([k, v]) => [k, String(v)]));
  return `${location.pathname}?${q}`;
}

function setUpForm(): void {
  const { run, schemas, defaults } = info;
  const select = $<HTMLSelectElement>('f-class');
  select.append(...run.classNames.map((name, id) => el('option', { value: String(id) }, `${id} · ${name}`)));
  const props = schemas.generate.properties ?? {};
  const methods = (props['method']?.enum ?? []) as string[];
  for (const r of document.querySelectorAll<HTMLInputElement>('input[name="method"]')) {
    r.disabled = !methods.includes(r.value);
    r.checked = r.value === (props['method']?.default ?? 'ctf');
  }
  for (const k of NUMBERS) {
    const s: JsonSchema = props[k] ?? {}, f = input(k);
    if (s.minimum !== undefined) f.min = String(s.minimum);
    if (s.exclusiveMinimum !== undefined) f.min = String(s.exclusiveMinimum);
    if (s.maximum !== undefined) f.max = String(s.maximum);
    f.value = String(defaults[k]);
    if (s.description) f.title = s.description;
  }
  input('rounds').disabled = !run.maskedAux;
  if (!run.maskedAux) $('h-rounds').textContent = 'this run\'s aux: one pass';
  applyQuery(new URLSearchParams(location.search));
  const parts = `${run.methods.map((m) => NAMES[m]).join(' and ')}; ${run.classNames.length} classes; ` +
    `V = ${run.v}${run.k ? `, K = ${run.k}` : ''}; ${run.imageSize}×${run.imageSize} images, ` +
    `${run.grid}×${run.grid} tokens`;
  $('run-line').textContent = `Run ${run.run}: ${parts}.`;
  $<HTMLButtonElement>('generate').disabled = false;
  $<HTMLButtonElement>('why-test').disabled = !run.testImages || !run.k;
  if (!run.k) $('why-hint').textContent = 'this run has no coarse map';
}

function makePanel(method: SampleMethod, n: number, body: GenerateBody): Panel {
  const { imageSize } = info.run;
  const phase = el('span', { class: 'phase' }, 'waiting…');
  const canvases: HTMLCanvasElement[] = [], buttons: HTMLButtonElement[] = [], pngLinks: HTMLAnchorElement[] = [];
  const slots = Array.from({ length: n }, (_, i) => {
    const canvas = imageCanvas(imageSize, `${NAMES[method]} image ${i + 1}`);
    const button = el('button', {
      type: 'button', disabled: '', 'aria-pressed': 'false',
      'aria-label': `${NAMES[method]} image ${i + 1}: explain it below`,
    }, canvas);
    const link = el('a', { 'aria-disabled': 'true' }, 'PNG');
    canvases.push(canvas); buttons.push(button); pngLinks.push(link);
    return el('figure', { class: 'slot' }, button, el('figcaption', {}, el('span', {}, `#${i + 1}`), link));
  });
  const dd = (): HTMLElement => el('dd', {}, '–');
  const times = { stage1: dd(), stage2: dd(), decode: dd(), rate: dd(), frames: el('dd', {}, '0') };
  const cell = (label: string, d: HTMLElement): HTMLElement => el('div', {}, el('dt', {}, label), d);
  const tokensLink = el('a', { 'aria-disabled': 'true' }, 'tokens (JSON)');
  const command = el('code', { tabindex: '0', 'aria-label': 'the ctfgen sample command for these images' }, '…');
  const copy = el('button', { type: 'button' }, 'Copy');
  copy.addEventListener('click', () => {
    void navigator.clipboard?.writeText(command.textContent ?? '').then(() => status('Command copied.'));
  });
  const root = el('article', {
    class: 'panel', 'data-method': method, 'data-frames': '0', 'aria-busy': 'true', 'aria-label': NAMES[method],
  },
    el('h3', {}, NAMES[method], phase),
    el('div', { class: 'images' }, ...slots),
    el('dl', { class: 'times' },
      cell(method === 'ctf' ? 'stage 1' : 'generate', times.stage1), cell('stage 2', times.stage2),
      cell('decode', times.decode), cell('images/s', times.rate), cell('previews', times.frames)),
    el('p', { class: 'downloads' }, tokensLink, el('a', { href: shareUrl(body) }, 'link to this request')),
    el('div', { class: 'command' }, command, copy));
  return { method, root, phase, canvases, buttons, pngLinks, times, tokensLink, command, frames: 0, result: null };
}

function onEvent(panels: Map<SampleMethod, Panel>, e: StreamEvent, T: number, t0: number): void {
  const { channels } = info.run;
  switch (e.type) {
    case 'queued':
      status(e.ahead > 0 ? `Waiting: ${e.ahead} request${e.ahead > 1 ? 's' : ''} ahead…` : 'Sampling…');
      return;
    case 'start':
      panels.get(e.method)!.phase.textContent = `stage 1 · 0/${T} tokens`;
      return;
    case 'preview': {
      const p = panels.get(e.method)!;
      e.pixels.forEach((px, i) => { const c = p.canvases[e.first + i]; if (c) drawPixels(c, px, channels); });
      p.frames++;
      p.root.dataset['frames'] = String(p.frames);
      p.times.frames.textContent = String(p.frames);
      const stage = e.phase === 'stage2' ? 'stage 2 · round' : e.method === 'ctf' ? 'stage 1 ·' : 'generating ·';
      p.phase.textContent = `${stage} ${e.step}/${e.steps}${e.phase === 'stage1' ? ' tokens' : ''}`;
      return;
    }
    case 'result': {
      const r = e.result, p = panels.get(r.method)!;
      p.result = r;
      r.pixels.forEach((px, i) => drawPixels(p.canvases[i]!, px, channels));
      r.png.forEach((png, i) => {
        const a = p.pngLinks[i]!;
        a.href = `data:image/png;base64,${png}`;
        a.download = `${r.method}-c${r.classId}-${i}.png`;
        a.removeAttribute('aria-disabled');
      });
      for (const b of p.buttons) b.disabled = false;
      textLink(p.tokensLink, r.tokensJson, 'application/json', `${r.method}-tokens.json`);
      p.tokensLink.removeAttribute('aria-disabled');
      const s = r.seconds, sec = (x: number): string => `${x.toFixed(3)} s`;
      p.times.stage1.textContent = sec(s.stage1);
      p.times.stage2.textContent = r.method === 'ctf' ? sec(s.stage2) : '–';
      p.times.decode.textContent = sec(s.decode);
      p.times.rate.textContent = r.imagesPerSecond.toFixed(1);
      p.command.textContent = r.command;
      p.phase.textContent = `done · ${r.pixels.length} × ${r.className} in ${sec(s.total)}`;
      p.times.frames.title = `${sec(s.previews)} spent drawing the previews (not counted above)`;
      p.root.setAttribute('aria-busy', 'false');
      p.root.dataset['done'] = 'true';
      return;
    }
    case 'done':
      status(`Done in ${((performance.now() - t0) / 1000).toFixed(2)} s (wall clock, with previews and transfer).`);
      return;
    case 'error':
      status('');
      $('form-error').textContent = e.error;
      return;
  }
}

async function generate(ev: SubmitEvent): Promise<void> {
  ev.preventDefault();
  if (running) return;
  const body = readForm();
  $('form-error').textContent = '';
  const methods: SampleMethod[] = body.method === 'both' ? ['ctf', 'baseline'] : [body.method as SampleMethod];
  const n = Number.isInteger(body.n) && body.n! > 0 && body.n! <= info.limits.maxImages ? body.n! : 1;
  const panels = new Map(methods.map((m) => [m, makePanel(m, n, body)] as const));
  $('outputs').replaceChildren(...[...panels.values()].map((p) => p.root));
  for (const p of panels.values())
    p.buttons.forEach((b, i) => b.addEventListener('click', () => {
      for (const q of panels.values()) for (const o of q.buttons) o.setAttribute('aria-pressed', String(o === b));
      const what = `${NAMES[p.method]} image ${i + 1}`;
      void why.explain({ source: 'tokens', tokens: p.result!.tokens[i]!, seed: 0 }, what);
    }));
  running = new AbortController();
  $<HTMLButtonElement>('generate').disabled = true;
  $<HTMLButtonElement>('cancel').disabled = false;
  status('Sending…');
  const T = info.run.grid ** 2, t0 = performance.now();
  try {
    await streamGenerate(body, (e) => onEvent(panels, e, T, t0), running.signal);
    history.replaceState(null, '', shareUrl(body));
    $<HTMLAnchorElement>('share').href = shareUrl(body);
  } catch (e) {
    if (running.signal.aborted) status('Cancelled.');
    else if (e instanceof ApiError) {
      status('');
      $('form-error').textContent = e.message;  // a 429 says when to retry
      $('outputs').replaceChildren();
    } else status(`Failed: ${String(e)}`);
  } finally {
    running = null;
    $<HTMLButtonElement>('generate').disabled = false;
    $<HTMLButtonElement>('cancel').disabled = true;
  }
}

async function boot(): Promise<void> {
  try {
    info = await getJson<InfoResponse>('/api/info');
  } catch (e) {
    $('run-line').textContent = `Could not reach the server: ${String(e)}`;
    return;
  }
  setUpForm();
  why = new WhyView(info, $('why-rows'), $('members'), status);
  $<HTMLFormElement>('controls').addEventListener('submit', (ev) => { void generate(ev); });
  $('cancel').addEventListener('click', () => running?.abort());
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') running?.abort(); });
  $('random-seed').addEventListener('click', () => { input('seed').value = String(Math.floor(Math.random() * 1e6)); });
  $('share').addEventListener('click', (e) => {
    e.preventDefault();
    history.replaceState(null, '', shareUrl(readForm()));
    status(`Link: ${location.href}`);
  });
  $('why-test').addEventListener('click', () => {
    const cls = Number($<HTMLSelectElement>('f-class').value), index = testIndex.get(cls) ?? 0;
    testIndex.set(cls, index + 1);
    const what = `test image ${index + 1} of ${info.run.classNames[cls]}`;
    void why.explain({ source: 'test', class: cls, index, seed: 0 }, what);
  });
}

void boot();
