// Wraps lines longer than 120 characters (the limit test/repo/line-length.test.ts checks), touching nothing else:
// comment paragraphs are re-filled, a TS/JS statement that holds a long line is formatted by prettier (range
// formatting, .prettierrc.json), a long string literal is split into a concatenation, a C++ line goes through
// `clang-format --lines` (Debian's clang-format). Shell and Python code lines are left for a person to wrap.
//
//   node scripts/wrap-long-lines.mjs FILE...      (prints the lines it could not wrap)
import { readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
const require = createRequire(process.cwd() + '/');
const prettier = require('prettier');
const W = 120;
const config = JSON.parse(readFileSync(new URL('../.prettierrc.json', import.meta.url), 'utf8'));
const left = [];

// A comment line: indentation, marker, text. Markers: "// ", " * ", "/** ", "# ".
function commentParts(line, hash) {
  const re = hash ? /^(\s*)(# ?)(.*)$/ : /^(\s*)(\/\/ ?|\* ?|\/\*\* ?)(.*)$/;
  const m = re.exec(line);
  if (!m) return null;
  if (hash && /^#!/.test(line)) return null;
  return { ind: m[1], mark: m[2], text: m[3] };
}
const listLike = (t) => /^(\s|[-•|>]|\d+[.)]\s|```|@|TODO|$)/.test(t) || /\*\/\s*$/.test(t);

// A long one-line /** doc */ becomes a block; a long trailing // comment moves above its line.
function liftComments(text, hash) {
  const out = [];
  for (const line of text.split('\n')) {
    if (line.length <= W) { out.push(line); continue; }
    const doc = /^(\s*)\/\*\* (.*) \*\/\s*$/.exec(line);
    if (doc && !hash) { out.push(`${doc[1]}/**`, `${doc[1]} * ${doc[2]}`, `${doc[1]} */`); continue; }
    const tail = hash ? null : /^(\s*)(\S.*?[;,{(\[)}\]])\s+\/\/ (.*)$/.exec(line);
    if (
      tail &&
      !/['"`]/.test(tail[3]) &&
      !/\/\//.test(tail[2]) &&
      tail[2].split("'").length % 2 === 1 &&
      tail[2].split('`').length % 2 === 1
    ) {
      out.push(`${tail[1]}// ${tail[3]}`, `${tail[1]}${tail[2]}`);
      continue;
    }
    out.push(line);
  }
  return out.join('\n');
}

function fillComments(text, hash) {
  const lines = liftComments(text, hash).split('\n');
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const c = line.length > W ? commentParts(line, hash) : null;
    if (!c || c.text.endsWith('*/')) { out.push(line); continue; }
    const cont = c.mark.startsWith('/**') ? '* ' : c.mark.trimEnd() + ' ';
    const contPrefix = c.ind + (c.mark.startsWith('/**') ? ' * ' : cont);
    const words = [c.text];
    // The paragraph goes on while the next lines are plain comment text with the same prefix.
    while (i + 1 < lines.length) {
      if (/^\s*\*\/\s*$/.test(lines[i + 1])) break;
      const n = commentParts(lines[i + 1], hash);
      if (!n || n.ind !== c.ind || n.mark.trimEnd() !== cont.trimEnd() || listLike(n.text) || n.text.endsWith('*/'))
        break;
      if (c.mark.startsWith('/**') && n.mark.trimEnd() !== '*') break;
      words.push(n.text);
      i++;
    }
    let rest = words.join(' ');
    let prefix = c.ind + c.mark;
    while (prefix.length + rest.length > W) {
      const cut = rest.lastIndexOf(' ', W - prefix.length);
      if (cut <= 0) break;
      out.push(prefix + rest.slice(0, cut));
      rest = rest.slice(cut + 1);
      prefix = contPrefix;
    }
    out.push(prefix + rest);
  }
  return out.join('\n');
}

