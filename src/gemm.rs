//! Matrix products, the kernel under every layer: `C = A·B` or `C += A·B`.
//!
//! [`gemm`] is the fast path used by the layers; [`gemm_reference`] is the plain triple loop it
//! is tested against. The fast path is this module's own SIMD kernels: SIMD128 on wasm32, and
//! AVX2 with FMA on x86-64 processors that have them (checked at run time); anything else
//! falls back to ndarray's `general_mat_mul` natively, and to a plain loop in wasm.
//!
//! Every product in LeNet-5 has one of two memory layouts, and each has its kernel:
//! - **broadcast** (`B` and `C` with contiguous rows): `C[i, j..j+8] += A[i, k] · B[k, j..j+8]`,
//!   vectorised along `j`; `A` may have any strides (it is read one scalar at a time). Serves
//!   the convolutions' forward pass and input gradient, and the linear layers' backward pass.
//! - **dot** (`A` and `Bᵀ` with contiguous rows): `C[i, j] = Σ_k A[i, k] · Bᵀ[j, k]`,
//!   vectorised along `k`. Serves the convolutions' weight gradient and the linear layers'
//!   forward pass.
//!
//! Beside them, the same two loops over a zero-padded image instead of an im2col matrix:
//! [`correlate`] (broadcast) and [`correlate_weight_grad`] (dot), for the stride-1 convolution
//! with one input channel, whose im2col matrix would be 25 times its input.

use ndarray::{ArrayView2, ArrayViewMut2};

/// `c = a · b` (`accumulate = false`) or `c += a · b` (`accumulate = true`), for `a` of shape
/// `(M, K)`, `b` of shape `(K, N)` and `c` of shape `(M, N)`. Transposed operands are passed as
/// transposed views (`x.t()`), which cost nothing: the kernels follow the strides.
///
/// Without `accumulate`, `c` is overwritten, whatever it held (even NaN).
///
/// # Panics
/// If the shapes do not agree: the layers check every shape that comes from outside before
/// they multiply, so a mismatch here is a bug in this crate.
pub fn gemm(a: ArrayView2<f32>, b: ArrayView2<f32>, accumulate: bool, mut c: ArrayViewMut2<f32>) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert!(k == k2 && c.dim() == (m, n), "gemm: ({m}, {k}) · ({k2}, {n}) into {:?}", c.dim());
    #[cfg(any(target_arch = "wasm32", target_arch = "x86_64"))]
    if kernels::gemm(&a, &b, accumulate, &mut c) {
        return;
    }
    if !accumulate {
        c.fill(0.0);
    }
    // In wasm every product of LeNet-5 has a kernel's layout, so the rest (transposed operands in
    // the tests) takes a plain loop, and the module does not carry matrixmultiply (5 KB).
    #[cfg(target_arch = "wasm32")]
    for ((i, j), out) in c.indexed_iter_mut() {
        *out += (0..k).fold(0.0, |s, p| s + a[[i, p]] * b[[p, j]]);
    }
    #[cfg(not(target_arch = "wasm32"))]
    ndarray::linalg::general_mat_mul(1.0, &a, &b, 1.0, &mut c);
}

/// The reference for [`gemm`]: a plain triple loop accumulating in f64. Slow; for tests.
pub fn gemm_reference(a: ArrayView2<f32>, b: ArrayView2<f32>, accumulate: bool, mut c: ArrayViewMut2<f32>) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2, "gemm_reference: inner dimensions differ");
    assert_eq!(c.dim(), (m, n), "gemm_reference: output shape");
    for i in 0..m {
        for j in 0..n {
            let mut acc = if accumulate { f64::from(c[[i, j]]) } else { 0.0 };
            for p in 0..k {
                acc += f64::from(a[[i, p]]) * f64::from(b[[p, j]]);
            }
            c[[i, j]] = acc as f32;
        }
    }
}

