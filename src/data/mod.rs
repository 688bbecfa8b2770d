//! Data in and out of the network: MNIST's IDX files ([`idx`]) and digits as bytes
//! ([`digits`]); the turning of a drawing into the 28×28 image the model expects
//! ([`preprocess`]); pen strokes rendered into that same image ([`strokes`]) and the UNIPEN
//! on-line handwriting files they come from ([`unipen`]); random distortions of the training
//! digits ([`augment`]).

pub mod augment;
pub mod digits;
pub mod idx;
pub mod preprocess;
pub mod strokes;
pub mod unipen;
