//! Saving and loading a [`LeNet5`] in the safetensors format (Hugging Face's: an 8-byte
//! little-endian header length, a JSON header, then raw little-endian tensors).
//!
//! Tensors are named as PyTorch names the `state_dict` of a module with attributes `conv1`,
//! `conv2`, `fc1`, `fc2`, `fc3` (`conv1.weight`, `conv1.bias`, …), f32, in PyTorch's layouts,
//! so `safetensors.torch.load_file` followed by `load_state_dict` loads a file written here into
//! an `nn.Module` of the same shape, and a file written that way loads here. The normalisation
//! constants travel in the header's metadata as `input_mean` and `input_std`.
//!
//! A file is untrusted: the header's length is checked against [`MAX_HEADER_LEN`] and against
//! the bytes present, and the tensors' claimed sizes against the data present, before anything
//! is allocated for them; tensor data is only ever read in place.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, Metadata, SafeTensors, TensorView};

use crate::error::{fmt_shape, Error, Result};
use crate::model::{LeNet5, MNIST_MEAN, MNIST_STD, PARAMETER_NAMES};

/// The longest JSON header accepted, in bytes. A LeNet-5 file's header is about 1 KB; the
/// bound leaves room for any metadata a tool adds while capping what parsing a lying header can
/// allocate (the safetensors crate alone accepts 100 MB).
pub const MAX_HEADER_LEN: usize = 1 << 20;

/// Length in bytes of the little-endian `u64` that starts a safetensors file: the header's length.
const HEADER_LEN_BYTES: usize = 8;

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
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Weights(e.to_string()))?;
    Ok(with_sorted_header(bytes))
}

/// The same file with its JSON header's keys sorted. The serializer writes the metadata from
/// a hash map, in an order that changes from run to run; sorted, the same model always gives
/// the same bytes, so files can be compared with `cmp` or a checksum.
fn with_sorted_header(bytes: Vec<u8>) -> Vec<u8> {
    let Some(len) = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize) else {
        return bytes;
    };
    let Some(header) = bytes.get(8..8 + len).and_then(|h| serde_json::from_slice::<serde_json::Value>(h).ok()) else {
        return bytes;
    };
    // serde_json's maps are ordered by key (BTreeMap), nested ones included.
    let mut json = serde_json::to_vec(&header).expect("a parsed value serializes");
    // The data that follows starts 8-byte aligned, as the format recommends.
    while (8 + json.len()) % 8 != 0 {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + bytes.len() - 8 - len);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[8 + len..]);
    out
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
    let header = read_header(bytes)?;
    let file =
        SafeTensors::deserialize(bytes).map_err(|e| Error::Weights(format!("not a valid safetensors file: {e}")))?;
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
            return Err(Error::Weights(format!(
                "tensor `{name}` holds a non-finite value ({}) at flat index {i}",
                dst[i]
            )));
        }
    }
    let metadata = header.metadata().clone().unwrap_or_default();
    model.input_mean = read_constant(&metadata, "input_mean", MNIST_MEAN)?;
    model.input_std = read_constant(&metadata, "input_std", MNIST_STD)?;
    if model.input_std <= 0.0 {
        return Err(Error::Weights(format!("metadata input_std must be positive, got {}", model.input_std)));
    }
    Ok(model)
}