/// The shape of a stride-1 correlation computed directly on a zero-padded input, without an
/// im2col matrix: [`correlate`] and [`correlate_weight_grad`].
///
/// The padded input is row-major `(images, channels, height, row)`: each image's plane with its
/// zero border (`height = H + 2·padding`), and rows [`padded_row`] values long, so that the
/// vectors of output pixels never read past their row. Everything outside the image is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Padded {
    /// `N`.
    pub images: usize,
    /// `C`, the input channels.
    pub channels: usize,
    /// Rows of a padded plane: `out_h + kernel_size − 1`.
    pub height: usize,
    /// Values per padded row.
    pub row: usize,
    /// Side of the square kernel.
    pub kernel_size: usize,
    /// Output rows.
    pub out_h: usize,
    /// Output columns.
    pub out_w: usize,
}

/// Vectors of output columns [`correlate`] computes at a time: 4 (16 columns in wasm) with
/// blocks of 2 output channels keep 8 sums in flight, enough to hide the latency of a
/// multiply-add, in 11 of the 16 vector registers.
const VECTORS: usize = 4;

/// The SIMD width of the direct kernels on this processor (4 in wasm, 8 with AVX2 and FMA), or
/// `None` where they do not run, and the convolution takes im2col and [`gemm`] instead.
pub fn lanes() -> Option<usize> {
    #[cfg(target_arch = "wasm32")]
    return Some(4);
    #[cfg(target_arch = "x86_64")]
    return (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(8);
    #[allow(unreachable_code)]
    None
}

/// `out_w` rounded up to whole vectors of [`lanes`] (itself where the direct kernels do not run).
pub fn padded_width(out_w: usize) -> usize {
    lanes().map_or(out_w, |w| out_w.div_ceil(w) * w)
}

/// The row length of [`Padded`] for `out_w` output columns: [`correlate`] computes
/// `VECTORS` vectors of columns at a time (the last ones in part past `out_w`, not stored),
/// each reading `kernel_size − 1` values further.
pub fn padded_row(out_w: usize, kernel_size: usize) -> usize {
    lanes().map_or(out_w, |w| out_w.div_ceil(VECTORS * w) * VECTORS * w) + kernel_size - 1
}

/// The direct convolution: `out[n, o, i, j] = Σ_{c, u, v} weight[o, (c·k + u)·k + v] ·
/// x[n, c, i + u, j + v]` over the padded input `x` (shape: [`Padded`]), for `weight` of shape
/// `(O, C·k·k)` with contiguous rows and `out` row-major `(N, O, out_h, out_w)`. Each output is
/// one chain of multiply-adds in the order of `weight`'s columns, from 0, as [`gemm`]'s vector
/// loops compute it on the im2col matrix: the same bits (its scalar loop for a last few columns
/// does not fuse, and may differ in the last bit). Returns false (and writes nothing) where [`lanes`]
/// is `None`.
///
/// # Panics
/// If the slices are shorter than the shapes say: a bug in the caller.
pub fn correlate(x: &[f32], shape: Padded, weight: ArrayView2<f32>, out: &mut [f32]) -> bool {
    let Some(w) = lanes() else { return false };
    let (o, ckk) = weight.dim();
    check_padded(x, shape, w);
    assert!(ckk == shape.channels * shape.kernel_size * shape.kernel_size && weight.strides()[1] == 1);
    assert!(out.len() >= shape.images * o * shape.out_h * shape.out_w, "correlate: output too short");
    #[cfg(any(target_arch = "wasm32", target_arch = "x86_64"))]
    // The lengths were just checked, and `lanes()` checked the processor.
    unsafe {
        kernels::correlate::<kernels::Vector>(
            x.as_ptr(),
            shape,
            (weight.as_ptr(), weight.strides()[0], o),
            out.as_mut_ptr(),
        );
    }
    true
}

/// The weight gradient of [`correlate`]: `grad_w[o, (c·k + u)·k + v] = Σ_{n, i, j} grad[n, o,
/// i, j] · x[n, c, i + u, j + v]`, for `grad` row-major `(N, O, out_h, padded_width(out_w))`
/// with zeros past `out_w`, and `grad_w` row-major `(O, C·k·k)`, overwritten. Each sum runs in
/// vector lanes (lane `l` takes the columns `j ≡ l` modulo the width, in the order of `n`, `i`
/// and `j`) that are then added pairwise: a fixed order, the same for any caller. Returns false
/// (and writes nothing) where [`lanes`] is `None`.
///
/// # Panics
/// If the slices are shorter than the shapes say: a bug in the caller.
pub fn correlate_weight_grad(x: &[f32], shape: Padded, grad: &[f32], out_channels: usize, grad_w: &mut [f32]) -> bool {
    let Some(w) = lanes() else { return false };
    check_padded(x, shape, w);
    let ckk = shape.channels * shape.kernel_size * shape.kernel_size;
    let wo_pad = shape.out_w.div_ceil(w) * w;
    assert!(
        grad.len() >= shape.images * out_channels * shape.out_h * wo_pad,
        "correlate_weight_grad: gradient too short"
    );
    assert!(grad_w.len() >= out_channels * ckk, "correlate_weight_grad: output too short");
    #[cfg(any(target_arch = "wasm32", target_arch = "x86_64"))]
    // The lengths were just checked, and `lanes()` checked the processor.
    unsafe {
        kernels::correlate_weight_grad::<kernels::Vector>(
            x.as_ptr(),
            shape,
            grad.as_ptr(),
            out_channels,
            grad_w.as_mut_ptr(),
        );
    }
    true
}

/// `dst[r·dst_stride + j] = src[r·src_stride + j]` (`ADD` false) or `+=` (`ADD` true) for `r`
/// in `0..lines` and `j` in `0..len`: im2col's and col2im's rows of a stride-1 convolution, 5
/// to 32 values each, copied in whole vectors and then single values, without a
/// bounds check or a call per row. Returns false (and touches nothing) where [`lanes`] is
/// `None`.
///
/// # Panics
/// If a slice is shorter than its last row's end.
pub fn copy_lines<const ADD: bool>(
    dst: &mut [f32],
    dst_stride: usize,
    src: &[f32],
    src_stride: usize,
    (lines, len): (usize, usize),
) -> bool {
    if lines.min(len) == 0 || lanes().is_none() {
        return lines.min(len) == 0;
    }
    let end = |stride: usize| (lines - 1).checked_mul(stride).and_then(|start| start.checked_add(len));
    assert!(end(dst_stride).is_some_and(|e| e <= dst.len()), "copy_lines: destination too short");
    assert!(end(src_stride).is_some_and(|e| e <= src.len()), "copy_lines: source too short");
    #[cfg(any(target_arch = "wasm32", target_arch = "x86_64"))]
    // The lengths were just checked, and `lanes()` checked the processor.
    unsafe {
        kernels::copy_lines::<kernels::Vector, ADD>(
            (dst.as_mut_ptr(), dst_stride),
            (src.as_ptr(), src_stride),
            lines,
            len,
        );
    }
    true
}

fn check_padded(x: &[f32], shape: Padded, w: usize) {
    let Padded { images, channels, height, row, kernel_size, out_h, out_w } = shape;
    assert!(channels >= 1 && kernel_size >= 1 && height == out_h + kernel_size - 1, "Padded: height");
    assert!(row >= out_w.div_ceil(VECTORS * w) * VECTORS * w + kernel_size - 1, "Padded: row");
    // Checked: a product that wrapped would pass with a short buffer.
    let len = [channels, height, row].iter().try_fold(images, |n, &d| n.checked_mul(d));
    assert!(len.is_some_and(|len| x.len() >= len), "Padded: input too short");
}

#[cfg(any(target_arch = "wasm32", target_arch = "x86_64"))]
mod kernels {
    //! The kernels, written once over [`Lanes`], a SIMD vector of f32: SIMD128 on wasm32
    //! (4 lanes, every browser in use runs it) and AVX2 on x86-64 (8 lanes, fused multiply-add),
    //! used when the processor has AVX2 and FMA. On wasm32, `mul_add` is a multiply then an add,
    //! unless the build enables `relaxed-simd` (the package's second module,
    //! `lenet_relaxed_bg.wasm`, for the browsers that have it): then it is
    //! `f32x4.relaxed_madd`, which engines fuse where the processor has FMA: one instruction and
    //! one rounding instead of two, about 15 % faster training.

    use ndarray::{ArrayView2, ArrayViewMut2};

    /// A SIMD vector of f32 lanes. Every method is `unsafe`: pointers must be valid for
    /// `LANES` values, and on x86-64 the processor must have AVX2 and FMA.
    pub trait Lanes: Copy {
        const LANES: usize;
        unsafe fn zero() -> Self;
        unsafe fn splat(x: f32) -> Self;
        unsafe fn load(p: *const f32) -> Self;
        unsafe fn store(self, p: *mut f32);
        /// `self + a · b`, lane by lane.
        unsafe fn mul_add(self, a: Self, b: Self) -> Self;
        /// `self + a`, lane by lane.
        unsafe fn add(self, a: Self) -> Self;
        unsafe fn sum(self) -> f32;
    }

    #[cfg(target_arch = "wasm32")]
    pub type Vector = wasm::V;
    #[cfg(target_arch = "x86_64")]
    pub type Vector = x86::V;

    #[cfg(target_arch = "wasm32")]
    mod wasm {
        use core::arch::wasm32::*;

        #[derive(Clone, Copy)]
        pub struct V(v128);

        impl super::Lanes for V {
            const LANES: usize = 4;
            #[inline(always)]
            unsafe fn zero() -> Self {
                V(f32x4_splat(0.0))
            }
            #[inline(always)]
            unsafe fn splat(x: f32) -> Self {
                V(f32x4_splat(x))
            }
            #[inline(always)]
            unsafe fn load(p: *const f32) -> Self {
                V(v128_load(p as *const v128))
            }
            #[inline(always)]
            unsafe fn store(self, p: *mut f32) {
                v128_store(p as *mut v128, self.0)
            }
            #[inline(always)]
            unsafe fn mul_add(self, a: Self, b: Self) -> Self {
                #[cfg(target_feature = "relaxed-simd")]
                return V(f32x4_relaxed_madd(a.0, b.0, self.0));
                #[cfg(not(target_feature = "relaxed-simd"))]
                return V(f32x4_add(self.0, f32x4_mul(a.0, b.0)));
            }
            #[inline(always)]
            unsafe fn add(self, a: Self) -> Self {
                V(f32x4_add(self.0, a.0))
            }
            #[inline(always)]
            unsafe fn sum(self) -> f32 {
                (f32x4_extract_lane::<0>(self.0) + f32x4_extract_lane::<1>(self.0))
                    + (f32x4_extract_lane::<2>(self.0) + f32x4_extract_lane::<3>(self.0))
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use core::arch::x86_64::*;

        #[derive(Clone, Copy)]
        pub struct V(__m256);

        impl super::Lanes for V {
            const LANES: usize = 8;
            #[inline(always)]
            unsafe fn zero() -> Self {
                V(_mm256_setzero_ps())
            }
            #[inline(always)]
            unsafe fn splat(x: f32) -> Self {
                V(_mm256_set1_ps(x))
            }
            #[inline(always)]
            unsafe fn load(p: *const f32) -> Self {
                V(_mm256_loadu_ps(p))
            }
            #[inline(always)]
            unsafe fn store(self, p: *mut f32) {
                _mm256_storeu_ps(p, self.0)
            }
            #[inline(always)]
            unsafe fn mul_add(self, a: Self, b: Self) -> Self {
                V(_mm256_fmadd_ps(a.0, b.0, self.0))
            }
            #[inline(always)]
            unsafe fn add(self, a: Self) -> Self {
                V(_mm256_add_ps(self.0, a.0))
            }
            #[inline(always)]
            unsafe fn sum(self) -> f32 {
                let mut lanes = [0.0f32; 8];
                _mm256_storeu_ps(lanes.as_mut_ptr(), self.0);
                ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
            }
        }
    }

    /// [`super::correlate`]: for each output row, blocks of 2 output channels (then a single
    /// one) × `VECTORS` vectors of columns, over `(c, u, v)` in order.
    #[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
    pub unsafe fn correlate<V: Lanes>(
        x: *const f32,
        shape: super::Padded,
        (wt, wt_rs, o): (*const f32, isize, usize),
        out: *mut f32,
    ) {
        let super::Padded { images, channels, height, row, kernel_size: k, out_h, out_w } = shape;
        let plane = height * row;
        for b in 0..images {
            for i in 0..out_h {
                let x_i = x.add(b * channels * plane + i * row);
                let mut r = 0;
                while r < o {
                    // Two block sizes only: each is a copy of the loops in the module.
                    let rows = if o - r >= 2 { 2 } else { 1 };
                    let w_r = (wt.offset(r as isize * wt_rs), wt_rs);
                    let out_r = (out.add(((b * o + r) * out_h + i) * out_w), out_h * out_w);
                    let geometry = (channels, plane, row, k, out_w);
                    if rows == 2 {
                        correlate_rows::<V, 2>(x_i, geometry, w_r, out_r);
                    } else {
                        correlate_rows::<V, 1>(x_i, geometry, w_r, out_r);
                    }
                    r += rows;
                }
            }
        }
    }

    #[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
    #[inline]
    unsafe fn correlate_rows<V: Lanes, const R: usize>(
        x: *const f32,
        (channels, plane, row, k, out_w): (usize, usize, usize, usize, usize),
        (wt, wt_rs): (*const f32, isize),
        (out, out_rs): (*mut f32, usize),
    ) {
        let w = V::LANES;
        let mut j = 0;
        // VECTORS vectors at a time only, the last ones in part past the row's end: a loop for
        // fewer would be another copy of these loops in the module.
        while j < out_w {
            let mut acc = [[V::zero(); super::VECTORS]; R];
            let mut wp = wt;
            for c in 0..channels {
                for u in 0..k {
                    let src = x.add(c * plane + u * row + j);
                    for v in 0..k {
                        let s: [V; R] = core::array::from_fn(|r| V::splat(*wp.offset(r as isize * wt_rs)));
                        for q in 0..super::VECTORS {
                            let xv = V::load(src.add(v + q * w));
                            for (row, &s) in acc.iter_mut().zip(&s) {
                                row[q] = row[q].mul_add(s, xv);
                            }
                        }
                        wp = wp.add(1);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                for (q, &v) in acc.iter().enumerate() {
                    put(v, out, r * out_rs + j + q * w, out_w.saturating_sub(j + q * w));
                }
            }
            j += super::VECTORS * w;
        }
    }

    /// [`super::copy_lines`].
    #[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
    pub unsafe fn copy_lines<V: Lanes, const ADD: bool>(
        (dst, dst_stride): (*mut f32, usize),
        (src, src_stride): (*const f32, usize),
        lines: usize,
        len: usize,
    ) {
        for r in 0..lines {
            let (d, s) = (dst.add(r * dst_stride), src.add(r * src_stride));
            let mut j = 0;
            while j + V::LANES <= len {
                let v = V::load(s.add(j));
                let v = if ADD { V::load(d.add(j)).add(v) } else { v };
                v.store(d.add(j));
                j += V::LANES;
            }
            if !ADD && j < len && len >= V::LANES {
                // The last vector again, overlapping the one before: a copy loop of the few
                // values left would become a `memcpy` call.
                V::load(s.add(len - V::LANES)).store(d.add(len - V::LANES));
                continue;
            }
            while j < len {
                *d.add(j) = if ADD { *d.add(j) + *s.add(j) } else { *s.add(j) };
                j += 1;
            }
        }
    }

    /// Stores the first `room` lanes of `v` at `out + at` (all of them when `room ≥ LANES`). The
    /// pointer is formed only when something is stored: past the row's end it could lie beyond
    /// the buffer.
    #[inline(always)]
    unsafe fn put<V: Lanes>(v: V, out: *mut f32, at: usize, room: usize) {
        if room >= V::LANES {
            v.store(out.add(at));
        } else if room > 0 {
            let mut lanes = [0.0f32; 16];
            v.store(lanes.as_mut_ptr());
            core::ptr::copy_nonoverlapping(lanes.as_ptr(), out.add(at), room);
        }
    }

    /// The 2 × `Q` block of dot products of [`dot`] (`Q` = 4) and [`correlate_weight_grad`] (5):
    /// `acc[r][q] += a[r][p..] · b[q][p..]` lane by lane, for `p` in `0..len` by whole vectors
    /// (`len` a multiple of `V::LANES`). Pointers must be valid for `len` values.
    #[inline(always)]
    unsafe fn block<V: Lanes, const Q: usize>(
        acc: &mut [[V; Q]; 2],
        a: [*const f32; 2],
        b: [*const f32; Q],
        len: usize,
    ) {
        let mut p = 0;
        while p < len {
            let av = [V::load(a[0].add(p)), V::load(a[1].add(p))];
            for q in 0..Q {
                let bv = V::load(b[q].add(p));
                acc[0][q] = acc[0][q].mul_add(av[0], bv);
                acc[1][q] = acc[1][q].mul_add(av[1], bv);
            }
            p += V::LANES;
        }
    }

    /// [`super::correlate_weight_grad`]: blocks of 2 output channels × 5 kernel taps share
    /// their loads, as in [`dot`].
    #[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
    pub unsafe fn correlate_weight_grad<V: Lanes>(
        x: *const f32,
        shape: super::Padded,
        grad: *const f32,
        o: usize,
        grad_w: *mut f32,
    ) {
        let super::Padded { images, channels, height, row, kernel_size: k, out_h, out_w } = shape;
        let w = V::LANES;
        let wo_pad = out_w.div_ceil(w) * w;
        let plane = height * row;
        let taps = channels * k * k;
        let offset = |t: usize| (t / (k * k)) * plane + (t % (k * k) / k) * row + t % k;
        // Taps per block: a row of LeNet-5's 5 × 5 kernels, so that no block is part empty.
        const TAPS: usize = 5;
        let mut r = 0;
        while r < o {
            let rows = (o - r).min(2);
            let mut t = 0;
            while t < taps {
                let cols = (taps - t).min(TAPS);
                // Rows and taps past the edge repeat the last one; their sums are not stored.
                let offsets: [usize; TAPS] = core::array::from_fn(|q| offset(t + q.min(cols - 1)));
                let mut acc = [[V::zero(); TAPS]; 2];
                for b in 0..images {
                    let x_b = x.add(b * channels * plane);
                    let g = [grad.add((b * o + r) * out_h * wo_pad), grad.add((b * o + r + rows - 1) * out_h * wo_pad)];
                    for i in 0..out_h {
                        let x_i = offsets.map(|off| x_b.add(i * row + off));
                        let g_i = [g[0].add(i * wo_pad), g[1].add(i * wo_pad)];
                        block(&mut acc, g_i, x_i, wo_pad);
                    }
                }
                for (rr, acc) in acc.iter().enumerate().take(rows) {
                    for (q, acc) in acc.iter().enumerate().take(cols) {
                        *grad_w.add((r + rr) * taps + t + q) = acc.sum();
                    }
                }
                t += cols;
            }
            r += rows;
        }
    }

    /// Runs the product if the processor and the layout suit a kernel; returns false (and
    /// touches nothing) otherwise, for the caller's general fallback.
    pub fn gemm(a: &ArrayView2<f32>, b: &ArrayView2<f32>, accumulate: bool, c: &mut ArrayViewMut2<f32>) -> bool {
        if super::lanes().is_none() {
            return false;
        }
        let (m, k) = a.dim();
        let n = b.dim().1;
        if m == 0 || n == 0 || k == 0 {
            return false;
        }
        let [a_rs, a_cs] = [a.strides()[0], a.strides()[1]];
        let [b_rs, b_cs] = [b.strides()[0], b.strides()[1]];
        let [c_rs, c_cs] = [c.strides()[0], c.strides()[1]];
        // Every index the kernels form is inside the views (shapes checked by the caller,
        // strides from ndarray views of those shapes), and `lanes()` checked the processor.
        unsafe {
            if b_cs == 1 && c_cs == 1 {
                broadcast::<Vector>(
                    m,
                    n,
                    k,
                    (a.as_ptr(), a_rs, a_cs),
                    (b.as_ptr(), b_rs),
                    (c.as_mut_ptr(), c_rs),
                    accumulate,
                );
                return true;
            }
            if a_cs == 1 && b_rs == 1 {
                dot::<Vector>(
                    m,
                    n,
                    k,
                    (a.as_ptr(), a_rs),
                    (b.as_ptr(), b_cs),
                    (c.as_mut_ptr(), c_rs, c_cs),
                    accumulate,
                );
                return true;
            }
        }
        false
    }

    /// `C[i, j] (+)= Σ_k A[i, k] · B[k, j]` with unit column stride in B and C, in blocks of
    /// up to 4 rows.
    #[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
    unsafe fn broadcast<V: Lanes>(
        m: usize,
        n: usize,
        k: usize,
        a: (*const f32, isize, isize),
        b: (*const f32, isize),
        c: (*mut f32, isize),
        accumulate: bool,
    ) {
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(4);
            let a_i = (a.0.offset(i as isize * a.1), a.1, a.2);
            let c_i = (c.0.offset(i as isize * c.1), c.1);
            match rows {
                4 => broadcast_rows::<V, 4>(n, k, a_i, b, c_i, accumulate),
                3 => broadcast_rows::<V, 3>(n, k, a_i, b, c_i, accumulate),
                2 => broadcast_rows::<V, 2>(n, k, a_i, b, c_i, accumulate),
                _ => broadcast_rows::<V, 1>(n, k, a_i, b, c_i, accumulate),
            }
            i += rows;
        }
    }

    /// [`broadcast`] for a block of `R` rows of C, two vectors of columns at a time, then one,
    /// then single columns.
    #[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
    #[inline]
    unsafe fn broadcast_rows<V: Lanes, const R: usize>(
        n: usize,
        k: usize,
        (a, a_rs, a_cs): (*const f32, isize, isize),
        (b, b_rs): (*const f32, isize),
        (c, c_rs): (*mut f32, isize),
        accumulate: bool,
    ) {
        let w = V::LANES;
        let mut j = 0;
        while j + 2 * w <= n {
            let mut acc = [[V::zero(); 2]; R];
            if accumulate {
                for (r, row) in acc.iter_mut().enumerate() {
                    let p = c.offset(r as isize * c_rs).add(j);
                    *row = [V::load(p), V::load(p.add(w))];
                }
            }
            let (mut a_p, mut b_p) = (a, b.add(j));
            for _ in 0..k {
                let (b0, b1) = (V::load(b_p), V::load(b_p.add(w)));
                for (r, row) in acc.iter_mut().enumerate() {
                    let s = V::splat(*a_p.offset(r as isize * a_rs));
                    row[0] = row[0].mul_add(s, b0);
                    row[1] = row[1].mul_add(s, b1);
                }
                a_p = a_p.offset(a_cs);
                b_p = b_p.offset(b_rs);
            }
            for (r, row) in acc.iter().enumerate() {
                let p = c.offset(r as isize * c_rs).add(j);
                row[0].store(p);
                row[1].store(p.add(w));
            }
            j += 2 * w;
        }
        while j + w <= n {
            let mut acc = [V::zero(); R];
            if accumulate {
                for (r, v) in acc.iter_mut().enumerate() {
                    *v = V::load(c.offset(r as isize * c_rs).add(j));
                }
            }
            for p in 0..k {
                let bv = V::load(b.offset(p as isize * b_rs).add(j));
                for (r, v) in acc.iter_mut().enumerate() {
                    *v = v.mul_add(V::splat(*a.offset(r as isize * a_rs + p as isize * a_cs)), bv);
                }
            }
            for (r, v) in acc.iter().enumerate() {
                v.store(c.offset(r as isize * c_rs).add(j));
            }
            j += w;
        }
        while j < n {
            for r in 0..R {
                let out = c.offset(r as isize * c_rs).add(j);
                let mut s = if accumulate { *out } else { 0.0 };
                for p in 0..k {
                    s += *a.offset(r as isize * a_rs + p as isize * a_cs) * *b.offset(p as isize * b_rs).add(j);
                }
                *out = s;
            }
            j += 1;
        }
    }

    /// `C[i, j] (+)= Σ_k A[i, k] · Bᵀ[j, k]`, where `Bᵀ[j, k] = b[j·b_cs + k]`: rows of A and
    /// of Bᵀ are contiguous along k. Blocks of 2 × 4 dot products share their loads.
    #[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
    unsafe fn dot<V: Lanes>(
        m: usize,
        n: usize,
        k: usize,
        (a, a_rs): (*const f32, isize),
        (b, b_cs): (*const f32, isize),
        (c, c_rs, c_cs): (*mut f32, isize, isize),
        accumulate: bool,
    ) {
        let w = V::LANES;
        let k_vec = k / w * w;
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(2);
            let mut j = 0;
            while j < n {
                let cols = (n - j).min(4);
                let mut acc = [[V::zero(); 4]; 2];
                let mut tail = [[0.0f32; 4]; 2];
                // Rows and columns past the matrix's edge repeat the last one; their sums are
                // not stored.
                let a_rows = [a.offset(i as isize * a_rs), a.offset((i + rows - 1) as isize * a_rs)];
                let b_rows = [0, 1, 2, 3].map(|q| b.offset((j + q.min(cols - 1)) as isize * b_cs));
                block(&mut acc, a_rows, b_rows, k_vec);
                let mut p = k_vec;
                while p < k {
                    for q in 0..4 {
                        let bq = *b_rows[q].add(p);
                        tail[0][q] += *a_rows[0].add(p) * bq;
                        tail[1][q] += *a_rows[1].add(p) * bq;
                    }
                    p += 1;
                }
                for r in 0..rows {
                    for q in 0..cols {
                        let sum = acc[r][q].sum() + tail[r][q];
                        let out = c.offset((i + r) as isize * c_rs + (j + q) as isize * c_cs);
                        *out = if accumulate { *out + sum } else { sum };
                    }
                }
                j += cols;
            }
            i += rows;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn pseudo_random(shape: (usize, usize), seed: u32) -> Array2<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        Array2::from_shape_fn(shape, |_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 2001) as f32 / 1000.0 - 1.0
        })
    }

    #[test]
    fn fast_path_matches_reference_for_transposed_operands() {
        let a = pseudo_random((37, 19), 1);
        let b = pseudo_random((23, 37), 2);
        let mut fast = pseudo_random((19, 23), 3);
        let mut slow = fast.clone();
        gemm(a.t(), b.t(), true, fast.view_mut());
        gemm_reference(a.t(), b.t(), true, slow.view_mut());
        let worst = (&fast - &slow).iter().fold(0.0f32, |m, d| m.max(d.abs()));
        assert!(worst < 1e-5, "largest difference {worst}");
    }

    #[test]
    fn overwrite_ignores_nan() {
        let a = Array2::<f32>::ones((2, 3));
        let b = Array2::<f32>::ones((3, 2));
        let mut c = Array2::from_elem((2, 2), f32::NAN);
        gemm(a.view(), b.view(), false, c.view_mut());
        assert_eq!(c, Array2::from_elem((2, 2), 3.0));
    }
}
