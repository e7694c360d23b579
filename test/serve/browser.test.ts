// The demo page in a real browser: Debian's Chromium driven by playwright-core, headless, with a fresh profile.
// It picks a class by name and a seed, generates CTF and the baseline side by side (submitting with the keyboard),
// and checks that stage 1 streamed intermediate frames into the same boxes the final images land in, that the
// final pixels equal what the displayed `ctfgen sample …` command writes (and the downloads equal its files), the
// "why it works" view down to a token's cluster members (by keyboard), and that a phone-width page fits.
// CTFGEN_SERVE_RUN=DIR uses that run instead of a tiny one; CTFGEN_SCREENSHOT=PATH keeps the screenshot there.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { decodeImage } from '../../src/io/png.js';
import type { DemoServer } from '../../src/serve/server.js';
import { CLI, makeTinyRun, startServer } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
let dir = '', run = '', server: DemoServer, base = '', context: BrowserContext, page: Page;

before(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} not found: the browser test needs Debian's chromium — ` +
      'run `CTFGEN_BROWSER=1 bash scripts/setup.sh` as root');
  // A given run is shown by the name it was given, and reached under that name from the directory the page's
  // command runs in (a symlink), so the screenshot shows `--run runs/demo`, not this machine's path.
  const given = process.env['CTFGEN_SERVE_RUN'];
  if (given) {
    dir = mkdtempSync(join(tmpdir(), 'ctfgen-serve-browser-'));
    run = resolve(given);
    if (!isAbsolute(given)) {
      mkdirSync(dirname(join(dir, 'cli', given)), { recursive: true });
      symlinkSync(run, join(dir, 'cli', given));
    }
  } else [dir, run] = makeTinyRun('ctfgen-serve-browser-');
  ({ server, base } = await startServer({ run, shownRun: given }));
  context = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: CHROMIUM, headless: true, viewport: { width: 1200, height: 900 },
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--no-first-run',
    ],
  });
  page = context.pages()[0] ?? await context.newPage();
});
after(async () => {
  await context?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

// Code that runs in the page is typed by what it touches (this project compiles without the DOM library).
interface CanvasLike {
  width: number; height: number;
  getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: ArrayLike<number> } } |
    null;
}
interface Frame { method: string; pixels: number[]; top: number; height: number }

/** The grey values of a canvas (R of RGBA; the images are grey). */
const canvasPixels = (sel: string): Promise<number[]> => page.locator(sel).evaluate((c: CanvasLike) => {
  const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
  return Array.from({ length: d.length / 4 }, (_, i) => d[4 * i]!);
});

/**
 * Page script, installed before the page loads: records every image drawn on the first canvas of each method's
 * panel (its grey values, and where the canvas is at that moment), however the page batches the events it reads.
 */
const RECORD_FRAMES = `(() => {
  window.frames_ = [];
  const put = CanvasRenderingContext2D.prototype.putImageData;
  CanvasRenderingContext2D.prototype.putImageData = function (img, ...rest) {
    const c = this.canvas, m = /^(CTF|Baseline) image 1$/.exec(c.getAttribute('aria-label') || '');
    if (m) {
      const box = c.getBoundingClientRect();
      const pixels = Array.from({ length: img.data.length / 4 }, (_, i) => img.data[4 * i]);
      window.frames_.push({ method: m[1] === 'CTF' ? 'ctf' : 'baseline', pixels, top: box.top, height: box.height });
    }
    return put.call(this, img, ...rest);
  };
})()`;

