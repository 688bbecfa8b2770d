// The Conv2DBackpropFilter kernel that TF.js 4.22's wasm backend lacks: without it no conv net
// can train on that backend. Added here as im2col in JavaScript on the backend's heap, then the
// backend's own BatchMatMul (XNNPACK):  dW[k, o] = Σ_m cols[k, m] · dy[m, o],  with
// k = (ky, kx, c) — the order of the filter's [fh, fw, c, o] layout, so the product needs no
// reshuffle — and m = (b, y, x), dy's own layout.
//
// The columns are laid out k-major ([k, m]) so that BatchMatMul takes both operands untransposed.
// An alternative on the backend's native Conv3DBackpropFilterV2 (a 2-D convolution is a 3-D one
// of depth 1) gives the same numbers but was 3–4× slower on LeNet-5's shapes: the faster one
// is kept, so that the peer is measured at its best.
export function registerConv2DBackpropFilter(tf) {
  const matMul = tf.getKernel('BatchMatMul', 'wasm').kernelFunc;
  tf.registerKernel({
    kernelName: 'Conv2DBackpropFilter',
    backendName: 'wasm',
    kernelFunc({ inputs: { x, dy }, backend, attrs }) {
      const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs;
      if (dataFormat !== 'NHWC') throw new Error(`Conv2DBackpropFilter (added for wasm): only NHWC, got ${dataFormat}`);
      const info = tf.backend_util.computeConv2DInfo(x.shape, filterShape, strides, 1, pad, dimRoundingMode);
      const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow, outChannels: o } = info;
      const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = info;
      const { top, left } = info.padInfo;
      const m = n * oh * ow;
      const k = fh * fw * c;
      const cols = backend.makeOutput([1, k, m], 'float32');
      // Views of the heap only after the allocation, which may have grown (and moved) it.
      const C = backend.typedArrayFromHeap(cols);
      const X = backend.typedArrayFromHeap(x);
      for (let ky = 0; ky < fh; ky++) {
        for (let kx = 0; kx < fw; kx++) {
          for (let ch = 0; ch < c; ch++) {
            let at = ((ky * fw + kx) * c + ch) * m;
            for (let b = 0; b < n; b++) {
              for (let y = 0; y < oh; y++) {
                const iy = y * sh - top + ky;
                const rowInside = iy >= 0 && iy < h;
                const rowStart = (b * h + iy) * w;
                for (let xo = 0; xo < ow; xo++) {
                  const ix = xo * sw - left + kx;
                  C[at++] = rowInside && ix >= 0 && ix < w ? X[(rowStart + ix) * c + ch] : 0;
                }
              }
            }
          }
        }
      }
      const dw = matMul({
        inputs: { a: cols, b: { dataId: dy.dataId, dtype: dy.dtype, shape: [1, m, o] } },
        backend,
        attrs: { transposeA: false, transposeB: false },
      });
      backend.disposeData(cols.dataId);
      return { dataId: dw.dataId, dtype: dw.dtype, shape: filterShape };
    },
  });
}

// Holds the added kernel to a direct summation on small awkward shapes (padding, stride 2, odd
// sizes) before any figure is taken: a wrong gradient would make a fast but meaningless number.
export function checkConv2DBackpropFilter(tf) {
  const cases = [
    { n: 2, h: 7, w: 6, c: 2, o: 3, f: 3, stride: 1, pad: 'same' },
    { n: 3, h: 9, w: 8, c: 3, o: 2, f: 5, stride: 2, pad: 'valid' },
    { n: 1, h: 6, w: 6, c: 1, o: 4, f: 5, stride: 1, pad: 2 },
  ];
  for (const { n, h, w, c, o, f, stride, pad } of cases) {
    const info = tf.backend_util.computeConv2DInfo([n, h, w, c], [f, f, c, o], stride, 1, pad);
    const { outHeight: oh, outWidth: ow, padInfo } = info;
    const xs = Float32Array.from({ length: n * h * w * c }, (_, i) => Math.sin(i * 1.7));
    const dys = Float32Array.from({ length: n * oh * ow * o }, (_, i) => Math.cos(i * 0.9));
    const expected = new Float64Array(f * f * c * o);
    for (let b = 0; b < n; b++)
      for (let y = 0; y < oh; y++)
        for (let x = 0; x < ow; x++)
          for (let ky = 0; ky < f; ky++)
            for (let kx = 0; kx < f; kx++) {
              const iy = y * stride - padInfo.top + ky;
              const ix = x * stride - padInfo.left + kx;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
              for (let ch = 0; ch < c; ch++)
                for (let k = 0; k < o; k++)
                  expected[((ky * f + kx) * c + ch) * o + k] += xs[((b * h + iy) * w + ix) * c + ch] * dys[((b * oh + y) * ow + x) * o + k];
            }
    const got = tf.tidy(() =>
      tf.engine().runKernel('Conv2DBackpropFilter', { x: tf.tensor4d(xs, [n, h, w, c]), dy: tf.tensor4d(dys, [n, oh, ow, o]) },
        { strides: stride, pad, dataFormat: 'NHWC', filterShape: [f, f, c, o] }).dataSync());
    const worst = expected.reduce((m, e, i) => Math.max(m, Math.abs(e - got[i])), 0);
    if (!(worst < 1e-4)) throw new Error(`the added Conv2DBackpropFilter is wrong by ${worst} (stride ${stride}, pad ${pad})`);
  }
}
