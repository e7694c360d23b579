// Line charts as RGB pixels, for training curves and metric-vs-epoch plots: "nice" 1-2-5 ticks, a light grid,
// one Okabe–Ito colour and marker shape per series, a legend in the emptiest corner, anti-aliased lines.
// Pure: no I/O (src/io/png.ts writes the result, which is a valid 3-channel image for writePng).
import { CtfError } from '../errors.js';
import { CAP_HEIGHT, forEachTextPixel, textHeight, textWidth } from './font.js';

export type RGB = readonly [number, number, number];

export interface PlotSeries {
  name: string;
  points: [number, number][];   // (x, y), joined in the given order; NaN/±Infinity (and y ≤ 0 with logY) are skipped
  dashed?: boolean;
}

export interface LinePlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: PlotSeries[];
  width?: number;     // pixels (default 800)
  height?: number;    // pixels (default 500)
  logY?: boolean;     // logarithmic y axis (default false)
}

export interface PlotImage {
  width: number;
  height: number;
  channels: 3;
  data: Uint8Array;   // (height, width, 3), row-major
  /** The frame's pixel columns/rows (inclusive): data maps onto [left, right] × [bottom, top]. */
  plotArea: { left: number; top: number; right: number; bottom: number };
  xTicks: number[];
  yTicks: number[];
  colors: RGB[];      // the colour of each series, in order
}

/** Okabe & Ito's colour-blind-safe palette, yellow last (it is faint on white). */
export const PALETTE: readonly RGB[] = [
  [0, 114, 178], [213, 94, 0], [0, 158, 115], [204, 121, 167], [230, 159, 0], [86, 180, 233], [0, 0, 0], [240, 228, 66],
];
export const BACKGROUND: RGB = [255, 255, 255];
export const FRAME: RGB = [60, 60, 60];
export const GRID: RGB = [228, 228, 228];
const TEXT: RGB = [30, 30, 30];
const LEGEND_BORDER: RGB = [200, 200, 200];

const PAD = 12, TICK = 5, LINE_WIDTH = 2, MARKER_R = 3.5;
const DASH: readonly [number, number] = [8, 5];   // on, off (pixels along the line)
const MARKERS = ['circle', 'square', 'diamond', 'triangle'] as const;
type Marker = (typeof MARKERS)[number];

// ---- ticks ------------------------------------------------------------------------------------------------

export interface Ticks {
  lo: number;          // the axis starts here (the first tick) …
  hi: number;          // … and ends here (the last tick), so the ticks cover [min, max]
  values: number[];
  step: number;        // linear ticks: the 1-2-5 step; log ticks: NaN
}

/** Removes float noise (0.30000000000000004 → 0.3). */
function clean(v: number): number {
  return parseFloat(v.toPrecision(12));
}

/** The smallest step of the form {1, 2, 5} × 10^k that is ≥ raw. */
function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5]) if (m * p >= raw * (1 - 1e-9)) return clean(m * p);
  return clean(10 * p);
}

/** A zero-width range gets room around it (±10%, or ±1 around 0), so one value still sits mid-axis. */
function widen(min: number, max: number, log: boolean): [number, number] {
  if (max - min > 1e-12 * Math.max(Math.abs(min), Math.abs(max))) return [min, max];
  if (log) return [min / 1.5, max * 1.5];
  const d = min === 0 ? 1 : Math.abs(min) * 0.1;
  return [min - d, max + d];
}

/** At most maxTicks evenly spaced ticks with a 1-2-5 step, from a multiple of the step ≤ min to one ≥ max. */
export function niceTicks(min: number, max: number, maxTicks = 8): Ticks {
  if (!Number.isFinite(min) || !Number.isFinite(max) || min > max)
    throw new CtfError(`niceTicks: invalid range [${min}, ${max}]`);
  // Three ticks always suffice (−s, 0, s around a range that straddles zero); two may not.
  if (!(maxTicks >= 3)) throw new CtfError(`niceTicks: maxTicks must be ≥ 3, got ${maxTicks}`);
  [min, max] = widen(min, max, false);
  let step = niceStep((max - min) / (maxTicks - 1));
  for (;;) {
    const first = Math.floor(min / step + 1e-9), last = Math.ceil(max / step - 1e-9);
    const n = last - first + 1;
    if (n <= maxTicks) {
      const values = Array.from({ length: n }, (_, i) => clean((first + i) * step));
      return { lo: values[0]!, hi: values[n - 1]!, values, step };
    }
    step = niceStep(step * 1.0001);
  }
}