/// Parses the header of a safetensors file after checking every size it claims against the
/// bytes present: its own length, and the total length of the tensors' data.
///
/// The safetensors crate checks these too, but adds the claimed data length to the header
/// length unchecked (`tensor.rs`, `read_metadata`): tensors whose offsets sum to nearly
/// `usize::MAX` overflow there, a panic wherever overflow checks are on (debug builds, tests,
/// fuzzing) and, on wasm32, within reach of a 4 GB claim. Compared here first, the claim is an
/// error with both sizes in its message.
fn read_header(bytes: &[u8]) -> Result<Metadata> {
    let Some((length, rest)) = bytes.split_first_chunk::<HEADER_LEN_BYTES>() else {
        return Err(Error::Weights(format!(
            "not a valid safetensors file: {} bytes, too short for the {HEADER_LEN_BYTES}-byte header length",
            bytes.len()
        )));
    };
    let claimed = u64::from_le_bytes(*length);
    if claimed > MAX_HEADER_LEN as u64 {
        return Err(Error::Weights(format!(
            "not a valid safetensors file: its first 8 bytes claim a {claimed}-byte header, more than the {MAX_HEADER_LEN} accepted"
        )));
    }
    // Cannot truncate: claimed <= MAX_HEADER_LEN, which fits even a 32-bit usize.
    let header_len = claimed as usize;
    if header_len > rest.len() {
        return Err(Error::Weights(format!(
            "not a valid safetensors file, or a truncated one: the header claims {header_len} bytes, the file holds {} after the header length",
            rest.len()
        )));
    }
    let (text, data) = rest.split_at(header_len);
    let text = std::str::from_utf8(text)
        .map_err(|e| Error::Weights(format!("not a valid safetensors file: the header is not UTF-8: {e}")))?;
    // Deserializing checks that the offsets are contiguous and match each shape, with checked
    // arithmetic; only the tensor views are left to the safetensors crate, which reads in place.
    let metadata: Metadata =
        serde_json::from_str(text).map_err(|e| Error::Weights(format!("not a valid safetensors header: {e}")))?;
    if metadata.data_len() != data.len() {
        return Err(Error::Weights(format!(
            "truncated or padded: the header's tensors claim {} bytes of data, the file holds {}",
            metadata.data_len(),
            data.len()
        )));
    }
    Ok(metadata)
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
        assert_eq!(to_safetensors(&back).unwrap(), bytes, "the same model gives the same file");
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

    /// A safetensors file: the header length, `header`, then `data`.
    #[cfg(target_pointer_width = "64")]
    fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    /// The message of the error `bytes` gives, which must be an [`Error::Weights`].
    #[cfg(target_pointer_width = "64")]
    fn weights_error(bytes: &[u8]) -> String {
        match from_safetensors(bytes) {
            Err(Error::Weights(message)) => message,
            other => panic!("expected Error::Weights, got {other:?}"),
        }
    }

    // The sizes below are written for a 64-bit usize; on wasm32 most fail to parse instead.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn huge_claims_are_rejected_before_allocating() {
        // 10¹² f32 values (4 TB) claimed by a 100-byte file.
        let header = r#"{"conv1.weight":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,4000000000000]}}"#;
        let file = raw_file(header, &[0; 4]);
        assert!(file.len() < 110, "{}", file.len());
        let message = weights_error(&file);
        assert_eq!(
            message,
            "truncated or padded: the header's tensors claim 4000000000000 bytes of data, the file holds 4"
        );

        // A header length far beyond the file, and beyond any header accepted.
        let mut file = raw_file("{}", &[]);
        file[..8].copy_from_slice(&200u64.to_le_bytes());
        assert_eq!(
            weights_error(&file),
            "not a valid safetensors file, or a truncated one: the header claims 200 bytes, the file holds 2 after the header length"
        );
        file[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        let message = weights_error(&file);
        assert!(
            message.contains("claim a 18446744073709551615-byte header, more than the 1048576 accepted"),
            "{message}"
        );

        // A shape whose element count overflows usize.
        let header = r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}}"#;
        let message = weights_error(&raw_file(header, &[]));
        assert!(message.contains("not a valid safetensors header") && message.contains("overflow"), "{message}");
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn offsets_summing_to_nearly_usize_max_are_an_error_not_an_overflow() {
        // Eight u8 tensors of 2⁶¹ − 1 bytes each: their offsets end at 2⁶⁴ − 8, which the
        // safetensors crate alone adds to the header length without checking.
        let size: u64 = (1 << 61) - 1;
        let tensors: Vec<String> = (0..8u64)
            .map(|i| {
                format!(r#""t{i}":{{"dtype":"U8","shape":[{size}],"data_offsets":[{},{}]}}"#, i * size, (i + 1) * size)
            })
            .collect();
        let header = format!("{{{}}}", tensors.join(","));
        let message = weights_error(&raw_file(&header, &[]));
        assert!(
            message.starts_with("truncated or padded: the header's tensors claim 18446744073709551608 bytes"),
            "{message}"
        );
    }

    #[test]
    fn file_without_metadata_gets_mnist_constants() {
        let model = from_safetensors(&file_with(all_tensors())).unwrap();
        assert_eq!((model.input_mean, model.input_std), (MNIST_MEAN, MNIST_STD));
    }
}

/// Metadata key under which a session checkpoint keeps its state (JSON).
const CHECKPOINT_KEY: &str = "lenet.checkpoint";

