// Fetching a .safetensors file served with the page (the pretrained weights), for the page and
// for the worker alike.

/** The bytes of the file at `url`, or null when the server has none or cannot be reached. */
export async function fetchWeights(url) {
  try {
    const response = await fetch(url);
    const type = response.headers.get('content-type') ?? '';
    // A dev server answers a missing file with its index page: that is "no weights", not a bad file.
    if (!response.ok || type.includes('text/html')) return null;
    return new Uint8Array(await response.arrayBuffer());
  } catch {
    return null;
  }
}
