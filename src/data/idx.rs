//! MNIST IDX reader.
