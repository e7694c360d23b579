// The chart renderer: layout invariants (size, background, frame, grid, colours), the 1-2-5 tick generator,
// the built-in font, and the edge cases (one point, flat series, non-finite points, nothing to plot).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CtfError } from '../../src/errors.js';
import { decodeImageFile, writePng } from '../../src/io/png.js';
import { GLYPH_H, GLYPH_W, glyphRows, textWidth } from '../../src/viz/font.js';
import {
  BACKGROUND,
  FRAME,
  GRID,
  PALETTE,
  formatTicks,
  logTicks,
  niceTicks,
  renderLinePlot,
  type PlotImage,
  type RGB,
} from '../../src/viz/plot.js';

const pixel = (img: PlotImage, x: number, y: number): number[] => [
  ...img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3),
];
const count = (img: PlotImage, c: RGB): number => {
  let n = 0;
  for (let i = 0; i < img.data.length; i += 3)
    if (img.data[i] === c[0] && img.data[i + 1] === c[1] && img.data[i + 2] === c[2]) n++;
  return n;
};
const decay = (a: number, b: number, n: number): [number, number][] =>
  Array.from({ length: n }, (_, i) => [i + 1, a + b * Math.exp(-i / 4)]);
const THREE = [
  { name: 'baseline', points: decay(3, 2, 20) },
  { name: 'ctf', points: decay(2, 1.5, 20) },
  { name: 'aux', points: decay(1.5, 1, 20), dashed: true },
];
const plot3 = (extra = {}): PlotImage =>
  renderLinePlot({ title: 'Validation loss', xLabel: 'epoch', yLabel: 'loss', series: THREE, ...extra });

test('size, white background, a frame around the plot area and light grid lines at the inner ticks', () => {
  const img = plot3();
  assert.deepEqual([img.width, img.height, img.channels, img.data.length], [800, 500, 3, 800 * 500 * 3]);
  const { left, top, right, bottom } = img.plotArea;
  assert.ok(left > 20 && right < 800 - 10 && top > 20 && bottom < 500 - 20, JSON.stringify(img.plotArea));
  for (const [x, y] of [
    [0, 0],
    [799, 0],
    [0, 499],
    [799, 499],
    [left - 1, top - 3],
  ])
    assert.deepEqual(pixel(img, x!, y!), [...BACKGROUND], `(${x}, ${y})`);
  // The data start at epoch 1 and the x axis at 0, so the left edge of the frame is free of lines.
  const mid = Math.floor((top + bottom) / 2);
  assert.deepEqual(pixel(img, left, mid), [...FRAME]);
  assert.deepEqual(pixel(img, right, top), [...FRAME]);
  assert.deepEqual(pixel(img, Math.floor((left + right) / 2), bottom), [...FRAME]);
  // An inner grid column is mostly grid colour (lines and the legend cross it in places).
  const xs = img.xTicks, span = xs[xs.length - 1]! - xs[0]!;
  for (const v of xs.slice(1, -1)) {
    const x = Math.floor(left + 0.5 + ((v - xs[0]!) / span) * (right - left));
    let grid = 0;
    for (let y = top + 1; y < bottom; y++) if (pixel(img, x, y).join() === GRID.join()) grid++;
    assert.ok(grid > 0.6 * (bottom - top), `grid at x = ${v}: ${grid} of ${bottom - top} pixels`);
  }
  assert.deepEqual(img.xTicks, [0, 5, 10, 15, 20]);
  assert.ok(img.yTicks[0]! <= 1.5 + Math.exp(-19 / 4) && img.yTicks[img.yTicks.length - 1]! >= 5);
});

