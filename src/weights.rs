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

use miniserde::json::{self, Number, Value};

use crate::error::{fmt_shape, Error, Num, Result};
use crate::model::{LeNet5, MNIST_MEAN, MNIST_STD, PARAMETER_NAMES};
use crate::train::MAX_WEIGHT;

/// The longest JSON header accepted, in bytes. A LeNet-5 file's header is about 1 KB; the
/// bound leaves room for any metadata a tool adds while capping what parsing a lying header can
/// allocate (the safetensors crate alone accepts 100 MB).
pub const MAX_HEADER_LEN: usize = 1 << 20;

/// Length in bytes of the little-endian `u64` that starts a safetensors file: the header's length.
const HEADER_LEN_BYTES: usize = 8;

/// LeNet-5's trainable parameters (61,706), counted from the layer sizes so that the bound
/// below is a constant: conv1 6·1·5·5 + 6, conv2 16·6·5·5 + 16, fc1 120·400 + 120,
/// fc2 84·120 + 84, fc3 10·84 + 10.
const NUM_PARAMETERS: usize = (6 * 25 + 6) + (16 * 6 * 25 + 16) + (120 * 400 + 120) + (84 * 120 + 84) + (10 * 84 + 10);

/// The largest a valid LeNet-5 weights file can be, in bytes: 1,295,408.
///
/// A safetensors file is the 8-byte header length, the JSON header, then the tensors' data, and
/// nothing else: the header's offsets must cover the data exactly. Here the header (tensor
/// entries and all metadata) is at most [`MAX_HEADER_LEN`] = 1,048,576 bytes, and the data is
/// exactly the 61,706 f32 parameters, 246,824 bytes, so a file can hold at most
/// 8 + 1,048,576 + 246,824 = 1,295,408 bytes. [`from_safetensors`] refuses a larger input
/// before parsing anything; a caller can compare a file's size with it before reading the file.
pub const MAX_WEIGHTS_FILE_BYTES: usize = HEADER_LEN_BYTES + MAX_HEADER_LEN + NUM_PARAMETERS * 4;

/// The largest a valid checkpoint ([`checkpoint_to_bytes`]) can be, in bytes: 1,789,056,
/// as for [`MAX_WEIGHTS_FILE_BYTES`] with three sets of parameters (the weights and the
/// optimizer's two buffers of moments).
pub const MAX_CHECKPOINT_FILE_BYTES: usize = HEADER_LEN_BYTES + MAX_HEADER_LEN + 3 * NUM_PARAMETERS * 4;

/// How many leading bytes [`check_file`] looks at to recognise what a file is.
pub(crate) const SNIFF_BYTES: usize = 512;

/// The model as a safetensors file, in bytes: the ten f32 tensors and the metadata
/// `architecture = LeNet-5`, `input_mean`, `input_std`.
///
/// # Errors
/// None in practice: a model's tensors always serialise; the `Result` keeps the signature of the
/// other writers.
pub fn to_safetensors(model: &LeNet5) -> Result<Vec<u8>> {
    let tensors: Vec<(String, Vec<usize>, &[f32])> = PARAMETER_NAMES
        .iter()
        .zip(model.parameter_shapes())
        .zip(model.parameters())
        .map(|((name, shape), t)| (name.to_string(), shape, t))
        .collect();
    Ok(write_f32_file(&tensors, &normalisation_metadata(model)))
}

/// The metadata every file written here carries: the format tag PyTorch's loader looks for, the
/// architecture, and the normalisation constants.
fn normalisation_metadata(model: &LeNet5) -> Vec<(String, String)> {
    vec![
        ("format".to_string(), "pt".to_string()),
        ("architecture".to_string(), "LeNet-5".to_string()),
        // The shortest decimal that parses back to the same bits.
        ("input_mean".to_string(), Num(model.input_mean).to_string()),
        ("input_std".to_string(), Num(model.input_std).to_string()),
    ]
}

