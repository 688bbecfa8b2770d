// The site's root URL (where index.html, the pretrained weights and data/ are), for the page and
// its workers alike. The build's base is relative ('./'), which a worker would resolve against
// its own folder; but built, every script lives in assets/ (build.assetsDir in vite.config.js),
// one folder below the root. The dev server serves the root at its base.
export const SITE_URL = import.meta.env.DEV
  ? new URL(import.meta.env.BASE_URL, location.origin).href
  : new URL(/* @vite-ignore */ '../', import.meta.url).href;
