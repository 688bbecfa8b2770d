//! Drawing preprocessing.
pub fn preprocess_rgba(_rgba: &[u8], _width: usize, _height: usize) -> crate::Result<Option<Vec<f32>>> { Ok(None) }