/// `items` ordered by `key`: an insertion sort, as the lists here hold a few dozen entries.
fn sorted_by<T>(items: &[T], key: impl Fn(&T) -> &str) -> Vec<&T> {
    let mut out: Vec<&T> = Vec::with_capacity(items.len());
    for item in items {
        let at = out.iter().position(|o| key(o) > key(item)).unwrap_or(out.len());
        out.insert(at, item);
    }
    out
}

/// A safetensors file of f32 tensors `(name, shape, values)`. The header's keys are sorted, at
/// every level, and the data follows in the same order, so the same tensors always give the
/// same bytes (files can be compared with `cmp` or a checksum); the header is padded with spaces
/// so that the data starts 8-byte aligned, as the format recommends.
fn write_f32_file(tensors: &[(String, Vec<usize>, &[f32])], metadata: &[(String, String)]) -> Vec<u8> {
    let quoted = |text: &str| json::to_string(text);
    let mut header = String::from("{");
    if !metadata.is_empty() {
        let entries: Vec<String> =
            sorted_by(metadata, |m| &m.0).iter().map(|(k, v)| format!("{}:{}", quoted(k), quoted(v))).collect();
        header += &format!("\"__metadata__\":{{{}}},", entries.join(","));
    }
    let tensors = sorted_by(tensors, |t| &t.0);
    let mut offset = 0;
    for (name, shape, values) in &tensors {
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        let end = offset + values.len() * 4;
        header += &format!(
            "{}:{{\"data_offsets\":[{offset},{end}],\"dtype\":\"F32\",\"shape\":[{}]}},",
            quoted(name),
            dims.join(",")
        );
        offset = end;
    }
    header.pop();
    header.push('}');
    let mut text = header.into_bytes();
    while (HEADER_LEN_BYTES + text.len()) % 8 != 0 {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(HEADER_LEN_BYTES + text.len() + offset);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    for (_, _, values) in tensors {
        out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    }
    out
}

/// A model read from the bytes of a safetensors file.
///
/// Every one of the ten tensors must be present, f32, and of its exact shape; no other tensor
/// may be present; every value must be finite and at most [`MAX_WEIGHT`] in magnitude. `input_mean` and `input_std` are read from the
/// metadata; a file without them (as `safetensors.torch.save_file` writes by default) gets
/// MNIST's constants.
///
/// # Errors
/// [`Error::Weights`] naming the problem: not a safetensors file, a truncated file, a missing
/// or unexpected tensor, a wrong dtype or shape, a non-finite or too large value, bad metadata.
pub fn from_safetensors(bytes: &[u8]) -> Result<LeNet5> {
    check_file(bytes, bytes.len())?;
    let file = read_file(bytes)?;
    let mut model = LeNet5::new(0);
    let shapes = model.parameter_shapes();
    for (name, _) in &file.tensors {
        if !PARAMETER_NAMES.contains(&name.as_str()) {
            return Err(Error::Weights(format!(
                "unexpected tensor `{name}`: a LeNet-5 file holds only {}",
                PARAMETER_NAMES.join(", ")
            )));
        }
    }
    for ((name, shape), dst) in PARAMETER_NAMES.iter().zip(shapes).zip(model.parameters_mut()) {
        let tensor = file.tensor(name).ok_or_else(|| Error::Weights(format!("missing tensor `{name}`")))?;
        if tensor.dtype != "F32" {
            return Err(Error::Weights(format!("tensor `{name}` has dtype {}, expected F32", tensor.dtype)));
        }
        if tensor.shape != shape {
            return Err(Error::Weights(format!(
                "tensor `{name}` has shape {}, expected {}",
                fmt_shape(&tensor.shape),
                fmt_shape(&shape)
            )));
        }
        for (d, chunk) in dst.iter_mut().zip(tensor.data.chunks_exact(4)) {
            *d = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        if let Some(i) = dst.iter().position(|v| !v.is_finite()) {
            return Err(Error::Weights(format!(
                "tensor `{name}` holds a non-finite value ({}) at flat index {i}",
                Num(dst[i])
            )));
        }
        check_weight_range(name, dst)?;
    }
    (model.input_mean, model.input_std) = read_normalisation(&file, "")?;
    Ok(model)
}

/// Training stops short of weights beyond [`MAX_WEIGHT`] (they overflow the logits, and no
/// learning rate brings them back), so a file holding one is refused rather than loaded to
/// diverge at its first step.
fn check_weight_range(name: &str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| v.abs() > MAX_WEIGHT) {
        None => Ok(()),
        Some(i) => Err(Error::Weights(format!(
            "tensor `{name}` holds {} at flat index {i}, larger in magnitude than {}, the most training allows \
             (trained LeNet-5 weights stay below 1): the network it describes has diverged",
            Num(values[i]),
            Num(MAX_WEIGHT)
        ))),
    }
}

/// Checks what can be told from a file's first bytes (`start`, at least its first
/// [`SNIFF_BYTES`] when it has that many) and its length (`len`) alone: that it is not a Git LFS
/// pointer or an HTML page, the two files most often found where weights were expected, and
/// that it is no larger than [`MAX_WEIGHTS_FILE_BYTES`]. Lets a caller holding the bytes
/// elsewhere (a JavaScript buffer) refuse a file before copying it.
///
/// A valid file cannot be mistaken for either kind: its header length is below 2²⁰, so bytes
/// 3 to 7 are zero, while a pointer or a page starts with printable text.
pub(crate) fn check_file(start: &[u8], len: usize) -> Result<()> {
    let start = &start[..start.len().min(SNIFF_BYTES)];
    if start.starts_with(b"version https://git-lfs.github.com/spec/") {
        return Err(Error::Weights(
            "the file is a Git LFS pointer, not the weights: run `git lfs pull` in the repository it came from to fetch them"
                .into(),
        ));
    }
    if looks_like_html(start) {
        return Err(Error::Weights(
            "the file is an HTML page, not a weights file: check the URL (a server answers a missing file with its index page) or pick the .safetensors file"
                .into(),
        ));
    }
    if len > MAX_WEIGHTS_FILE_BYTES {
        return Err(Error::Weights(format!(
            "the file is {len} bytes, larger than any LeNet-5 weights file ({MAX_WEIGHTS_FILE_BYTES} bytes at most: \
             a header of up to {MAX_HEADER_LEN} bytes and 61,706 f32 parameters)"
        )));
    }
    Ok(())
}

/// Whether `start` begins, after an optional UTF-8 byte-order mark and whitespace, with the
/// markup an HTML page starts with (ASCII case-insensitive).
fn looks_like_html(start: &[u8]) -> bool {
    let text = start.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(start);
    let text = &text[text.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(text.len())..];
    if text.starts_with(b"<!--") {
        return true;
    }
    ["<!doctype html", "<html", "<head", "<body", "<meta", "<title", "<script"].iter().any(|tag| {
        text.len() >= tag.len()
            && text[..tag.len()].eq_ignore_ascii_case(tag.as_bytes())
            // A whole tag name: `<header` is not `<head`.
            && text.get(tag.len()).is_none_or(|&b| b == b'>' || b == b'/' || b.is_ascii_whitespace())
    })
}

/// One tensor of a safetensors file: its dtype as the header names it (`F32`, `I32`, …), its
/// shape, and its bytes, read in place.
struct TensorEntry<'a> {
    dtype: String,
    shape: Vec<usize>,
    data: &'a [u8],
}

