//! Saving and loading a [`LeNet5`] in the safetensors format (Hugging Face's: an 8-byte
//! little-endian header length, a JSON header, then raw little-endian tensors).
//!
//! Tensors are named as PyTorch names the `state_dict` of a module with attributes `conv1`,
//! `conv2`, `fc1`, `fc2`, `fc3` (`conv1.weight`, `conv1.bias`, …), f32, in PyTorch's layouts,
//! so `safetensors.torch.load_file` followed by `load_state_dict` loads a file written here into
//! an `nn.Module` of the same shape, and a file written that way loads here. The normalisation
//! constants travel in the header's metadata as `input_mean` and `input_std`.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{fmt_shape, Error, Result};
use crate::model::{LeNet5, MNIST_MEAN, MNIST_STD, PARAMETER_NAMES};

/// The model as a safetensors file, in bytes: the ten f32 tensors and the metadata
/// `architecture = LeNet-5`, `input_mean`, `input_std`.
///
/// # Errors
/// [`Error::Weights`] if the serializer fails (it does not for a well-formed model).
pub fn to_safetensors(model: &LeNet5) -> Result<Vec<u8>> {
    let shapes = model.parameter_shapes();
    let bytes: Vec<Vec<u8>> =
        model.parameters().iter().map(|t| t.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let mut views = Vec::with_capacity(PARAMETER_NAMES.len());
    for ((name, shape), data) in PARAMETER_NAMES.iter().zip(shapes).zip(&bytes) {
        let view = TensorView::new(Dtype::F32, shape, data).map_err(|e| Error::Weights(format!("{name}: {e}")))?;
        views.push((*name, view));
    }
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("architecture".to_string(), "LeNet-5".to_string()),
        // Display of an f32 is the shortest string that parses back to the same bits.
        ("input_mean".to_string(), model.input_mean.to_string()),
        ("input_std".to_string(), model.input_std.to_string()),
    ]);
    safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Weights(e.to_string()))
}

/// A model read from the bytes of a safetensors file.
///
/// Every one of the ten tensors must be present, f32, and of its exact shape; no other tensor
/// may be present; every value must be finite. `input_mean` and `input_std` are read from the
/// metadata; a file without them (as `safetensors.torch.save_file` writes by default) gets
/// MNIST's constants.
///
/// # Errors
/// [`Error::Weights`] naming the problem: not a safetensors file, a truncated file, a missing
/// or unexpected tensor, a wrong dtype or shape, a non-finite value, bad metadata.
pub fn from_safetensors(bytes: &[u8]) -> Result<LeNet5> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| Error::Weights(format!("not a valid safetensors file: {e}")))?;
    let mut model = LeNet5::new(0);
    let shapes = model.parameter_shapes();
    for name in file.names() {
        if !PARAMETER_NAMES.contains(&name) {
            return Err(Error::Weights(format!(
                "unexpected tensor `{name}`: a LeNet-5 file holds only {}",
                PARAMETER_NAMES.join(", ")
            )));
        }
    }
    for ((name, shape), dst) in PARAMETER_NAMES.iter().zip(shapes).zip(model.parameters_mut()) {
        let tensor = file.tensor(name).map_err(|_| Error::Weights(format!("missing tensor `{name}`")))?;
        if tensor.dtype() != Dtype::F32 {
            return Err(Error::Weights(format!("tensor `{name}` has dtype {:?}, expected F32", tensor.dtype())));
        }
        if tensor.shape() != shape.as_slice() {
            return Err(Error::Weights(format!(
                "tensor `{name}` has shape {}, expected {}",
                fmt_shape(tensor.shape()),
                fmt_shape(&shape)
            )));
        }
        for (d, chunk) in dst.iter_mut().zip(tensor.data().chunks_exact(4)) {
            *d = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        if let Some(i) = dst.iter().position(|v| !v.is_finite()) {
            return Err(Error::Weights(format!("tensor `{name}` holds a non-finite value ({}) at flat index {i}", dst[i])));
        }
    }
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| Error::Weights(e.to_string()))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    model.input_mean = read_constant(&metadata, "input_mean", MNIST_MEAN)?;
    model.input_std = read_constant(&metadata, "input_std", MNIST_STD)?;
    if model.input_std <= 0.0 {
        return Err(Error::Weights(format!("metadata input_std must be positive, got {}", model.input_std)));
    }
    Ok(model)
}

