// Our wasm package as the app loads it (www/src/wasm-module.js): the relaxed-SIMD module where the
// browser validates relaxed SIMD, else the SIMD128 one. Every worker of the benchmark loads the
// same one, and the rows say which.
import init from '../../../pkg/lenet.js';
import { hasRelaxedSimd } from '../../../www/src/relaxed-simd.js';

/** 'relaxed SIMD' or 'SIMD128'. */
export const build = hasRelaxedSimd() ? 'relaxed SIMD' : 'SIMD128';

/** Instantiates the chosen module (wasm-bindgen's `init`). */
export function initLenet() {
  const file = build === 'relaxed SIMD' ? 'lenet_relaxed_bg.wasm' : 'lenet_bg.wasm';
  return init({ module_or_path: new URL(`../../../pkg/${file}`, import.meta.url) });
}
