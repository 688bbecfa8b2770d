// The site's root URL (where index.html, the pretrained weights and data/ are), for the page and
// its workers alike. The build's base is relative ('./'), which a worker would resolve against
// its own folder (assets/), so this anchors on a file of public/ instead: Vite rewrites its URL
// relative to wherever this module ends up, and the dev server serves it at the root.
export const SITE_URL = new URL('.', new URL('/favicon.svg', import.meta.url)).href;