/** Ticks for a log axis: 1-2-5 per decade when that gives ≤ maxTicks, else powers of ten (every k-th decade). */
export function logTicks(min: number, max: number, maxTicks = 8): Ticks {
  if (!(min > 0) || !Number.isFinite(max) || min > max)
    throw new CtfError(`logTicks: invalid range [${min}, ${max}] (a log axis needs positive values)`);
  [min, max] = widen(min, max, true);
  const d0 = Math.floor(Math.log10(min)) - 1, d1 = Math.ceil(Math.log10(max)) + 1;
  const attempt = (mantissas: number[], stride: number): number[] => {
    const cands: number[] = [];
    for (let d = Math.floor(d0 / stride) * stride; d <= d1 + stride; d += stride)
      for (const m of mantissas) cands.push(clean(m * 10 ** d));
    const lo = Math.max(...cands.filter((c) => c <= min * (1 + 1e-9)));
    const hi = Math.min(...cands.filter((c) => c >= max * (1 - 1e-9)));
    return cands.filter((c) => c >= lo && c <= hi);
  };
  const fine = attempt([1, 2, 5], 1);
  if (fine.length < 3) {
    // Less than a factor 2.5 between min and max: linear 1-2-5 values, placed on the log scale.
    const lin = niceTicks(min, max, maxTicks);
    if (lin.lo > 0) return { ...lin, step: NaN };
  }
  if (fine.length <= maxTicks) return { lo: fine[0]!, hi: fine[fine.length - 1]!, values: fine, step: NaN };
  for (let stride = 1; ; stride++) {
    const values = attempt([1], stride);
    if (values.length <= maxTicks) return { lo: values[0]!, hi: values[values.length - 1]!, values, step: NaN };
  }
}

/** Tick labels with as many decimals as the step needs (0.05 → 2), exponents for very large or small values. */
export function formatTicks(t: Ticks): string[] {
  const big = Math.max(...t.values.map(Math.abs));
  if (Number.isNaN(t.step))
    return t.values.map((v) => (v !== 0 && (Math.abs(v) >= 1e6 || Math.abs(v) < 1e-4) ? expo(v) : String(clean(v))));
  if (big >= 1e7 || t.step < 1e-6) return t.values.map((v) => (v === 0 ? '0' : expo(v)));
  const decimals = Math.max(0, Math.ceil(-Math.log10(t.step) - 1e-9));
  return t.values.map((v) => v.toFixed(decimals).replace(/^-(0\.?0*)$/, '$1'));
}

function expo(v: number): string {
  return v.toExponential().replace(/\.?0+e/, 'e').replace('e+', 'e');
}

// ---- pixels -----------------------------------------------------------------------------------------------

/** [min, max] without spreading (a long training log can exceed the engine's argument limit). */
function extent(values: number[]): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return [lo, hi];
}

/** Inclusive pixel bounds. */
interface Rect { x0: number; y0: number; x1: number; y1: number }

/** The pixels a stroke or marker through these points can touch. */
function boundsOf(pts: [number, number][], margin: number): Rect {
  const [xlo, xhi] = extent(pts.map((p) => p[0])), [ylo, yhi] = extent(pts.map((p) => p[1]));
  return {
    x0: Math.floor(xlo - margin),
    y0: Math.floor(ylo - margin),
    x1: Math.ceil(xhi + margin),
    y1: Math.ceil(yhi + margin),
  };
}
const REACH = Math.ceil(MARKER_R * 1.4) + 3;   // ≥ what strokePolyline and stampMarker touch around a point

class Canvas {
  readonly data: Uint8Array;
  constructor(readonly width: number, readonly height: number) {
    this.data = new Uint8Array(width * height * 3).fill(255);
  }

