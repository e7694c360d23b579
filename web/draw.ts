// Pixels to the screen: the server sends every image as base64 u8 (C, S, S); a canvas of S×S shows it 1:1 and CSS
// scales it up without smoothing, so what is on the canvas is exactly what `ctfgen sample` writes.

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {},
  ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

export function imageCanvas(size: number, label: string): HTMLCanvasElement {
  return el('canvas', { class: 'img', width: String(size), height: String(size), role: 'img', 'aria-label': label });
}

/** base64 u8 (C, S, S) planar, C = 1 or 3 -> the canvas (S×S RGBA). */
export function drawPixels(canvas: HTMLCanvasElement, base64: string, channels: number): void {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const S = canvas.width, plane = S * S;
  if (bytes.length !== channels * plane)
    throw new Error(`image of ${bytes.length} bytes, expected ${channels}×${S}×${S}`);
  const img = new ImageData(S, S);
  for (let p = 0; p < plane; p++) {
    img.data[4 * p] = bytes[p]!;
    img.data[4 * p + 1] = bytes[(channels === 3 ? plane : 0) + p]!;
    img.data[4 * p + 2] = bytes[(channels === 3 ? 2 * plane : 0) + p]!;
    img.data[4 * p + 3] = 255;
  }
  canvas.getContext('2d')!.putImageData(img, 0, 0);
}

/** A download link for text (a Blob URL, released when replaced). */
export function textLink(a: HTMLAnchorElement, text: string, type: string, filename: string): void {
  if (a.href.startsWith('blob:')) URL.revokeObjectURL(a.href);
  a.href = URL.createObjectURL(new Blob([text], { type }));
  a.download = filename;
}
