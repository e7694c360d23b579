// The "why it works" view: an image, its reconstruction and the swaps within k-means vs random clusters
// (POST /api/why); the reconstruction carries a grid of token buttons (arrow keys move between them), and choosing
// one shows its cluster's members decoded in its place (POST /api/members).
import type { InfoResponse, MembersResponse, WhyBody, WhyResponse } from '../src/serve/protocol.js';
import { ApiError, postJson } from './api.js';
import { drawPixels, el, imageCanvas } from './draw.js';

const where = (p: number, grid: number): string => `row ${Math.floor(p / grid) + 1}, column ${(p % grid) + 1}`;

export class WhyView {
  private current: WhyResponse | null = null;

  constructor(private readonly info: InfoResponse, private readonly rows: HTMLElement,
    private readonly members: HTMLElement, private readonly say: (s: string) => void) {}

  async explain(body: WhyBody, what: string): Promise<void> {
    this.say(`Encoding and swapping ${what}…`);
    try {
      this.current = await postJson<WhyResponse>('/api/why', body);
    } catch (e) {
      this.say(e instanceof ApiError ? `Why it works: ${e.message}` : String(e));
      return;
    }
    this.render(what);
    this.say(`Showing ${what}. Choose a token of the reconstruction to see its cluster.`);
  }

  private render(what: string): void {
    const r = this.current!, { imageSize, channels, grid } = this.info.run;
    this.rows.replaceChildren();
    this.members.replaceChildren();
    for (const row of r.rows) {
      const canvas = imageCanvas(imageSize, `${row.name} of ${what}`);
      drawPixels(canvas, row.pixels, channels);
      const caption = row.psnrVsRecon === null ? row.name : `${row.name}: ${row.psnrVsRecon.toFixed(1)} dB to the ` +
        `reconstruction, ${(100 * row.tokensChanged).toFixed(0)}% of tokens changed`;
      const body: HTMLElement = row.name === 'reconstruction'
        ? this.tokenGrid(canvas, r, grid) : el('div', { class: 'tokens-wrap' }, canvas);
      this.rows.append(el('figure', {}, body, el('figcaption', {}, caption)));
    }
  }

  /** The canvas under grid×grid buttons, one per token; only one is in the tab order (arrow keys move). */
  private tokenGrid(canvas: HTMLCanvasElement, r: WhyResponse, grid: number): HTMLElement {
    const overlay = el('div', {
      class: 'token-grid', role: 'group', 'aria-label': 'Tokens of the reconstruction; arrow keys move',
    });
    overlay.style.gridTemplateColumns = `repeat(${grid}, 1fr)`;
    const buttons = r.tokens.map((t, p) => {
      const b = el('button', {
        type: 'button', tabindex: p === 0 ? '0' : '-1', 'aria-pressed': 'false',
        'aria-label': `token at ${where(p, grid)}: codeword ${t}, cluster ${r.clusters[p]}`,
      });
      b.addEventListener('click', () => {
        for (const o of buttons) o.setAttribute('aria-pressed', String(o === b));
        void this.showMembers(p);
      });
      b.addEventListener('keydown', (e) => {
        const d: Record<string, number> = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -grid, ArrowDown: grid };
        const step = d[e.key];
        if (step === undefined) return;
        e.preventDefault();
        const next = buttons[Math.min(buttons.length - 1, Math.max(0, p + step))]!;
        b.tabIndex = -1;
        next.tabIndex = 0;
        next.focus();
      });
      return b;
    });
    overlay.append(...buttons);
    return el('div', { class: 'tokens-wrap' }, canvas, overlay);
  }

  private async showMembers(position: number): Promise<void> {
    const r = this.current!;
    let m: MembersResponse;
    try {
      m = await postJson<MembersResponse>('/api/members', { tokens: r.tokens, position, seed: r.seed });
    } catch (e) {
      this.say(e instanceof ApiError ? `Cluster members: ${e.message}` : String(e));
      return;
    }
    const { grid, imageSize, channels } = this.info.run;
    const strip = (title: string, c: MembersResponse['kmeans']): HTMLElement[] => {
      const figures = c.members.map((mem) => {
        const canvas = imageCanvas(imageSize, `the image with codeword ${mem.id} at the chosen token`);
        drawPixels(canvas, mem.pixels, channels);
        // A box around the token's cell: what changed between these images.
        const mark = el('span');
        Object.assign(mark.style, {
          left: `${(100 * (position % grid)) / grid}%`, top: `${(100 * Math.floor(position / grid)) / grid}%`,
          width: `${100 / grid}%`, height: `${100 / grid}%`,
        });
        const caption = mem.id === m.token ? `${mem.id} (own)` : String(mem.id);
        return el('figure', {}, el('div', { class: 'cell-mark' }, canvas, mark), el('figcaption', {}, caption));
      });
      const shown = c.members.length < c.size ? `, ${c.members.length} shown` : '';
      return [el('h3', {}, `${title} ${c.cluster}: ${c.size} codewords${shown}`),
        el('div', { class: 'strip' }, ...figures)];
    };
    this.members.replaceChildren(
      el('p', {}, `Token at ${where(position, grid)} is codeword ${m.token}. ` +
        'Each picture below is the same image with that one token replaced by another member of its cluster.'),
      ...strip('k-means cluster', m.kmeans), ...strip('random cluster', m.random));
  }
}