  /** Paints colour c over pixel (x, y) with opacity a ∈ [0, 1]; outside the image does nothing. */
  blend(x: number, y: number, c: RGB, a: number): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height || !(a > 0)) return;
    const i = (y * this.width + x) * 3, d = this.data;
    if (a >= 1) { d[i] = c[0]; d[i + 1] = c[1]; d[i + 2] = c[2]; return; }
    d[i] = Math.round(d[i]! * (1 - a) + c[0] * a);
    d[i + 1] = Math.round(d[i + 1]! * (1 - a) + c[1] * a);
    d[i + 2] = Math.round(d[i + 2]! * (1 - a) + c[2] * a);
  }

  /** Inclusive rectangle. */
  fill(x0: number, y0: number, x1: number, y1: number, c: RGB, a = 1): void {
    for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) this.blend(x, y, c, a);
  }

  /** Text with its box's top-left at (x, y); `up` rotates it 90° counter-clockwise (reads bottom to top). */
  text(s: string, x: number, y: number, c: RGB, scale = 1, up = false): void {
    const w = textWidth(s, scale);
    forEachTextPixel(s, scale, (dx, dy) =>
      up ? this.blend(x + dy, y + w - 1 - dx, c, 1) : this.blend(x + dx, y + dy, c, 1),
    );
  }

  /** Paints colour c with per-pixel opacity cov (width × height) inside rect r, then clears cov there. */
  composite(cov: Float32Array, c: RGB, r: Rect, ink?: Float32Array): void {
    for (let y = Math.max(0, r.y0); y <= Math.min(this.height - 1, r.y1); y++) {
      for (let x = Math.max(0, r.x0), i = y * this.width + x; x <= Math.min(this.width - 1, r.x1); x++, i++) {
        const a = cov[i]!;
        if (!(a > 0)) continue;
        this.blend(x, y, c, Math.min(1, a));
        if (ink) ink[i]! += a;
        cov[i] = 0;
      }
    }
  }
}

/**
 * Anti-aliased polyline of width lw into a coverage buffer (max over segments, so joints are not darker).
 * Coordinates are continuous pixels (pixel (i, j) covers [i, i+1) × [j, j+1)); dashes run on across vertices.
 */
function strokePolyline(
  cov: Float32Array,
  W: number,
  H: number,
  pts: [number, number][],
  lw: number,
  dash: readonly [number, number] | null,
): void {
  let along = 0;
  const r = lw / 2;
  for (let s = 0; s + 1 < pts.length; s++) {
    const [ax, ay] = pts[s]!,
      [bx, by] = pts[s + 1]!;
    const vx = bx - ax,
      vy = by - ay,
      len2 = vx * vx + vy * vy,
      len = Math.sqrt(len2);
    const x0 = Math.max(0, Math.floor(Math.min(ax, bx) - r - 1)),
      x1 = Math.min(W - 1, Math.ceil(Math.max(ax, bx) + r + 1));
    const y0 = Math.max(0, Math.floor(Math.min(ay, by) - r - 1)),
      y1 = Math.min(H - 1, Math.ceil(Math.max(ay, by) + r + 1));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const px = x + 0.5 - ax,
          py = y + 0.5 - ay;
        const t = len2 > 0 ? Math.max(0, Math.min(1, (px * vx + py * vy) / len2)) : 0;
        if (dash && (along + t * len) % (dash[0] + dash[1]) > dash[0]) continue;
        const dist = Math.hypot(px - t * vx, py - t * vy);
        const c = Math.min(1, r + 0.5 - dist);
        const i = y * W + x;
        if (c > cov[i]!) cov[i] = c;
      }
    }
    along += len;
  }
}

function insideMarker(shape: Marker, dx: number, dy: number, r: number): boolean {
  switch (shape) {
    case 'circle': return dx * dx + dy * dy <= r * r;
    case 'square': return Math.abs(dx) <= r * 0.85 && Math.abs(dy) <= r * 0.85;
    case 'diamond': return Math.abs(dx) + Math.abs(dy) <= r * 1.25;
    case 'triangle': {   // pointing up, centroid at the point
      const h = r * 1.9, top = -h * 2 / 3, base = h / 3;
      return dy <= base && dy >= top && Math.abs(dx) <= ((dy - top) / h) * (h / Math.sqrt(3));
    }
  }
}

/** A filled marker into a coverage buffer, anti-aliased by 4×4 supersampling. */
function stampMarker(cov: Float32Array, W: number, H: number, cx: number, cy: number, shape: Marker, r: number): void {
  const R = Math.ceil(r * 1.4) + 1;
  for (let y = Math.max(0, Math.floor(cy) - R); y <= Math.min(H - 1, Math.floor(cy) + R); y++) {
    for (let x = Math.max(0, Math.floor(cx) - R); x <= Math.min(W - 1, Math.floor(cx) + R); x++) {
      let hits = 0;
      for (let sy = 0; sy < 4; sy++) for (let sx = 0; sx < 4; sx++)
        if (insideMarker(shape, x + (sx + 0.5) / 4 - cx, y + (sy + 0.5) / 4 - cy, r)) hits++;
      const i = y * W + x;
      if (hits / 16 > cov[i]!) cov[i] = hits / 16;
    }
  }
}

