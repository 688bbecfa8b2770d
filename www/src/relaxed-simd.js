// Whether this browser runs WebAssembly's relaxed SIMD (Chrome and Edge 114, Firefox 146; not
// Safari), which the package's faster module, lenet_relaxed_bg.wasm, needs. A plain module with no
// imports, so that the benchmark's workers make the same choice as the page's.

// The smallest module that uses relaxed SIMD's fused multiply-add:
// `(func (result v128) (f32x4.relaxed_madd (i8x16.splat (i32.const 0)) ×3))`.
// prettier-ignore
export const RELAXED_SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type section: () -> v128
  0x03, 0x02, 0x01, 0x00, // function section: one function of type 0
  0x0a, 0x13, 0x01, 0x11, 0x00, // code section: one body of 17 bytes, no locals
  0x41, 0x00, 0xfd, 0x0f, 0x41, 0x00, 0xfd, 0x0f, 0x41, 0x00, 0xfd, 0x0f, // three i8x16.splat of 0
  0xfd, 0x85, 0x02, 0x0b, // f32x4.relaxed_madd (0xfd 0x105); end
]);

/** True when `wasm` (this browser's WebAssembly) validates relaxed SIMD. */
export function hasRelaxedSimd(wasm = globalThis.WebAssembly) {
  try {
    return wasm.validate(RELAXED_SIMD_PROBE) === true;
  } catch {
    return false;
  }
}
