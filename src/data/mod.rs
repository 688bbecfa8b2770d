//! Data in and out of the network: MNIST's IDX files ([`idx`]) and the turning of a drawing
//! into the 28×28 image the model expects ([`preprocess`]); pen strokes rendered into that same
//! image ([`strokes`]) and the UNIPEN on-line handwriting files they come from ([`unipen`]).

pub mod idx;
pub mod preprocess;
pub mod strokes;
pub mod unipen;
