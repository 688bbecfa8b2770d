// Fetching what the worker trains on: the MNIST digits that the set-up prepared (gzipped uint8
// images and labels, described by data/manifest.json).
const PIXELS = 784;

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const body = new Uint8Array(await response.arrayBuffer());
  // Decompress here unless the server already did (some send .gz with Content-Encoding: gzip).
  if (body[0] === 0x1f && body[1] === 0x8b) {
    const stream = new Blob([body]).stream().pipeThrough(new DecompressionStream('gzip'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }
  return body;
}

async function loadSplit(base, split, name) {
  const [images, labels] = await Promise.all([fetchBytes(base + split.images), fetchBytes(base + split.labels)]);
  if (images.length !== split.count * PIXELS || labels.length !== split.count) {
    throw new Error(
      `${name} data holds ${images.length} pixel bytes and ${labels.length} labels, expected ${split.count * PIXELS} and ${split.count}: run the set-up again`,
    );
  }
  return { images, labels, count: split.count };
}

async function loadManifest(url) {
  const response = await fetch(url);
  const type = response.headers.get('content-type') ?? '';
  if (!response.ok || !type.includes('json')) {
    throw new Error('No MNIST data was found on the server: run the set-up (.ci/app), which prepares it');
  }
  return response.json();
}

/**
 * The digits under `base`/data/: `{ source, train, test }`, each split `{ images: Uint8Array(n·784),
 * labels: Uint8Array(n), count: n }`, pixels 0–255 as the core's `set_train_data` takes them.
 */
export async function loadDigits(base) {
  const dataBase = `${base}data/`;
  const manifest = await loadManifest(`${dataBase}manifest.json`);
  const [train, test] = await Promise.all([
    loadSplit(dataBase, manifest.train, 'training'),
    loadSplit(dataBase, manifest.test, 'held-out'),
  ]);
  return { source: manifest.source, train, test };
}
