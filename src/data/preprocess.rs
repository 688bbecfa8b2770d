//! Drawing preprocessing.