/// A parsed safetensors file: its tensors by name, and its metadata (strings to strings).
struct TensorFile<'a> {
    tensors: Vec<(String, TensorEntry<'a>)>,
    metadata: Vec<(String, String)>,
}

impl<'a> TensorFile<'a> {
    fn tensor(&self, name: &str) -> Option<&TensorEntry<'a>> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// The most tensors a header may list: a checkpoint holds 30 (the ten parameters and two
/// optimizer buffers of each), and the overlap check below compares every pair.
const MAX_TENSORS: usize = 64;

/// Bytes per element of the safetensors dtypes.
fn dtype_size(dtype: &str) -> Option<usize> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" => 8,
        _ => return None,
    })
}

/// Parses a safetensors file, checking every size it claims against the bytes present before
/// anything is allocated for it: the header's own length, the total length the tensors claim,
/// each tensor's byte count against its shape and dtype (checked arithmetic: a shape whose
/// element count overflows is an error), and that the tensors' data covers the rest of the file
/// exactly, contiguously, without overlap.
fn read_file(bytes: &[u8]) -> Result<TensorFile<'_>> {
    let Some((length, rest)) = bytes.split_first_chunk::<HEADER_LEN_BYTES>() else {
        return Err(Error::Weights(format!(
            "not a valid safetensors file: {} bytes, too short for the {HEADER_LEN_BYTES}-byte header length",
            bytes.len()
        )));
    };
    let claimed = u64::from_le_bytes(*length);
    if claimed > MAX_HEADER_LEN as u64 {
        return Err(Error::Weights(format!(
            "not a valid safetensors file: its first 8 bytes claim a {claimed}-byte header, more than the {MAX_HEADER_LEN} accepted (a safetensors file begins with its header's length: this looks like another kind of file)"
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
    let bad = |why: String| Error::Weights(format!("not a valid safetensors header: {why}"));
    let header = match json::from_str::<Value>(text) {
        Ok(Value::Object(header)) => header,
        Ok(other) => return Err(bad(format!("it is {}, not an object", crate::json::kind(&other)))),
        Err(_) => return Err(bad("it is not JSON".into())),
    };
    let listed = header.keys().filter(|k| *k != "__metadata__").count();
    if listed > MAX_TENSORS {
        return Err(bad(format!("it lists {listed} tensors, more than the {MAX_TENSORS} a LeNet-5 file can hold")));
    }
    let mut metadata = Vec::new();
    let mut entries = Vec::new();
    for (name, value) in &header {
        if name == "__metadata__" {
            metadata = read_metadata(value)?;
            continue;
        }
        let Value::Object(info) = value else {
            return Err(bad(format!("tensor `{name}` is {}, not an object", crate::json::kind(value))));
        };
        let integer = |v: &Value| match v {
            Value::Number(Number::U64(n)) => Some(*n),
            _ => None,
        };
        let dtype = match info.get("dtype") {
            Some(Value::String(dtype)) if dtype_size(dtype).is_some() => dtype.clone(),
            other => {
                return Err(bad(format!(
                    "tensor `{name}` has dtype {}, not one of BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64",
                    other.map_or_else(|| "none".to_string(), crate::json::shown)
                )))
            }
        };
        let shape: Option<Vec<u64>> = match info.get("shape") {
            Some(Value::Array(dims)) => dims.iter().map(integer).collect(),
            _ => None,
        };
        let Some(shape) = shape else {
            return Err(bad(format!("tensor `{name}` has no shape of whole numbers")));
        };
        // Dimensions beyond usize (on wasm32, 2³²) cannot be a tensor here, even an empty one.
        let Ok(shape_usize) = shape.iter().map(|&d| usize::try_from(d)).collect::<std::result::Result<Vec<usize>, _>>()
        else {
            return Err(bad(format!("tensor `{name}` has a dimension too large for this machine")));
        };
        let offsets: Option<Vec<u64>> = match info.get("data_offsets") {
            Some(Value::Array(offsets)) if offsets.len() == 2 => offsets.iter().map(integer).collect(),
            _ => None,
        };
        let Some(&[begin, end]) = offsets.as_deref() else {
            return Err(bad(format!("tensor `{name}` has no data_offsets [begin, end]")));
        };
        if begin > end {
            return Err(bad(format!("tensor `{name}` has data_offsets [{begin}, {end}], which end before they begin")));
        }
        let size = dtype_size(&dtype).expect("checked above") as u64;
        let Some(bytes) = shape.iter().try_fold(size, |n, &d| n.checked_mul(d)) else {
            return Err(bad(format!("tensor `{name}`: its shape's byte count overflows")));
        };
        if bytes != end - begin {
            return Err(bad(format!(
                "tensor `{name}` of shape {} and dtype {dtype} takes {bytes} bytes, but its data_offsets span {}",
                fmt_shape(&shape_usize),
                end - begin
            )));
        }
        entries.push((name.clone(), dtype, shape_usize, begin, end));
    }
    let claimed = entries.iter().map(|e| e.4).max().unwrap_or(0);
    if claimed != data.len() as u64 {
        return Err(Error::Weights(format!(
            "truncated or padded: the header's tensors claim {claimed} bytes of data, the file holds {}",
            data.len()
        )));
    }
    // Within [0, data.len()], without overlaps and with lengths summing to data.len(), the
    // tensors cover the data exactly.
    for (i, a) in entries.iter().enumerate() {
        if let Some(b) = entries[i + 1..].iter().find(|b| a.3.max(b.3) < a.4.min(b.4)) {
            return Err(bad(format!("tensors `{}` and `{}` overlap in the data", a.0, b.0)));
        }
    }
    let total: u64 = entries.iter().map(|e| e.4 - e.3).sum();
    if total != claimed {
        return Err(bad(format!("the tensors leave {} of the {claimed} bytes of data unused", claimed - total)));
    }
    // Every offset is now at most data.len(), so the conversions below cannot truncate.
    let tensors = entries
        .into_iter()
        .map(|(name, dtype, shape, begin, end)| {
            (name, TensorEntry { dtype, shape, data: &data[begin as usize..end as usize] })
        })
        .collect();
    Ok(TensorFile { tensors, metadata })
}

/// The `__metadata__` of a header, which the format makes an object mapping strings to strings
/// (`null` reads as none). Tools that write numbers or nested objects there make files that no
/// safetensors reader loads; the message names the key and what it holds.
fn read_metadata(value: &Value) -> Result<Vec<(String, String)>> {
    let map = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Object(map) => map,
        other => {
            return Err(Error::Weights(format!(
                "`__metadata__` is {}, but safetensors metadata is an object mapping strings to strings",
                crate::json::kind(other)
            )))
        }
    };
    map.iter()
        .map(|(key, value)| match value {
            Value::String(text) => Ok((key.clone(), text.clone())),
            other => Err(Error::Weights(format!(
                "metadata `{key}` is {} ({}), but safetensors metadata maps strings to strings: write it as a string",
                crate::json::kind(other),
                crate::json::shown(other)
            ))),
        })
        .collect()
}

/// The input normalisation `(input_mean, input_std)` of a file's metadata, MNIST's where it
/// names none; `context` starts the message of an `input_std` that is not positive.
fn read_normalisation(file: &TensorFile, context: &str) -> Result<(f32, f32)> {
    let mean = read_constant(file, "input_mean", MNIST_MEAN)?;
    let std = read_constant(file, "input_std", MNIST_STD)?;
    crate::model::check_normalisation(mean, std).map_err(|e| Error::Weights(format!("{context}metadata {e}")))?;
    Ok((mean, std))
}

fn read_constant(file: &TensorFile, key: &str, default: f32) -> Result<f32> {
    match file.metadata(key) {
        None => Ok(default),
        Some(text) => match crate::json::parse_f32(text.trim()) {
            Some(v) if v.is_finite() => Ok(v),
            _ => Err(Error::Weights(format!("metadata {key} must be a finite number, got `{text}`"))),
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
/// [`Error::Io`] naming the path when it cannot be read; otherwise as [`from_safetensors`],
/// with the path in the message.
#[cfg(not(target_arch = "wasm32"))]
pub fn load(path: &std::path::Path) -> Result<LeNet5> {
    from_file(path, MAX_WEIGHTS_FILE_BYTES, from_safetensors)
}

/// Reads the file at `path`, of at most `max_bytes` bytes ([`MAX_WEIGHTS_FILE_BYTES`] or
/// [`MAX_CHECKPOINT_FILE_BYTES`]), and hands its bytes to `parse` (e.g. [`from_safetensors`] or
/// [`crate::session::Session::restore`]), naming the path in any error about the contents: a
/// person may hold several weights files and checkpoints.
///
/// # Errors
/// [`Error::Io`] naming the path when it cannot be read, is not a regular file or is larger
/// than `max_bytes` (it is not read whole then); `parse`'s [`Error::Weights`],
/// [`Error::Checkpoint`] and [`Error::InvalidInput`] with the path put before their message;
/// its other errors as they are.
#[cfg(not(target_arch = "wasm32"))]
pub fn from_file<T>(path: &std::path::Path, max_bytes: usize, parse: impl FnOnce(&[u8]) -> Result<T>) -> Result<T> {
    let bytes = crate::files::read_bounded(path, max_bytes as u64)?;
    parse(&bytes).map_err(|e| match e {
        Error::Weights(m) => Error::Weights(format!("{}: {m}", path.display())),
        Error::Checkpoint(m) => Error::Checkpoint(format!("{}: {m}", path.display())),
        Error::InvalidInput(m) => Error::InvalidInput(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// Metadata key under which a session checkpoint keeps its state (JSON).
const CHECKPOINT_KEY: &str = "lenet.checkpoint";

/// A session checkpoint as a safetensors file: the ten weight tensors under their PyTorch
/// names, the optimizer's buffers as `optimizer.first.<name>` and `optimizer.second.<name>`
/// (absent when empty), and `state` (the session's JSON) in the metadata under
/// `lenet.checkpoint`. Used by [`crate::session::Session::checkpoint`].
///
/// # Errors
/// [`Error::Weights`] if a buffer's length does not match its tensor.
pub fn checkpoint_to_bytes(model: &LeNet5, state: &str, first: &[Vec<f32>], second: &[Vec<f32>]) -> Result<Vec<u8>> {
    let shapes = model.parameter_shapes();
    let parameters = model.parameters();
    let mut tensors: Vec<(String, Vec<usize>, &[f32])> = Vec::new();
    for ((name, shape), t) in PARAMETER_NAMES.iter().zip(&shapes).zip(&parameters) {
        tensors.push((name.to_string(), shape.clone(), *t));
    }
    for (prefix, buffers) in [("optimizer.first", first), ("optimizer.second", second)] {
        // An empty buffer stands for zeros (the optimizer allocates it on first use).
        if buffers.iter().all(Vec::is_empty) {
            continue;
        }
        if buffers.len() != PARAMETER_NAMES.len() {
            return Err(Error::Weights(format!(
                "{prefix}: {} buffers, one for each of the {} parameter tensors expected",
                buffers.len(),
                PARAMETER_NAMES.len()
            )));
        }
        for ((name, shape), t) in PARAMETER_NAMES.iter().zip(&shapes).zip(buffers) {
            if t.len() != shape.iter().product::<usize>() {
                return Err(Error::Weights(format!(
                    "{prefix}.{name}: {} values for shape {}",
                    t.len(),
                    fmt_shape(shape)
                )));
            }
            tensors.push((format!("{prefix}.{name}"), shape.clone(), t));
        }
    }
    let mut metadata = normalisation_metadata(model);
    metadata.push((CHECKPOINT_KEY.to_string(), state.to_string()));
    Ok(write_f32_file(&tensors, &metadata))
}

/// Reads what [`checkpoint_to_bytes`] wrote: the model, the state JSON and the optimizer's
/// buffers (empty vectors where absent).
///
/// # Errors
/// [`Error::Checkpoint`] naming the problem, as for weights files; a weights file without a
/// session's state is named as such ("a weights file, not a checkpoint").
#[allow(clippy::type_complexity)]
pub fn checkpoint_from_bytes(bytes: &[u8]) -> Result<(LeNet5, String, Vec<Vec<f32>>, Vec<Vec<f32>>)> {
    // The weights file's checks, named as the checkpoint's.
    checkpoint_parts(bytes).map_err(|e| match e {
        Error::Weights(m) => Error::Checkpoint(m),
        other => other,
    })
}

#[allow(clippy::type_complexity)]
fn checkpoint_parts(bytes: &[u8]) -> Result<(LeNet5, String, Vec<Vec<f32>>, Vec<Vec<f32>>)> {
    let file = read_file(bytes)?;
    let state = file
        .metadata(CHECKPOINT_KEY)
        .map(str::to_string)
        .ok_or_else(|| Error::Weights("a weights file, not a checkpoint: it holds no training state".into()))?;
    let read = |name: &str, shape: &[usize]| -> Result<Option<Vec<f32>>> {
        let Some(tensor) = file.tensor(name) else { return Ok(None) };
        if tensor.dtype != "F32" || tensor.shape != shape {
            return Err(Error::Weights(format!(
                "tensor `{name}` is {} {}, expected F32 {}",
                tensor.dtype,
                fmt_shape(&tensor.shape),
                fmt_shape(shape)
            )));
        }
        let values: Vec<f32> =
            tensor.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(Error::Weights(format!("tensor `{name}` holds a non-finite value")));
        }
        Ok(Some(values))
    };
    let mut model = LeNet5::new(0);
    let shapes = model.parameter_shapes();
    for ((name, shape), dst) in PARAMETER_NAMES.iter().zip(&shapes).zip(model.parameters_mut()) {
        let values =
            read(name, shape)?.ok_or_else(|| Error::Weights(format!("checkpoint: missing tensor `{name}`")))?;
        check_weight_range(name, &values)?;
        dst.copy_from_slice(&values);
    }
    (model.input_mean, model.input_std) = read_normalisation(&file, "checkpoint: ")?;
    // Only the weights and the two optimizer buffers of each: anything else is not this format.
    let known = |name: &str| {
        let base =
            name.strip_prefix("optimizer.first.").or_else(|| name.strip_prefix("optimizer.second.")).unwrap_or(name);
        PARAMETER_NAMES.contains(&base)
    };
    if let Some((name, _)) = file.tensors.iter().find(|(name, _)| !known(name)) {
        return Err(Error::Weights(format!("checkpoint: unexpected tensor `{name}`")));
    }
    let mut buffers = [Vec::new(), Vec::new()];
    for (prefix, out) in ["optimizer.first", "optimizer.second"].iter().zip(buffers.iter_mut()) {
        let mut all = Vec::new();
        for (name, shape) in PARAMETER_NAMES.iter().zip(&shapes) {
            all.push(read(&format!("{prefix}.{name}"), shape)?);
        }
        if all.iter().all(Option::is_some) {
            *out = all.into_iter().map(Option::unwrap).collect();
            // Adam's second moments are averages of squares: a negative one would make its step
            // the square root of a negative number, and every step after the restore diverge.
            if *prefix == "optimizer.second" {
                for (name, values) in PARAMETER_NAMES.iter().zip(out.iter()) {
                    if let Some(i) = values.iter().position(|&v| v < 0.0) {
                        return Err(Error::Weights(format!(
                            "tensor `{prefix}.{name}` holds {} at flat index {i}: Adam's second moments \
                             are averages of squares, never negative",
                            Num(values[i])
                        )));
                    }
                }
            }
        } else if all.iter().any(Option::is_some) {
            return Err(Error::Weights(format!("checkpoint: some `{prefix}` tensors are missing")));
        }
    }
    let [first, second] = buffers;
    Ok((model, state, first, second))
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::{Dtype, TensorView};

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
    fn the_size_bound_counts_the_model_s_parameters() {
        assert_eq!(NUM_PARAMETERS, LeNet5::new(0).num_parameters());
        let file = to_safetensors(&LeNet5::new(0)).unwrap();
        assert_eq!(MAX_WEIGHTS_FILE_BYTES - file.len(), MAX_HEADER_LEN - (file.len() - 8 - NUM_PARAMETERS * 4));
    }

    #[test]
    fn file_without_metadata_gets_mnist_constants() {
        let model = from_safetensors(&file_with(all_tensors())).unwrap();
        assert_eq!((model.input_mean, model.input_std), (MNIST_MEAN, MNIST_STD));
    }
}