test('generate both methods: streamed previews, then the exact pixels of `ctfgen sample`', async () => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.addInitScript(RECORD_FRAMES);
  await page.goto(`${base}/`);
  await page.locator('#generate:enabled').waitFor();
  const className = 'Trouser';
  await page.getByLabel('Class', { exact: true }).selectOption({ label: `1 · ${className}` });
  await page.getByLabel('Both, side by side').check();
  await page.getByLabel('Images', { exact: true }).fill('2');
  await page.getByLabel('Seed', { exact: true }).fill('7');
  await page.getByLabel('Seed', { exact: true }).press('Enter');  // submit from the keyboard
  for (const m of ['ctf', 'baseline'])
    await page.locator(`article[data-method="${m}"][data-done="true"]`).waitFor({ timeout: 120000 });

  const frames = await page.evaluate<Frame[]>('window.frames_');
  const tmp = join(dir, 'cli');
  mkdirSync(tmp, { recursive: true });
  for (const method of ['ctf', 'baseline']) {
    const panel = `article[data-method="${method}"]`;
    const mine = frames.filter((f) => f.method === method);
    const finals = [await canvasPixels(`${panel} canvas >> nth=0`), await canvasPixels(`${panel} canvas >> nth=1`)];
    const intermediate = new Set(mine.map((f) => f.pixels.join(',')).filter((p) => p !== finals[0]!.join(',')));
    assert.ok(intermediate.size >= 3, `${method}: ${intermediate.size} distinct intermediate frames, expected ≥ 3`);
    assert.equal(mine.at(-1)!.pixels.join(','), finals[0]!.join(','), `${method}: the final image replaced them`);
    assert.ok(mine[0]!.pixels.filter((v) => v === 128).length > 0.5 * mine[0]!.pixels.length,
      `${method}: the first frame is mostly the grey of cells not sampled yet`);
    const counted = Number(await page.locator(panel).getAttribute('data-frames'));
    assert.equal(counted, mine.length - 1, `${method}: every streamed frame was drawn (and then the final image)`);
    const box = await page.locator(`${panel} canvas >> nth=0`).boundingBox();
    const still = mine.every((f) => Math.abs(f.top - mine[0]!.top) < 0.5 && Math.abs(f.height - box!.height) < 0.5);
    assert.ok(still, `${method}: the box moved: ${JSON.stringify(mine.map((f) => [f.top, f.height]))}`);

    // The command the page shows, run as shown, writes the same pixels, the same PNG bytes and the same tokens.
    const command = await page.locator(`${panel} .command code`).innerText();
    assert.match(command, new RegExp(`^ctfgen sample --run \\S+ --method ${method} --class 1 --n 2 --seed 7 `));
    const script = `ctfgen() { "${process.execPath}" "${CLI}" "$@"; }; ${command}`;
    const r = spawnSync('bash', ['-c', script], { cwd: tmp, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const files = readdirSync(join(tmp, `${method}-images`)).sort();
    assert.deepEqual(files, ['c1-0.png', 'c1-1.png']);
    for (const [i, f] of files.entries()) {
      const bytes = readFileSync(join(tmp, `${method}-images`, f));
      assert.deepEqual(finals[i], Array.from(decodeImage(bytes, f).data), `${method} image ${i}: the page's pixels`);
      const href = await page.locator(`${panel} figcaption a >> nth=${i}`).getAttribute('href');
      const png = Buffer.from(href!.replace(/^data:image\/png;base64,/, ''), 'base64');
      assert.ok(png.equals(bytes), `${method} image ${i}: the PNG download is the same file`);
    }
    const [download] = await Promise.all([
      page.waitForEvent('download'), page.locator(`${panel} a:text("tokens (JSON)")`).click(),
    ]);
    assert.equal(download.suggestedFilename(), `${method}-tokens.json`);
    assert.equal(readFileSync(await download.path(), 'utf8'), readFileSync(join(tmp, `${method}-tokens.json`), 'utf8'),
      `${method}: the tokens download is --tokens-out's file`);
    const times = await page.locator(`${panel} dl.times`).innerText();
    assert.match(times, /images\/s\s+\d+(\.\d)?/);
  }
  assert.deepEqual(errors, [], 'no errors in the page');
});

test('why it works: a generated image, its swaps, and a token\'s cluster members by keyboard', async () => {
  await page.locator('article[data-method="ctf"] .slot button >> nth=0').click();
  await page.locator('#why-rows figure').nth(2).waitFor();
  const captions = await page.locator('#why-rows figcaption').allInnerTexts();
  assert.equal(captions[0], 'reconstruction');
  assert.match(captions[1]!, /^k-means swap: [\d.]+ dB to the reconstruction/);
  assert.match(captions[2]!, /^random swap: [\d.]+ dB/);
  const first = page.locator('.token-grid button >> nth=0');
  await first.focus();
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('ArrowDown');
  const focused = await page.evaluate<string>('document.activeElement?.getAttribute("aria-label") ?? ""');
  assert.match(focused, /^token at row 2, column 2: codeword \d+, cluster \d+$/);
  await page.keyboard.press('Enter');
  await page.locator('#members .strip figure').first().waitFor();
  const headings = await page.locator('#members h3').allInnerTexts();
  assert.match(headings[0]!, /^k-means cluster \d+: \d+ codewords/);
  assert.match(headings[1]!, /^random cluster \d+: \d+ codewords/);
  const shot = process.env['CTFGEN_SCREENSHOT'] ?? join(dir, 'web-demo.png');
  mkdirSync(dirname(shot), { recursive: true });
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(readFileSync(shot).length > 10000);
});

test('a test image of the class; the page fits a phone', async () => {
  if (await page.locator('#why-test').isEnabled()) {
    await page.locator('#why-test').click();
    await page.locator('#why-rows figcaption:text("original")').waitFor();
  }
  await page.setViewportSize({ width: 360, height: 740 });
  const overflow = await page.evaluate<number>(
    'document.documentElement.scrollWidth - document.documentElement.clientWidth');
  assert.ok(overflow <= 0, `no horizontal scrolling at 360 px (content ${overflow} px wider than the window)`);
  const shot = process.env['CTFGEN_SCREENSHOT'];
  if (shot) await page.screenshot({ path: shot.replace(/\.png$/, '-phone.png') });
});
