// My digits as files: a JSON file of strokes, pixels and labels, and MNIST's IDX format (what
// `lenet train --mnist DIR` reads), both ways. Reading is strict: a file that is not what it
// claims throws an Error naming the file and what is wrong, and nothing is changed.
//
// The JSON format, version 1:
//   { "format": "lenet-my-digits", "version": 1,
//     "digits": [ { "label": 0–9,
//                   "pixels": [784 integers 0–255, row by row, 28×28, ink bright as in MNIST],
//                   "strokes": null | { "width": w, "height": h,
//                                        "strokes": [[x0, y0, x1, y1, …], …] } } ] }
// Stroke points are in CSS pixels of a pad `width` × `height`, in drawing order.
import { read_idx } from 'lenet-wasm';
import { gunzipIdx } from './gunzip.js';

export const FORMAT = 'lenet-my-digits';
export const VERSION = 1;
const PIXELS = 784;

/** Strokes as `pad.strokes()` gives them → the JSON form. */
export function strokesToJson(strokes) {
  if (!strokes) return null;
  const { xy, ends, width, height } = strokes;
  const out = [];
  let start = 0;
  for (const end of ends) {
    out.push(Array.from(xy.subarray(2 * start, 2 * end), (v) => Math.round(v * 10) / 10));
    start = end;
  }
  return { width, height, strokes: out };
}

/** `digits` ({ label, pixels, strokes }) as the JSON file's text. */
export function digitsToJson(digits) {
  return JSON.stringify({
    format: FORMAT,
    version: VERSION,
    digits: digits.map((d) => ({ label: d.label, pixels: Array.from(d.pixels), strokes: strokesToJson(d.strokes) })),
  });
}

function fail(name, what) {
  throw new Error(`${name} is not a file of my digits: ${what}`);
}

/** The digits of a JSON file (`text`, named `name`): [{ label, pixels: Uint8Array, strokes }]. */
export function digitsFromJson(text, name) {
  let data;
  try {
    data = JSON.parse(text);
  } catch (error) {
    fail(name, `it is not JSON (${error.message})`);
  }
  if (!data || typeof data !== 'object' || Array.isArray(data)) fail(name, 'it is not a JSON object');
  if (data.format !== FORMAT) fail(name, `its "format" is ${JSON.stringify(data.format)}, not "${FORMAT}"`);
  if (data.version !== VERSION) fail(name, `version ${JSON.stringify(data.version)} is not known (this page reads version ${VERSION})`);
  const extra = Object.keys(data).filter((k) => !['format', 'version', 'digits'].includes(k));
  if (extra.length) fail(name, `unknown field "${extra[0]}"`);
  if (!Array.isArray(data.digits)) fail(name, '"digits" is not a list');
  return data.digits.map((d, i) => {
    const where = `digit ${i}`;
    if (!d || typeof d !== 'object' || Array.isArray(d)) fail(name, `${where} is not an object`);
    const unknown = Object.keys(d).filter((k) => !['label', 'pixels', 'strokes'].includes(k));
    if (unknown.length) fail(name, `${where} has an unknown field "${unknown[0]}"`);
    if (!Number.isInteger(d.label) || d.label < 0 || d.label > 9) fail(name, `${where}: label ${JSON.stringify(d.label)} is not a digit 0–9`);
    if (!Array.isArray(d.pixels) || d.pixels.length !== PIXELS) fail(name, `${where}: "pixels" must be a list of 784 numbers`);
    if (!d.pixels.every((p) => Number.isInteger(p) && p >= 0 && p <= 255)) fail(name, `${where}: a pixel is not an integer 0–255`);
    let strokes = null;
    if (d.strokes !== null && d.strokes !== undefined) {
      const s = d.strokes;
      const ok =
        s && typeof s === 'object' && Number.isFinite(s.width) && s.width > 0 && Number.isFinite(s.height) && s.height > 0 &&
        Array.isArray(s.strokes) &&
        s.strokes.every((line) => Array.isArray(line) && line.length >= 2 && line.length % 2 === 0 && line.every(Number.isFinite));
      if (!ok) fail(name, `${where}: "strokes" must be { width, height, strokes: [[x, y, …], …] } with numbers`);
      const ends = new Uint32Array(s.strokes.length);
      let n = 0;
      s.strokes.forEach((line, k) => {
        n += line.length / 2;
        ends[k] = n;
      });
      strokes = { xy: Float32Array.from(s.strokes.flat()), ends, width: s.width, height: s.height };
    }
    return { label: d.label, pixels: Uint8Array.from(d.pixels), strokes };
  });
}

/** The digits as MNIST IDX files: `{ images: Uint8Array, labels: Uint8Array }` (plain). */
export function digitsToIdx(digits) {
  const n = digits.length;
  const images = new Uint8Array(16 + n * PIXELS);
  const head = new DataView(images.buffer);
  // Magic 0x00000803: unsigned bytes, 3 dimensions; then the sizes, all big-endian.
  head.setUint32(0, 0x803);
  head.setUint32(4, n);
  head.setUint32(8, 28);
  head.setUint32(12, 28);
  const labels = new Uint8Array(8 + n);
  const lhead = new DataView(labels.buffer);
  lhead.setUint32(0, 0x801);
  lhead.setUint32(4, n);
  digits.forEach((d, i) => {
    images.set(d.pixels, 16 + i * PIXELS);
    labels[8 + i] = d.label;
  });
  return { images, labels };
}

/** `bytes` gzipped (RFC 1952). */
export async function gzip(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The digits of a pair of IDX files (plain or gzipped), read by the core: rejects naming the file. */
export async function digitsFromIdx(images, imagesName, labels, labelsName) {
  const [plainImages, plainLabels] = [await gunzipIdx(images, imagesName), await gunzipIdx(labels, labelsName)];
  const { images: pixels, labels: lb, count } = read_idx(plainImages, imagesName, plainLabels, labelsName);
  return Array.from({ length: count }, (_, i) => ({ label: lb[i], pixels: pixels.slice(i * PIXELS, (i + 1) * PIXELS), strokes: null }));
}
