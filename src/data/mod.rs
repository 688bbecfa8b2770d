//! Data in and out of the network: MNIST's IDX files ([`idx`]) and the turning of a drawing
//! into the 28×28 image the model expects ([`preprocess`]).

pub mod augment;
pub mod digits;
pub mod idx;
pub mod preprocess;