/// A session checkpoint as a safetensors file: the ten weight tensors under their PyTorch
/// names, the optimizer's buffers as `optimizer.first.<name>` and `optimizer.second.<name>`
/// (absent when empty), and `state` (the session's JSON) in the metadata under
/// `lenet.checkpoint`. Used by [`crate::session::Session::checkpoint`].
///
/// # Errors
/// [`Error::Weights`] if the serializer fails or a buffer's length does not match its tensor.
pub fn checkpoint_to_bytes(model: &LeNet5, state: &str, first: &[Vec<f32>], second: &[Vec<f32>]) -> Result<Vec<u8>> {
    let shapes = model.parameter_shapes();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let to_bytes = |t: &[f32]| t.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
    for ((name, shape), t) in PARAMETER_NAMES.iter().zip(&shapes).zip(model.parameters()) {
        tensors.push((name.to_string(), shape.clone(), to_bytes(t)));
    }
    for (prefix, buffers) in [("optimizer.first", first), ("optimizer.second", second)] {
        // An empty buffer stands for zeros (the optimizer allocates it on first use).
        if buffers.iter().all(Vec::is_empty) {
            continue;
        }
        for ((name, shape), t) in PARAMETER_NAMES.iter().zip(&shapes).zip(buffers) {
            if t.len() != shape.iter().product::<usize>() {
                return Err(Error::Weights(format!(
                    "{prefix}.{name}: {} values for shape {}",
                    t.len(),
                    fmt_shape(shape)
                )));
            }
            tensors.push((format!("{prefix}.{name}"), shape.clone(), to_bytes(t)));
        }
    }
    let mut views = Vec::with_capacity(tensors.len());
    for (name, shape, data) in &tensors {
        let view =
            TensorView::new(Dtype::F32, shape.clone(), data).map_err(|e| Error::Weights(format!("{name}: {e}")))?;
        views.push((name.as_str(), view));
    }
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("architecture".to_string(), "LeNet-5".to_string()),
        ("input_mean".to_string(), model.input_mean.to_string()),
        ("input_std".to_string(), model.input_std.to_string()),
        (CHECKPOINT_KEY.to_string(), state.to_string()),
    ]);
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Weights(e.to_string()))?;
    Ok(with_sorted_header(bytes))
}

/// Reads what [`checkpoint_to_bytes`] wrote: the model, the state JSON and the optimizer's
/// buffers (empty vectors where absent).
///
/// # Errors
/// [`Error::Weights`] naming the problem, as for weights files; a weights file without a
/// session's state is named as such ("a weights file, not a checkpoint").
#[allow(clippy::type_complexity)]
pub fn checkpoint_from_bytes(bytes: &[u8]) -> Result<(LeNet5, String, Vec<Vec<f32>>, Vec<Vec<f32>>)> {
    let header = read_header(bytes).map_err(|e| Error::Weights(format!("checkpoint: {e}")))?;
    let state = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CHECKPOINT_KEY))
        .cloned()
        .ok_or_else(|| Error::Weights("a weights file, not a checkpoint: it holds no training state".into()))?;
    let file = SafeTensors::deserialize(bytes).map_err(|e| Error::Weights(format!("checkpoint: {e}")))?;
    let read = |name: &str, shape: &[usize]| -> Result<Option<Vec<f32>>> {
        let Ok(tensor) = file.tensor(name) else { return Ok(None) };
        if tensor.dtype() != Dtype::F32 || tensor.shape() != shape {
            return Err(Error::Weights(format!("checkpoint: tensor `{name}` is not f32 {}", fmt_shape(shape))));
        }
        let values: Vec<f32> =
            tensor.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(Error::Weights(format!("checkpoint: tensor `{name}` holds a non-finite value")));
        }
        Ok(Some(values))
    };
    let mut model = LeNet5::new(0);
    let shapes = model.parameter_shapes();
    for ((name, shape), dst) in PARAMETER_NAMES.iter().zip(&shapes).zip(model.parameters_mut()) {
        let values =
            read(name, shape)?.ok_or_else(|| Error::Weights(format!("checkpoint: missing tensor `{name}`")))?;
        dst.copy_from_slice(&values);
    }
    let metadata = header.metadata().clone().unwrap_or_default();
    model.input_mean = read_constant(&metadata, "input_mean", MNIST_MEAN)?;
    model.input_std = read_constant(&metadata, "input_std", MNIST_STD)?;
    let mut buffers = [Vec::new(), Vec::new()];
    for (prefix, out) in ["optimizer.first", "optimizer.second"].iter().zip(buffers.iter_mut()) {
        let mut all = Vec::new();
        for (name, shape) in PARAMETER_NAMES.iter().zip(&shapes) {
            all.push(read(&format!("{prefix}.{name}"), shape)?);
        }
        if all.iter().all(Option::is_some) {
            *out = all.into_iter().map(Option::unwrap).collect();
        } else if all.iter().any(Option::is_some) {
            return Err(Error::Weights(format!("checkpoint: some `{prefix}` tensors are missing")));
        }
    }
    let [first, second] = buffers;
    Ok((model, state, first, second))
}
