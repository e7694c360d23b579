// A built-in bitmap font for chart text: 5×7 glyphs (caps and digits 7 rows high) with 2 rows of descender,
// ASCII 32–126, so plots need no font files. Text is laid out into pixels here; drawing is the caller's.

export const GLYPH_W = 5;
export const GLYPH_H = 9;              // 7 rows above the baseline + 2 of descender (g, j, p, q, y, comma)
export const ADVANCE = GLYPH_W + 1;    // one column of spacing between characters
export const CAP_HEIGHT = 7;

// One string per character from ' ' (32) to '~' (126): nine base-32 digits, one per row from the top;
// a digit's five bits are the row's pixels, the highest bit leftmost ('v' = 31 = all five on).
const GLYPHS: readonly string[] = [
  '000000000', '444440400', 'aaa000000', 'aavavaa00', '4fke5u400', 'op248j300', 'cik8lid00', '448000000',  //  !"#$%&'
  '248884200', '842224800', '04lel4000', '044v44000', '00000c480', '000e00000', '00000cc00', '01248g000',  // ()*+,-./
  'ehjlphe00', '4c4444e00', 'eh1248v00', 'v2421he00', '26aiv2200', 'vgu11he00', '68guhhe00', 'v12488800',  // 01234567
  'ehhehhe00', 'ehhf12c00', '0cc0cc000', '0cc0c4800', '248g84200', '00v0v0000', '842124800', 'eh1240400',  // 89:;<=>?
  'eh1dlle00', 'ehhvhhh00', 'uhhuhhu00', 'ehggghe00', 'sihhhis00', 'vgguggv00', 'vgguggg00', 'ehgnhhf00',  // @ABCDEFG
  'hhhvhhh00', 'e44444e00', '72222ic00', 'hikokih00', 'ggggggv00', 'hrllhhh00', 'hhpljhh00', 'ehhhhhe00',  // HIJKLMNO
  'uhhuggg00', 'ehhhlid00', 'uhhukih00', 'fgge11u00', 'v44444400', 'hhhhhhe00', 'hhhhha400', 'hhhllla00',  // PQRSTUVW
  'hha4ahh00', 'hhha44400', 'v1248gv00', 'e88888e00', '0g8421000', 'e22222e00', '4ah000000', '0000000v0',  // XYZ[\]^_
  '842000000', '00e1fhf00', 'ggmphhu00', '00egghe00', '11djhhf00', '00ehvge00', '698s88800', '00fhhhf1e',  // `abcdefg
  'ggmphhh00', '40c444e00', '2062222ic', 'ggikoki00', 'c44444e00', '00qllll00', '00mphhh00', '00ehhhe00',  // hijklmno
  '00uhhhugg', '00fhhhf11', '00mpggg00', '00fge1u00', '88s889600', '00hhhjd00', '00hhha400', '00hhlla00',  // pqrstuvw
  '00ha4ah00', '00hhhhf1e', '00v248v00', '244844200', '444444400', '844244800', '008l20000',  // xyz{|}~
];

const FALLBACK = '?'.charCodeAt(0);
/** Look-alikes for characters that turn up in titles (dashes, ×, typographic quotes). */
const ASCII_LOOKALIKE: Record<string, string> = {
  '–': '-',
  '—': '-',
  '−': '-',
  '×': 'x',
  '‘': "'",
  '’': "'",
  '“': '"',
  '”': '"',
  '·': '.',
};

/** The nine 5-bit rows of a character; other characters outside ASCII 32–126 are drawn as '?'. */
export function glyphRows(ch: string): number[] {
  let code = (ASCII_LOOKALIKE[ch] ?? ch).charCodeAt(0);
  if (!(code >= 32 && code <= 126)) code = FALLBACK;
  const s = GLYPHS[code - 32]!;
  return Array.from(s, (d) => parseInt(d, 32));
}

/** Width in pixels of `text` at an integer scale (no trailing spacing column). */
export function textWidth(text: string, scale = 1): number {
  const n = [...text].length;
  return n === 0 ? 0 : (n * ADVANCE - 1) * scale;
}

/** Height in pixels of one line of text at a scale, descenders included. */
export function textHeight(scale = 1): number {
  return GLYPH_H * scale;
}

/**
 * Calls `plot(dx, dy)` for every lit pixel of `text` at an integer scale, relative to the top-left corner
 * of the text box (textWidth × textHeight). The caller maps these offsets (rotates, translates) and paints.
 */
export function forEachTextPixel(text: string, scale: number, plot: (dx: number, dy: number) => void): void {
  let x0 = 0;
  for (const ch of text) {
    const rows = glyphRows(ch);
    for (let r = 0; r < GLYPH_H; r++) {
      const bits = rows[r]!;
      if (bits === 0) continue;
      for (let c = 0; c < GLYPH_W; c++) {
        if (!(bits & (1 << (GLYPH_W - 1 - c)))) continue;
        for (let sy = 0; sy < scale; sy++) for (let sx = 0; sx < scale; sx++) plot(x0 + c * scale + sx, r * scale + sy);
      }
    }
    x0 += ADVANCE * scale;
  }
}
