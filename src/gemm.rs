//! Matrix products, the kernel under every layer: `C = alpha·op(A)·op(B) + beta·C`.
//!
//! [`gemm`] is the fast path used by the layers; [`gemm_reference`] is the plain triple loop it
//! is tested against.

use ndarray::{ArrayView2, ArrayViewMut2};

/// `c = alpha · a · b + beta · c`, for `a` of shape `(M, K)`, `b` of shape `(K, N)` and `c` of
/// shape `(M, N)`. Transposed operands are passed as transposed views (`x.t()`), which cost
/// nothing: the kernel follows the strides.
///
/// With `beta = 0`, `c` is overwritten, whatever it held (even NaN).
///
/// # Panics
/// If the shapes do not agree: the layers check every shape that comes from outside before
/// they multiply, so a mismatch here is a bug in this crate.
pub fn gemm(alpha: f32, a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, mut c: ArrayViewMut2<f32>) {
    if beta == 0.0 {
        c.fill(0.0);
    }
    ndarray::linalg::general_mat_mul(alpha, &a, &b, beta, &mut c);
}

/// The reference for [`gemm`]: a plain triple loop accumulating in f64. Slow; for tests.
pub fn gemm_reference(alpha: f32, a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, mut c: ArrayViewMut2<f32>) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2, "gemm_reference: inner dimensions differ");
    assert_eq!(c.dim(), (m, n), "gemm_reference: output shape");
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f64;
            for p in 0..k {
                acc += f64::from(a[[i, p]]) * f64::from(b[[p, j]]);
            }
            let prior = if beta == 0.0 { 0.0 } else { f64::from(beta) * f64::from(c[[i, j]]) };
            c[[i, j]] = (f64::from(alpha) * acc + prior) as f32;
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
        gemm(0.5, a.t(), b.t(), 1.0, fast.view_mut());
        gemm_reference(0.5, a.t(), b.t(), 1.0, slow.view_mut());
        let worst = (&fast - &slow).iter().fold(0.0f32, |m, d| m.max(d.abs()));
        assert!(worst < 1e-5, "largest difference {worst}");
    }

    #[test]
    fn beta_zero_overwrites_nan() {
        let a = Array2::<f32>::ones((2, 3));
        let b = Array2::<f32>::ones((3, 2));
        let mut c = Array2::from_elem((2, 2), f32::NAN);
        gemm(1.0, a.view(), b.view(), 0.0, c.view_mut());
        assert_eq!(c, Array2::from_elem((2, 2), 3.0));
    }
}
