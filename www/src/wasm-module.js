// Which of the package's two builds of the network this browser runs: lenet_relaxed_bg.wasm,
// whose matrix kernels use relaxed SIMD's fused multiply-add (about 15 % faster training), where
// the browser validates relaxed SIMD, else lenet_bg.wasm (SIMD128 only). The page and every
// worker of a tab make the same choice: the two builds differ in the last bits of their results,
// and the workers of one training run must compute the same bits.
import simd128Url from 'lenet-wasm/lenet_bg.wasm?url';
import relaxedUrl from 'lenet-wasm/lenet_relaxed_bg.wasm?url';
import { hasRelaxedSimd } from './relaxed-simd.js';

/** 'relaxed-simd' or 'simd128'. */
export const wasmBuild = hasRelaxedSimd() ? 'relaxed-simd' : 'simd128';
/** The chosen module's URL, as the bundler wrote it (relative to the site). */
export const wasmUrl = wasmBuild === 'relaxed-simd' ? relaxedUrl : simd128Url;