test('each series has its own palette colour; a dashed line inks fewer pixels than the same line solid', () => {
  const img = plot3({ width: 640, height: 400 });
  assert.deepEqual([img.width, img.height], [640, 400]);
  assert.deepEqual(img.colors, PALETTE.slice(0, 3));
  for (const c of PALETTE.slice(0, 3)) assert.ok(count(img, c) > 200, `colour ${c.join(',')}: ${count(img, c)} pixels`);
  assert.equal(count(img, PALETTE[3]!), 0);
  assert.equal(new Set(PALETTE.map((c) => c.join())).size, PALETTE.length);
  const pts = decay(2, 1, 200);   // too many points for markers: only the line
  const solid = renderLinePlot({ title: '', xLabel: '', yLabel: '', series: [{ name: 'a', points: pts }] });
  const dashed = renderLinePlot({
    title: '',
    xLabel: '',
    yLabel: '',
    series: [{ name: 'a', points: pts, dashed: true }],
  });
  const n1 = count(solid, PALETTE[0]!), n2 = count(dashed, PALETTE[0]!);
  assert.ok(n2 < 0.8 * n1 && n2 > 0.4 * n1, `solid ${n1}, dashed ${n2}`);
});

test('NaN and ±Infinity points are skipped: the picture equals the one without them', () => {
  const clean = decay(3, 2, 10);
  const dirty: [number, number][] = [
    ...clean.slice(0, 3),
    [4, NaN],
    [NaN, 2],
    [4.5, Infinity],
    ...clean.slice(3),
    [11, -Infinity],
  ];
  const a = renderLinePlot({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 's', points: clean }] });
  const b = renderLinePlot({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 's', points: dirty }] });
  assert.deepEqual(b.data, a.data);
});

test('one point and a flat series still get axes around them', () => {
  const one = renderLinePlot({ title: 'one', xLabel: 'x', yLabel: 'y', series: [{ name: 'p', points: [[1000, 42]] }] });
  assert.ok(one.xTicks[0]! < 1000 && one.xTicks[one.xTicks.length - 1]! > 1000, String(one.xTicks));
  assert.ok(one.yTicks[0]! < 42 && one.yTicks[one.yTicks.length - 1]! > 42, String(one.yTicks));
  assert.ok(count(one, PALETTE[0]!) > 10, 'the marker is drawn');
  const flat = renderLinePlot({
    title: 'flat',
    xLabel: 'x',
    yLabel: 'y',
    series: [
      {
        name: 'f',
        points: [
          [0, 0],
          [1, 0],
          [2, 0],
        ],
      },
    ],
  });
  assert.ok(flat.yTicks[0]! < 0 && flat.yTicks[flat.yTicks.length - 1]! > 0, String(flat.yTicks));
});

test('a log y axis leaves out values ≤ 0 and ticks at 1-2-5 values, or powers of ten when those crowd', () => {
  const img = renderLinePlot({ title: 'FID', xLabel: 'epoch', yLabel: 'FID', logY: true,
    series: [{ name: 'a', points: [[1, 300], [2, 80], [3, 0], [4, 12], [5, 7.5]] }] });
  assert.deepEqual(img.yTicks, [5, 10, 20, 50, 100, 200, 500]);
  assert.throws(
    () =>
      renderLinePlot({
        title: 'FID',
        xLabel: '',
        yLabel: '',
        logY: true,
        series: [
          {
            name: 'z',
            points: [
              [1, 0],
              [2, -1],
            ],
          },
        ],
      }),
    (e: unknown) =>
      e instanceof CtfError && /series "z" has none of its 2 points is finite and positive/.test(e.message),
  );
});

test('nothing to plot is a CtfError naming the plot and the series', () => {
  const err = (series: { name: string; points: [number, number][] }[], re: RegExp) =>
    assert.throws(
      () => renderLinePlot({ title: 'curves', xLabel: '', yLabel: '', series }),
      (e: unknown) => e instanceof CtfError && re.test(e.message),
    );
  err([], /plot "curves": no series to plot/);
  err([{ name: 'ok', points: [[0, 1]] }, { name: 'empty', points: [] }], /series "empty" has no points/);
  err([{ name: 'nan', points: [[0, NaN], [Infinity, 1]] }], /series "nan" has none of its 2 points is finite/);
  assert.throws(
    () => renderLinePlot({ title: 't', xLabel: '', yLabel: '', series: [{ name: 'a', points: [[0, 1]] }], width: 50 }),
    CtfError,
  );
});