// Splits the string literal that crosses column W on line `line`, at a space before the limit.
function splitString(line) {
  // Find string literals with their spans (single, double quotes, templates at ${} depth 0).
  let i = 0;
  while (i < line.length) {
    const ch = line[i];
    if (ch === '/' && line[i + 1] === '/') return null;
    if (ch === "'" || ch === '"' || ch === '`') {
      const start = i;
      let j = i + 1, depth = 0;
      const spaces = [];
      while (j < line.length) {
        const d = line[j];
        if (d === '\\') { j += 2; continue; }
        if (ch === '`' && d === '$' && line[j + 1] === '{') { depth++; j += 2; continue; }
        if (ch === '`' && depth > 0) { if (d === '}') depth--; j++; continue; }
        if (d === ch) break;
        if (d === ' ') spaces.push(j);
        j++;
      }
      if (j >= line.length) return null;  // a string that goes on past the line (a multi-line template)
      if (j >= W - 1) {
        // Cut after a space so that "'...' +" fits: the first part ends at cut, then "' +".
        const cut = spaces.filter((s) => s + 1 + 3 <= W && s > start + 10).pop();
        if (cut === undefined) return null;
        const indent = /^\s*/.exec(line)[0];
        const inner = line.slice(0, start).trim() === '' ? indent : indent + '  ';
        return [line.slice(0, cut + 1) + ch + ' +', inner + ch + line.slice(cut + 1)];
      }
      i = j + 1;
      continue;
    }
    i++;
  }
  return null;
}

async function formatTs(text, file) {
  const seen = new Set();
  for (let pass = 0; pass < 400; pass++) {
    const lines = text.split('\n');
    const i = lines.findIndex((l, k) => l.length > W && !seen.has(k) && !commentParts(l, false));
    if (i < 0) return text;
    const start = lines.slice(0, i).join('\n').length + (i ? 1 : 0);
    let next = text;
    try {
      next = await prettier.format(text, {
        ...config,
        filepath: file,
        rangeStart: start,
        rangeEnd: start + lines[i].length,
      });
    } catch (e) {
      console.error(`${file}:${i + 1}: prettier: ${e.message.split('\n')[0]}`);
    }
    if (
      next !== text &&
      next.split('\n').filter((l) => l.length > W).length < lines.filter((l) => l.length > W).length
    ) {
      text = next;
      seen.clear();
      continue;
    }
    const parts = splitString(lines[i]);
    if (parts) {
      lines.splice(i, 1, ...parts);
      text = lines.join('\n');
      seen.clear();
      continue;
    }
    seen.add(i);
  }
  return text;
}

function formatCc(text, file) {
  const lines = text.split('\n');
  const long = lines.map((l, k) => (l.length > W && !commentParts(l, false) ? k + 1 : 0)).filter(Boolean);
  if (!long.length) return text;
  const args = ['-style={BasedOnStyle: Google, ColumnLimit: 120, IndentWidth: 2, AllowShortFunctionsOnASingleLine: ' +
    'All, AllowShortIfStatementsOnASingleLine: true, AllowShortLoopsOnASingleLine: true, SortIncludes: false}',
    `--assume-filename=${file}`, ...long.map((n) => `--lines=${n}:${n}`)];
  return execFileSync('clang-format', args, { input: text, encoding: 'utf8' });
}

for (const file of process.argv.slice(2)) {
  const before = readFileSync(file, 'utf8');
  const hash = /\.(sh|py|gyp)$/.test(file) || /^#!.*(bash|python)/.test(before);
  let text = fillComments(before, hash);
  if (/\.(ts|mjs|js|tsx)$/.test(file)) text = await formatTs(text, file);
  else if (/\.(cc|h|cpp)$/.test(file)) text = formatCc(text, file);
  if (text !== before) writeFileSync(file, text);
  text.split('\n').forEach((l, k) => { if (l.length > W) left.push(`${file}:${k + 1}: ${l.length}`); });
}
for (const m of left) console.log('long:', m);