// ---- the chart --------------------------------------------------------------------------------------------

interface Prepared {
  name: string;
  points: [number, number][];
  color: RGB;
  marker: Marker;
  dashed: boolean;
  markers: boolean;
}

function prepare(o: LinePlotOptions, plotWidthGuess: number): Prepared[] {
  if (o.series.length === 0) throw new CtfError(`plot "${o.title}": no series to plot`);
  return o.series.map((s, k) => {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.logY || y > 0));
    if (pts.length === 0) {
      const why =
        s.points.length === 0
          ? 'no points'
          : `none of its ${s.points.length} points is finite${o.logY ? ' and positive (log y axis)' : ''}`;
      throw new CtfError(`plot "${o.title}": series "${s.name}" has ${why}`);
    }
    return {
      name: s.name, points: pts, color: PALETTE[k % PALETTE.length]!, marker: MARKERS[k % MARKERS.length]!,
      dashed: s.dashed ?? k >= PALETTE.length,   // past the palette, colours repeat: dashes tell them apart
      markers: pts.length === 1 || pts.length <= plotWidthGuess / 12,   // only while they do not crowd
    };
  });
}

/** Renders a line chart: title, axis labels, ticks with nice values, grid, one styled line per series, legend. */
export function renderLinePlot(o: LinePlotOptions): PlotImage {
  const W = o.width ?? 800, H = o.height ?? 500;
  if (!Number.isInteger(W) || !Number.isInteger(H) || W < 200 || H < 150 || W > 8192 || H > 8192)
    throw new CtfError(`plot "${o.title}": size ${W}×${H} must be whole pixels between 200×150 and 8192×8192`);
  const log = o.logY ?? false;
  const series = prepare(o, W - 120);
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);

  // Vertical layout first: the y ticks decide the width of their labels, which decides the left margin.
  const th = textHeight(1);
  const top = PAD + (o.title ? textHeight(2) + 10 : 6);
  const bottom = H - 1 - (PAD + (o.xLabel ? th + 6 : 0) + th + 4 + TICK);
  const yMax = Math.min(11, Math.max(3, Math.floor((bottom - top) / 45)));
  const [ylo, yhi] = extent(ys);
  const yT = log ? logTicks(ylo, yhi, yMax) : niceTicks(ylo, yhi, yMax);
  const yLabels = formatTicks(yT);
  const left = PAD + (o.yLabel ? th + 8 : 0) + Math.max(...yLabels.map((l) => textWidth(l))) + 4 + TICK;
  const right = W - 1 - (PAD + 16);
  const xMax = Math.min(11, Math.max(3, Math.floor((right - left) / 70)));
  const xT = niceTicks(...extent(xs), xMax);
  const xLabels = formatTicks(xT);
  if (right - left < 40 || bottom - top < 40)
    throw new CtfError(`plot "${o.title}": ${W}×${H} leaves no room for the plot area; make it larger`);

  // Data → continuous pixel coordinates; the axis ends sit on the centres of the frame's pixels.
  const ly = (v: number): number => (log ? Math.log10(v) : v);
  const X = (v: number): number => left + 0.5 + ((v - xT.lo) / (xT.hi - xT.lo)) * (right - left);
  const Y = (v: number): number => bottom + 0.5 - ((ly(v) - ly(yT.lo)) / (ly(yT.hi) - ly(yT.lo))) * (bottom - top);

  const cv = new Canvas(W, H);
  for (const v of xT.values) cv.fill(Math.floor(X(v)), top, Math.floor(X(v)), bottom, GRID);
  for (const v of yT.values) cv.fill(left, Math.floor(Y(v)), right, Math.floor(Y(v)), GRID);

  // Series: line then markers into a coverage buffer, composited (and cleared) per series; `ink` sums them for the
  // legend.
  const cov = new Float32Array(W * H), ink = new Float32Array(W * H);
  for (const s of series) {
    const px = s.points.map(([x, y]): [number, number] => [X(x), Y(y)]);
    if (px.length > 1) strokePolyline(cov, W, H, px, LINE_WIDTH, s.dashed ? DASH : null);
    if (s.markers) for (const [x, y] of px) stampMarker(cov, W, H, x, y, s.marker, MARKER_R);
    cv.composite(cov, s.color, boundsOf(px, REACH), ink);
  }

  // Frame, ticks and their labels.
  cv.fill(left, top, right, top, FRAME); cv.fill(left, bottom, right, bottom, FRAME);
  cv.fill(left, top, left, bottom, FRAME); cv.fill(right, top, right, bottom, FRAME);
  xT.values.forEach((v, i) => {
    const x = Math.floor(X(v));
    cv.fill(x, bottom + 1, x, bottom + TICK, FRAME);
    const lab = xLabels[i]!;
    cv.text(lab, Math.round(X(v) - textWidth(lab) / 2), bottom + TICK + 4, TEXT);
  });
  yT.values.forEach((v, i) => {
    const y = Math.floor(Y(v));
    cv.fill(left - TICK, y, left - 1, y, FRAME);
    const lab = yLabels[i]!;
    cv.text(lab, left - TICK - 4 - textWidth(lab), Math.round(Y(v) - CAP_HEIGHT / 2), TEXT);
  });

  if (o.title) cv.text(o.title, Math.round((W - textWidth(o.title, 2)) / 2), PAD, TEXT, 2);
  if (o.xLabel) cv.text(o.xLabel, Math.round((left + right - textWidth(o.xLabel)) / 2), H - PAD - th, TEXT);
  if (o.yLabel) cv.text(o.yLabel, PAD, Math.round((top + bottom - textWidth(o.yLabel)) / 2), TEXT, 1, true);

  drawLegend(cv, series, { left, top, right, bottom }, ink, cov);
  return {
    width: W,
    height: H,
    channels: 3,
    data: cv.data,
    plotArea: { left, top, right, bottom },
    xTicks: xT.values,
    yTicks: yT.values,
    colors: series.map((s) => s.color),
  };
}

