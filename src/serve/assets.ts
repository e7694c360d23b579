// The page's files, read once at start into a table of URL path -> bytes: web/index.html and web/style.css, and
// the page's JavaScript as `tsc -p web/tsconfig.json` built it into dist/page/. The server answers only these
// paths; nothing a client sends is ever turned into a file path, so there is no traversal to get wrong.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CtfError } from '../errors.js';

export interface Asset { body: Buffer; type: string }

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.png': 'image/png',
};

const typeOf = (file: string): string | undefined => TYPES[file.slice(file.lastIndexOf('.'))];

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

/** URL path -> asset. `web` holds index.html and style.css, `page` the built scripts (served under /js/). */
export function loadAssets(web = fileURLToPath(new URL('../../../web/', import.meta.url)),
  page = fileURLToPath(new URL('../../page/', import.meta.url))): Map<string, Asset> {
  if (!existsSync(join(page, 'web', 'main.js')))
    throw new CtfError(`the demo page is not built: ${join(page, 'web', 'main.js')} is missing — ` +
      'run `npm run build` (or `bash scripts/setup.sh`)');
  const assets = new Map<string, Asset>();
  for (const [url, file] of [['/', 'index.html'], ['/style.css', 'style.css']] as const)
    assets.set(url, { body: readFileSync(join(web, file)), type: typeOf(file)! });
  for (const file of walk(page)) {
    const type = typeOf(file);
    if (type) assets.set(`/js/${relative(page, file).split(sep).join('/')}`, { body: readFileSync(file), type });
  }
  return assets;
}
