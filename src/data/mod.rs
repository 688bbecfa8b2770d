//! Data in and out of the network: MNIST's IDX files ([`idx`]), the turning of a drawing
//! into the 28×28 image the model expects ([`preprocess`]), and random distortions of the
//! training digits ([`augment`]).

pub mod augment;
pub mod digits;
pub mod idx;
pub mod preprocess;