test('niceTicks: 1-2-5 steps, evenly spaced, covering [min, max], at most maxTicks', () => {
  assert.deepEqual(niceTicks(0.13, 0.87, 6).values, [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(2.13, 4.87, 8).values, [2, 2.5, 3, 3.5, 4, 4.5, 5]);
  assert.deepEqual(niceTicks(0, 10000, 6).values, [0, 2000, 4000, 6000, 8000, 10000]);
  assert.deepEqual(niceTicks(-3, 7, 6).values, [-5, 0, 5, 10]);   // step 2 would need 7 ticks
  let seed = 12345;
  const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (let k = 0; k < 500; k++) {
    const scale = 10 ** Math.floor(rand() * 12 - 6);
    const a = (rand() - 0.3) * 100 * scale, b = a + rand() * 50 * scale * (rand() < 0.1 ? 1e-3 : 1);
    const maxTicks = 3 + Math.floor(rand() * 8);
    const t = niceTicks(a, b, maxTicks);
    const what = `niceTicks(${a}, ${b}, ${maxTicks}) = ${t.values.join(', ')}`;
    assert.ok(t.values.length >= 2 && t.values.length <= maxTicks, what);
    assert.ok(
      t.hi - t.lo <= 10 * Math.max(b - a, 1e-12 * Math.abs(a)) + 1e-300,
      `${what}: the axis is far wider than the data`,
    );
    assert.ok(t.lo <= a && t.hi >= b, what);
    const mant = t.step / 10 ** Math.floor(Math.log10(t.step) + 1e-9);
    assert.ok([1, 2, 5].some((m) => Math.abs(mant - m) < 1e-6), `${what}: step ${t.step}`);
    t.values
      .slice(1)
      .forEach((v, i) =>
        assert.ok(Math.abs(v - t.values[i]! - t.step) <= 1e-9 * Math.max(1, Math.abs(v)) + t.step * 1e-9, what),
      );
    for (const v of t.values)
      assert.ok(Math.abs(v / t.step - Math.round(v / t.step)) < 1e-6, `${what}: ${v} is not a multiple of the step`);
  }
});

test('logTicks and tick labels', () => {
  assert.deepEqual(logTicks(7.5, 300, 6).values, [1, 10, 100, 1000]);
  assert.deepEqual(logTicks(3, 40, 8).values, [2, 5, 10, 20, 50]);
  const narrow = logTicks(2.1, 4.9, 6);   // less than a factor 2.5: linear values on the log scale
  assert.ok(narrow.values.length >= 3 && narrow.lo <= 2.1 && narrow.hi >= 4.9 && narrow.lo > 0, String(narrow.values));
  assert.deepEqual(formatTicks(niceTicks(0, 0.2, 5)), ['0.00', '0.05', '0.10', '0.15', '0.20']);
  assert.deepEqual(formatTicks(niceTicks(-1, 1, 3)), ['-1', '0', '1']);
  assert.deepEqual(formatTicks(niceTicks(0, 4e7, 3)), ['0', '2e7', '4e7']);
  assert.deepEqual(formatTicks(logTicks(1e-6, 1, 8)), ['1e-6', '1e-5', '0.0001', '0.001', '0.01', '0.1', '1']);
});

test('the font has a distinct 5×7 glyph (with descender rows) for every printable ASCII character', () => {
  const seen = new Set<string>();
  for (let c = 32; c <= 126; c++) {
    const rows = glyphRows(String.fromCharCode(c));
    assert.equal(rows.length, GLYPH_H);
    assert.ok(rows.every((r) => r >= 0 && r < 1 << GLYPH_W), String.fromCharCode(c));
    assert.equal(rows.some((r) => r !== 0), c !== 32, `glyph ${JSON.stringify(String.fromCharCode(c))} blank?`);
    seen.add(rows.join());
  }
  assert.equal(seen.size, 95);
  assert.deepEqual(glyphRows('é'), glyphRows('?'));
  assert.deepEqual(glyphRows('—'), glyphRows('-'));
  assert.equal(textWidth('ab'), 11);
  assert.equal(textWidth('ab', 2), 22);
});

test('a plot survives the PNG round trip', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ctfgen-plot-'));
  try {
    const img = plot3({ width: 400, height: 300 });
    await writePng(join(dir, 'p.png'), img);
    const back = await decodeImageFile(join(dir, 'p.png'));
    assert.deepEqual([back.width, back.height, back.channels], [400, 300, 3]);
    assert.deepEqual(back.data, img.data);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
