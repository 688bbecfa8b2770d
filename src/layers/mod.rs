//! The network's layers, each a pair of passes written out by hand.
//!
//! Every layer has a `forward` and a `backward`. What backward needs from forward is explicit:
//! either a cache the caller keeps ([`Conv2dCache`], [`MaxPool2dCache`]) or a tensor the caller
//! passes again (the input of [`Linear`], the output of [`relu`]). Outputs and gradients are
//! written into buffers the caller owns and reuses, so a training loop allocates nothing after
//! its first step; [`ensure_shape`] resizes such a buffer only when the batch size changes.

mod conv2d;
mod linear;
mod max_pool2d;
mod relu;

pub use conv2d::{Conv2d, Conv2dCache, Conv2dGrads};
pub use linear::{Linear, LinearGrads};
pub use max_pool2d::{MaxPool2d, MaxPool2dCache};
pub use relu::{relu, relu_backward};

use ndarray::{Array, Dimension, ShapeBuilder};

/// Makes `buffer` have `shape` (standard row-major layout), reallocating only when the shape
/// differs. The contents are unspecified afterwards: callers overwrite them.
pub fn ensure_shape<D: Dimension>(buffer: &mut Array<f32, D>, shape: D) {
    if buffer.raw_dim() != shape || !buffer.is_standard_layout() {
        *buffer = Array::zeros(shape.into_shape_with_order());
    }
}

/// Uniform He (Kaiming) initialisation: U(−b, b) with b = sqrt(6 / fan_in), which keeps the
/// variance of ReLU activations constant from layer to layer (He, Zhang, Ren and Sun, "Delving
/// Deep into Rectifiers", ICCV 2015). Only uniform draws and a square root are used, both exact
/// in IEEE arithmetic, so a seed gives bit-identical weights on every platform.
pub(crate) fn kaiming_uniform(values: &mut [f32], fan_in: usize, rng: &mut impl rand::Rng) {
    let bound = (6.0f32 / fan_in as f32).sqrt();
    for v in values {
        let u: f32 = rng.random(); // [0, 1), 24 random bits
        *v = (2.0 * u - 1.0) * bound;
    }
}
