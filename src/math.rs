//! The two transcendental functions outside the network's matrix products, chosen in one place.
//!
//! In wasm they are libm's, which the module carries anyway for the augmentation, so that it does
//! not also carry the standard library's copies. Natively they are the platform's, as they were
//! when the shipped weights and the README's figures were made: a different last bit in one
//! exponential changes a whole training run (seed 0's one epoch reads 98.61 % with glibc's
//! `expf` and 98.43 % with libm's), and the README's training command must reproduce the
//! shipped weights byte for byte.

/// `e^x` in f32: softmax, cross-entropy and the saliency's softmax.
#[inline]
pub(crate) fn exp(x: f32) -> f32 {
    #[cfg(target_arch = "wasm32")]
    return libm::expf(x);
    #[cfg(not(target_arch = "wasm32"))]
    return x.exp();
}

/// `cos(x)` in f64, `x` in radians: the cosine learning-rate schedule.
#[inline]
pub(crate) fn cos(x: f64) -> f64 {
    #[cfg(target_arch = "wasm32")]
    return libm::cos(x);
    #[cfg(not(target_arch = "wasm32"))]
    return x.cos();
}