/** The legend box in whichever inner corner of the plot area covers the least ink (top right on ties). */
function drawLegend(
  cv: Canvas,
  series: Prepared[],
  area: PlotImage['plotArea'],
  ink: Float32Array,
  cov: Float32Array,
): void {
  const row = textHeight(1) + 4,
    sample = 24,
    inset = 8,
    pad = 6;
  const w = pad + sample + 6 + Math.max(...series.map((s) => textWidth(s.name))) + pad;
  const h = pad + series.length * row - 4 + pad;
  const corners: [number, number][] = [
    [area.right - inset - w, area.top + inset],
    [area.left + inset, area.top + inset],
    [area.right - inset - w, area.bottom - inset - h],
    [area.left + inset, area.bottom - inset - h],
  ];
  let best = corners[0]!,
    bestInk = Infinity;
  for (const [x0, y0] of corners) {
    let sum = 0;
    for (let y = Math.max(0, y0); y < Math.min(cv.height, y0 + h); y++)
      for (let x = Math.max(0, x0); x < Math.min(cv.width, x0 + w); x++) sum += ink[y * cv.width + x]!;
    if (sum < bestInk - 1e-6) {
      best = [x0, y0];
      bestInk = sum;
    }
  }
  const [x0, y0] = best;
  cv.fill(x0, y0, x0 + w - 1, y0 + h - 1, BACKGROUND, 0.9);
  cv.fill(x0, y0, x0 + w - 1, y0, LEGEND_BORDER);
  cv.fill(x0, y0 + h - 1, x0 + w - 1, y0 + h - 1, LEGEND_BORDER);
  cv.fill(x0, y0, x0, y0 + h - 1, LEGEND_BORDER);
  cv.fill(x0 + w - 1, y0, x0 + w - 1, y0 + h - 1, LEGEND_BORDER);
  series.forEach((s, k) => {
    const ty = y0 + pad + k * row,
      cy = ty + CAP_HEIGHT / 2;
    const line: [number, number][] = [
      [x0 + pad, cy],
      [x0 + pad + sample, cy],
    ];
    strokePolyline(cov, cv.width, cv.height, line, LINE_WIDTH, s.dashed ? DASH : null);
    if (s.markers) stampMarker(cov, cv.width, cv.height, x0 + pad + sample / 2, cy, s.marker, MARKER_R);
    cv.composite(cov, s.color, boundsOf(line, REACH));
    cv.text(s.name, x0 + pad + sample + 6, ty, TEXT);
  });
}