fn read_constant(metadata: &HashMap<String, String>, key: &str, default: f32) -> Result<f32> {
    match metadata.get(key) {
        None => Ok(default),
        Some(text) => match text.trim().parse::<f32>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(Error::Weights(format!("metadata {key} must be a finite number, got {text:?}"))),
        },
    }
}

/// Replaces `model`'s weights and normalisation with those of a safetensors file. On any error
/// the model is left exactly as it was.
///
/// # Errors
/// As [`from_safetensors`].
pub fn load_into(model: &mut LeNet5, bytes: &[u8]) -> Result<()> {
    *model = from_safetensors(bytes)?;
    Ok(())
}

/// Writes the model to the file at `path` (see [`to_safetensors`]).
///
/// # Errors
/// [`Error::Io`] naming the path when it cannot be written.
#[cfg(not(target_arch = "wasm32"))]
pub fn save(model: &LeNet5, path: &std::path::Path) -> Result<()> {
    let bytes = to_safetensors(model)?;
    std::fs::write(path, bytes).map_err(|source| Error::Io { path: path.display().to_string(), source })
}

/// Reads a model from the safetensors file at `path` (see [`from_safetensors`]).
///
/// # Errors
/// [`Error::Io`] naming the path when it cannot be read; otherwise as [`from_safetensors`].
#[cfg(not(target_arch = "wasm32"))]
pub fn load(path: &std::path::Path) -> Result<LeNet5> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    from_safetensors(&bytes).map_err(|e| match e {
        Error::Weights(m) => Error::Weights(format!("{}: {m}", path.display())),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_bit_for_bit() {
        let mut model = LeNet5::new(3);
        model.input_mean = 0.123_456_79;
        let bytes = to_safetensors(&model).unwrap();
        let back = from_safetensors(&bytes).unwrap();
        assert_eq!(back, model);
        // The header's metadata is a JSON object whose key order may vary; the tensor data,
        // which ends the file, must be the same bytes.
        let again = to_safetensors(&back).unwrap();
        assert!(again.len() == bytes.len() && again.ends_with(&bytes[bytes.len() - 61_706 * 4..]));
    }

    #[test]
    fn rejects_truncated_and_garbage_files_leaving_model_unchanged() {
        let mut model = LeNet5::new(1);
        let before = model.clone();
        let bytes = to_safetensors(&LeNet5::new(2)).unwrap();
        for bad in [&bytes[..bytes.len() - 1], &bytes[..5], b"not a weights file at all".as_slice(), &[]] {
            let err = load_into(&mut model, bad).unwrap_err().to_string();
            assert!(err.starts_with("weights file"), "{err}");
            assert_eq!(model, before);
        }
    }

    fn file_with(tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)>) -> Vec<u8> {
        let views: Vec<(&str, TensorView)> =
            tensors.iter().map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap())).collect();
        safetensors::serialize(views, None).unwrap()
    }

    fn all_tensors() -> Vec<(&'static str, Dtype, Vec<usize>, Vec<u8>)> {
        let model = LeNet5::new(0);
        PARAMETER_NAMES
            .iter()
            .zip(model.parameter_shapes())
            .zip(model.parameters())
            .map(|((n, s), t)| (*n, Dtype::F32, s, t.iter().flat_map(|v| v.to_le_bytes()).collect()))
            .collect()
    }

    #[test]
    fn names_missing_tensor_wrong_shape_and_wrong_dtype() {
        let mut missing = all_tensors();
        missing.retain(|t| t.0 != "fc2.bias");
        let err = from_safetensors(&file_with(missing)).unwrap_err().to_string();
        assert!(err.contains("missing tensor `fc2.bias`"), "{err}");

        let mut shape = all_tensors();
        shape[4].2 = vec![400, 120];
        let err = from_safetensors(&file_with(shape)).unwrap_err().to_string();
        assert!(err.contains("`fc1.weight` has shape (400, 120), expected (120, 400)"), "{err}");

        let mut dtype = all_tensors();
        dtype[1].1 = Dtype::I32;
        let err = from_safetensors(&file_with(dtype)).unwrap_err().to_string();
        assert!(err.contains("`conv1.bias` has dtype I32, expected F32"), "{err}");
    }

    #[test]
    fn file_without_metadata_gets_mnist_constants() {
        let model = from_safetensors(&file_with(all_tensors())).unwrap();
        assert_eq!((model.input_mean, model.input_std), (MNIST_MEAN, MNIST_STD));
    }
}
