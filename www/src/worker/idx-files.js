// MNIST's own files, dropped on the page or picked: decompressed here (when gzipped) and parsed by
// the core's IDX reader, which names the file and what is wrong with it. All four are parsed
// before anything is used, so that a bad file changes nothing.
import { read_idx } from 'lenet-wasm';
import { gunzipIdx } from '../gunzip.js';

// read_idx may hand back plain arrays of numbers; set_train_data takes bytes.
const bytes = (values) => (values instanceof Uint8Array ? values : Uint8Array.from(values));
const digits = ({ images, labels, count }) => ({ images: bytes(images), labels: bytes(labels), count });

/**
 * The digits in MNIST's four files: `files` is `{ trainImages, trainLabels, testImages,
 * testLabels }`, each `{ name, bytes: Uint8Array }` (IDX, plain or gzipped). Resolves with
 * `{ source, train, test }` as loadDigits gives it; rejects with an Error naming the file at fault.
 * `progress(text)` is told what is being done.
 */
export async function parseMnistFiles(files, progress = () => {}) {
  const order = ['trainImages', 'trainLabels', 'testImages', 'testLabels'];
  const plain = {};
  for (const [i, key] of order.entries()) {
    const { name, bytes } = files[key];
    progress(`Decompressing ${name} (${i + 1} of 4)…`);
    plain[key] = await gunzipIdx(bytes, name);
  }
  progress('Checking the training files…');
  const train = digits(read_idx(plain.trainImages, files.trainImages.name, plain.trainLabels, files.trainLabels.name));
  progress('Checking the test files…');
  const test = digits(read_idx(plain.testImages, files.testImages.name, plain.testLabels, files.testLabels.name));
  return { source: `MNIST from your files (${files.trainImages.name}, …)`, train, test };
}
