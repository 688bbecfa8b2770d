//! Matrix products, the kernel under every layer: `C = A·B` or `C += A·B`.
//!
//! [`gemm`] is the fast path used by the layers; [`gemm_reference`] is the plain triple loop it
//! is tested against. On wasm32 the fast path is this module's own SIMD128 kernels; natively it
//! is ndarray's `general_mat_mul` (the matrixmultiply crate, which picks AVX2/FMA at run time).
//!
//! Every product in LeNet-5 has one of two memory layouts, and each has its kernel:
//! - **broadcast** (`B` and `C` with contiguous rows): `C[i, j..j+8] += A[i, k] · B[k, j..j+8]`,
//!   vectorised along `j`; `A` may have any strides (it is read one scalar at a time). Serves
//!   the convolutions' forward pass and input gradient, and the linear layers' backward pass.
//! - **dot** (`A` and `Bᵀ` with contiguous rows): `C[i, j] = Σ_k A[i, k] · Bᵀ[j, k]`,
//!   vectorised along `k`. Serves the convolutions' weight gradient and the linear layers'
//!   forward pass.

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
    #[cfg(target_arch = "wasm32")]
    if simd128::gemm(&a, &b, accumulate, &mut c) {
        return;
    }
    if !accumulate {
        c.fill(0.0);
    }
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

#[cfg(target_arch = "wasm32")]
mod simd128 {
    //! SIMD128 kernels for wasm32 (4 f32 lanes; every browser in use runs them).
    //!
    //! No fused multiply-add: it is only in the relaxed-SIMD proposal, which not every browser
    //! has, and a module using it would not load in those.

    use core::arch::wasm32::*;

    use ndarray::{ArrayView2, ArrayViewMut2};

    /// Runs the product if its layout suits a kernel; returns false (and touches nothing)
    /// otherwise, for the caller's general fallback.
    pub fn gemm(a: &ArrayView2<f32>, b: &ArrayView2<f32>, accumulate: bool, c: &mut ArrayViewMut2<f32>) -> bool {
        let (m, k) = a.dim();
        let n = b.dim().1;
        if m == 0 || n == 0 {
            return true;
        }
        if k == 0 {
            if !accumulate {
                c.fill(0.0);
            }
            return true;
        }
        let [a_rs, a_cs] = [a.strides()[0], a.strides()[1]];
        let [b_rs, b_cs] = [b.strides()[0], b.strides()[1]];
        let [c_rs, c_cs] = [c.strides()[0], c.strides()[1]];
        // Every index the kernels form is inside the views: shapes were checked by the caller,
        // and strides come from ndarray views of those shapes.
        unsafe {
            if b_cs == 1 && c_cs == 1 {
                broadcast(m, n, k, a.as_ptr(), a_rs, a_cs, b.as_ptr(), b_rs, c.as_mut_ptr(), c_rs, accumulate);
                return true;
            }
            if a_cs == 1 && b_rs == 1 {
                dot(m, n, k, a.as_ptr(), a_rs, b.as_ptr(), b_cs, c.as_mut_ptr(), c_rs, c_cs, accumulate);
                return true;
            }
        }
        false
    }

    const MR: usize = 4;

