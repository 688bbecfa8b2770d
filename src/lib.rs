//! LeNet-5, written from scratch on [`ndarray`]: convolution, max-pooling and fully-connected
//! layers with hand-written forward and backward passes, softmax cross-entropy and SGD with
//! momentum, trained natively (the `lenet` command) or live in a browser tab through
//! WebAssembly (the `wasm` module, compiled only for `wasm32`).
//!
//! # Shapes
//! Tensors are NCHW, f32:
//! - `N` batch size, `C` channels, `H`×`W` height × width in pixels;
//! - images are `(N, 1, 28, 28)`, pixels in `[0, 1]`, 0 = background, 1 = ink;
//! - logits and probabilities are `(N, 10)`, one column per digit;
//! - labels are `u8` digits `0..=9`, one per image.
//!
//! # Layout
//! Dependencies point one way: the faces (`wasm`, the `lenet` binary) → [`train`] →
//! [`model`] → [`layers`], [`loss`], [`optim`] → [`gemm`]. [`data`] reads MNIST and turns a
//! drawing into a model input; [`weights`] saves and loads safetensors files; [`teach`] fine-tunes a
//! network on a person's own digits (the page's "Teach" and `lenet teach`). Nothing below the
//! faces mentions the browser.
//!
//! The network is LeNet-5 (LeCun, Bottou, Bengio and Haffner, "Gradient-based learning
//! applied to document recognition", Proc. IEEE 86(11), 1998) as modern re-implementations
//! define it: ReLU instead of scaled tanh, max-pooling instead of trainable subsampling, a
//! full C3 connection table and a softmax output instead of RBF units.

#![warn(missing_docs)]

pub mod data;
pub mod error;
pub mod explain;
#[cfg(not(target_arch = "wasm32"))]
mod files;
pub mod gemm;
mod json;
pub mod layers;
pub mod loss;
mod math;
pub mod model;
pub mod optim;
pub mod session;
pub mod teach;
pub mod train;
pub mod weights;

#[cfg(target_arch = "wasm32")]
pub mod wasm;
#[cfg(target_arch = "wasm32")]
mod wasm_args;

pub use error::{Error, Result};
pub use model::LeNet5;
