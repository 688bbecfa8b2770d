// Gzipped IDX files (MNIST's `.gz`), decompressed by the browser's own DecompressionStream: the
// wasm module carries no gzip decoder. Used by the worker (dropped MNIST files) and the page
// (imported digits).
import { idx_file_len } from 'lenet-wasm';

const GZIP = [0x1f, 0x8b];

function joined(chunks, length) {
  const out = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    if (at >= length) break;
    const part = chunk.subarray(0, length - at);
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * `bytes` (a Uint8Array) decompressed if they are gzipped, else themselves. Decompression stops
 * one byte past the length the IDX header claims (the core's `idx_file_len`), so a gzip bomb
 * cannot exhaust memory; the core's IDX reader then says what is wrong. Rejects with an Error
 * naming `name` when the gzip stream is corrupt, cut short or followed by other bytes, or the
 * header is not IDX.
 */
export async function gunzipIdx(bytes, name) {
  if (!(bytes[0] === GZIP[0] && bytes[1] === GZIP[1])) return bytes;
  const reader = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip')).getReader();
  const chunks = [];
  let length = 0;
  let limit = Infinity;
  for (;;) {
    let next;
    try {
      next = await reader.read();
    } catch {
      // The browser's own message ("Failed to fetch") says nothing about the file. Every byte its
      // header claims came out: what failed follows them.
      if (length === limit - 1) throw new Error(`${name}: bytes follow the end of its gzip data, and they are not gzip (or its checksum is damaged)`);
      throw new Error(`${name} is not a complete gzip file: it may have been cut short while downloading`);
    }
    if (next.done) break;
    chunks.push(next.value);
    length += next.value.length;
    if (limit === Infinity && length >= 16) {
      try {
        limit = idx_file_len(joined(chunks, 16), name) + 1;
      } catch (error) {
        // Not an IDX header: stop decompressing now rather than leave the stream running.
        reader.cancel().catch(() => {});
        throw error;
      }
    }
    if (length >= limit) {
      reader.cancel().catch(() => {});
      break;
    }
  }
  return joined(chunks, Math.min(length, limit));
}