    /// `C[i, j] (+)= Σ_k A[i, k] · B[k, j]` with unit column stride in B and C.
    #[allow(clippy::too_many_arguments)]
    unsafe fn broadcast(
        m: usize,
        n: usize,
        k: usize,
        a: *const f32,
        a_rs: isize,
        a_cs: isize,
        b: *const f32,
        b_rs: isize,
        c: *mut f32,
        c_rs: isize,
        accumulate: bool,
    ) {
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(MR);
            let a_i = a.offset(i as isize * a_rs);
            let c_i = c.offset(i as isize * c_rs);
            if rows == MR {
                broadcast_rows::<MR>(n, k, a_i, a_rs, a_cs, b, b_rs, c_i, c_rs, accumulate);
            } else if rows == 3 {
                broadcast_rows::<3>(n, k, a_i, a_rs, a_cs, b, b_rs, c_i, c_rs, accumulate);
            } else if rows == 2 {
                broadcast_rows::<2>(n, k, a_i, a_rs, a_cs, b, b_rs, c_i, c_rs, accumulate);
            } else {
                broadcast_rows::<1>(n, k, a_i, a_rs, a_cs, b, b_rs, c_i, c_rs, accumulate);
            }
            i += rows;
        }
    }

    /// [`broadcast`] for a block of `R` rows of C, 8 columns at a time.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn broadcast_rows<const R: usize>(
        n: usize,
        k: usize,
        a: *const f32,
        a_rs: isize,
        a_cs: isize,
        b: *const f32,
        b_rs: isize,
        c: *mut f32,
        c_rs: isize,
        accumulate: bool,
    ) {
        let mut j = 0;
        while j + 8 <= n {
            let mut acc = [[f32x4_splat(0.0); 2]; R];
            if accumulate {
                for (r, row) in acc.iter_mut().enumerate() {
                    let p = c.offset(r as isize * c_rs).add(j);
                    row[0] = v128_load(p as *const v128);
                    row[1] = v128_load(p.add(4) as *const v128);
                }
            }
            let mut b_p = b.add(j);
            let mut a_p = a;
            for _ in 0..k {
                let b0 = v128_load(b_p as *const v128);
                let b1 = v128_load(b_p.add(4) as *const v128);
                for (r, row) in acc.iter_mut().enumerate() {
                    let s = f32x4_splat(*a_p.offset(r as isize * a_rs));
                    row[0] = f32x4_add(row[0], f32x4_mul(s, b0));
                    row[1] = f32x4_add(row[1], f32x4_mul(s, b1));
                }
                b_p = b_p.offset(b_rs);
                a_p = a_p.offset(a_cs);
            }
            for (r, row) in acc.iter().enumerate() {
                let p = c.offset(r as isize * c_rs).add(j);
                v128_store(p as *mut v128, row[0]);
                v128_store(p.add(4) as *mut v128, row[1]);
            }
            j += 8;
        }
        while j + 4 <= n {
            let mut acc = [f32x4_splat(0.0); R];
            if accumulate {
                for (r, v) in acc.iter_mut().enumerate() {
                    *v = v128_load(c.offset(r as isize * c_rs).add(j) as *const v128);
                }
            }
            for p in 0..k {
                let bv = v128_load(b.offset(p as isize * b_rs).add(j) as *const v128);
                for (r, v) in acc.iter_mut().enumerate() {
                    let s = f32x4_splat(*a.offset(r as isize * a_rs + p as isize * a_cs));
                    *v = f32x4_add(*v, f32x4_mul(s, bv));
                }
            }
            for (r, v) in acc.iter().enumerate() {
                v128_store(c.offset(r as isize * c_rs).add(j) as *mut v128, *v);
            }
            j += 4;
        }
        while j < n {
            for r in 0..R {
                let mut s = if accumulate { *c.offset(r as isize * c_rs).add(j) } else { 0.0 };
                for p in 0..k {
                    s += *a.offset(r as isize * a_rs + p as isize * a_cs) * *b.offset(p as isize * b_rs).add(j);
                }
                *c.offset(r as isize * c_rs).add(j) = s;
            }
            j += 1;
        }
    }

    /// `C[i, j] (+)= Σ_k A[i, k] · Bᵀ[j, k]`, where `Bᵀ[j, k] = b[j·b_cs + k]`: rows of A and
    /// of Bᵀ are contiguous along k. Blocks of 2 × 4 dot products share their loads.
    #[allow(clippy::too_many_arguments)]
    unsafe fn dot(
        m: usize,
        n: usize,
        k: usize,
        a: *const f32,
        a_rs: isize,
        b: *const f32,
        b_cs: isize,
        c: *mut f32,
        c_rs: isize,
        c_cs: isize,
        accumulate: bool,
    ) {
        let k4 = k / 4 * 4;
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(2);
            let mut j = 0;
            while j < n {
                let cols = (n - j).min(4);
                let mut acc = [[f32x4_splat(0.0); 4]; 2];
                let mut tail = [[0.0f32; 4]; 2];
                let a_rows = [a.offset(i as isize * a_rs), a.offset((i + rows - 1) as isize * a_rs)];
                let b_rows = [0, 1, 2, 3].map(|q| b.offset((j + q.min(cols - 1)) as isize * b_cs));
                let mut p = 0;
                while p < k4 {
                    let av = [v128_load(a_rows[0].add(p) as *const v128), v128_load(a_rows[1].add(p) as *const v128)];
                    for q in 0..4 {
                        let bv = v128_load(b_rows[q].add(p) as *const v128);
                        acc[0][q] = f32x4_add(acc[0][q], f32x4_mul(av[0], bv));
                        acc[1][q] = f32x4_add(acc[1][q], f32x4_mul(av[1], bv));
                    }
                    p += 4;
                }
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
                        let v = acc[r][q];
                        let sum = (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v))
                            + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v))
                            + tail[r][q];
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
