//! The properties the fuzz targets check, one function per target.
//!
//! The same file is compiled into the native tests (`tests/fuzz_regressions.rs`), so a saved
//! crash input replays through exactly the code that found it, with or without cargo-fuzz.
//!
//! Each function decodes from the fuzzer's bytes which entry point to call and with what (the
//! first byte picks the mode; the encodings are documented per function), calls it, and panics
//! if a property fails. It returns the entry point's result so that a regression test can check
//! that a rejected input got a clear error.

use std::io::Write;
use std::sync::OnceLock;

use flate2::write::GzEncoder;
use flate2::Compression;
use lenet::data::idx::{self, IMAGE_SIDE, MAX_IMAGES};
use lenet::data::preprocess::{self, MAX_SIDE};
use lenet::{weights, Error, LeNet5};

/// Pixels in the model's input, and values [`preprocess`]'s functions return when they find a
/// digit.
const OUTPUT_LEN: usize = IMAGE_SIDE * IMAGE_SIDE;

/// The first two bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Mode bit of [`idx`]: gzip the file(s) before parsing, so that the fuzzer's mutations reach
/// the parser behind a valid gzip stream (mutating compressed bytes directly almost always
/// breaks the stream).
pub const IDX_GZIP: u8 = 0b100;

/// Runs the IDX reader on `data`.
///
/// `data[0]` is the mode: its low two bits pick [`idx::parse_images`] (0),
/// [`idx::parse_labels`] (1) or [`idx::parse_dataset`] (2, 3); the bit [`IDX_GZIP`] gzips the
/// file(s) first. For `parse_dataset`, `data[1..3]` (little-endian `u16`, cut at the length of
/// what follows) is the length of the image file, which the label file follows. The rest is the
/// file, plain or (starting `1f 8b`) gzipped.
///
/// Checks: parsed images are `(N, 1, 28, 28)` with `N <=` [`MAX_IMAGES`] and every pixel in
/// `[0, 1]`; labels are digits; a data set has one label per image; every error is an
/// [`Error::Idx`] naming the file; a gzipped file parses exactly as the plain one.
pub fn idx(data: &[u8]) -> lenet::Result<()> {
    let Some((&mode, rest)) = data.split_first() else {
        return Ok(());
    };
    let gzip_it = mode & IDX_GZIP != 0;
    let wrap = |file: &[u8]| if gzip_it { gzip(file) } else { file.to_vec() };
    match mode & 0b11 {
        0 => {
            let result = idx::parse_images(&wrap(rest), "images");
            if let Ok(images) = &result {
                check_images(images);
            }
            check_idx_error(&result, "images");
            if gzip_it {
                same_as_plain(&result, &idx::parse_images(rest, "images"), rest);
            }
            result.map(drop)
        }
        1 => {
            let result = idx::parse_labels(&wrap(rest), "labels");
            if let Ok(labels) = &result {
                check_labels(labels);
            }
            check_idx_error(&result, "labels");
            if gzip_it {
                same_as_plain(&result, &idx::parse_labels(rest, "labels"), rest);
            }
            result.map(drop)
        }
        _ => {
            let (split, files) = match rest {
                [a, b, files @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), files),
                _ => (0, &[][..]),
            };
            let (images, labels) = files.split_at(split.min(files.len()));
            let result = idx::parse_dataset(&wrap(images), &wrap(labels));
            match &result {
                Ok(dataset) => {
                    check_images(&dataset.images);
                    check_labels(&dataset.labels);
                    assert_eq!(dataset.images.dim().0, dataset.labels.len(), "one label per image");
                }
                Err(Error::Idx { name, .. }) => {
                    assert!(name == "images" || name == "labels", "an error names its file: {name}");
                }
                Err(other) => panic!("parse_dataset gave a non-IDX error: {other:?}"),
            }
            result.map(drop)
        }
    }
}

fn check_images(images: &ndarray::Array4<f32>) {
    let (n, channels, rows, cols) = images.dim();
    assert_eq!((channels, rows, cols), (1, IMAGE_SIDE, IMAGE_SIDE), "image shape");
    assert!(n <= MAX_IMAGES, "{n} images, more than MAX_IMAGES");
    assert!(images.iter().all(|p| (0.0..=1.0).contains(p)), "a pixel outside [0, 1]");
}

fn check_labels(labels: &[u8]) {
    assert!(labels.len() <= MAX_IMAGES, "{} labels, more than MAX_IMAGES", labels.len());
    assert!(labels.iter().all(|&l| l <= 9), "a label above 9 was accepted");
}

/// Every IDX error must be an [`Error::Idx`] naming the file `name`.
fn check_idx_error<T>(result: &lenet::Result<T>, name: &str) {
    match result {
        Ok(_) => {}
        Err(Error::Idx { name: got, message }) => {
            assert_eq!(got, name, "the error names the file");
            assert!(!message.is_empty(), "an empty error message");
        }
        Err(other) => panic!("a non-IDX error: {other:?}"),
    }
}

/// The result of parsing `gzip(plain)` must be that of parsing `plain`, unless `plain` is itself
/// gzipped (then the plain parse decompresses it and the wrapped one cannot).
fn same_as_plain<T: PartialEq + std::fmt::Debug>(
    wrapped: &lenet::Result<T>,
    plain_result: &lenet::Result<T>,
    plain: &[u8],
) {
    if plain.starts_with(&GZIP_MAGIC) {
        return;
    }
    match (wrapped, plain_result) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "gzipped and plain parse differently"),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("gzipped gave {a:?}, plain gave {b:?}"),
    }
}

/// `bytes` as one gzip member.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).expect("writing to a Vec");
    encoder.finish().expect("writing to a Vec")
}

/// Mode of [`safetensors`]: `data[1..]` is the whole file.
pub const WEIGHTS_RAW: u8 = 0;
/// Mode of [`safetensors`]: `data[1..]` is the JSON header, followed by the tensor data of
/// [`reference_data`].
pub const WEIGHTS_HEADER: u8 = 1;
/// Mode of [`safetensors`]: as [`WEIGHTS_HEADER`], after first replacing one f32 of the data:
/// `data[1..5]` (little-endian `u32`, modulo the count) picks which, `data[5..9]` are its new
/// bits, and the header follows.
pub const WEIGHTS_POKE: u8 = 2;

/// The tensor data of `LeNet5::new(0)` as `to_safetensors` writes it: every parameter, tensors
/// in name order. The header's key order may vary from run to run; this part never does.
pub fn reference_data() -> &'static [u8] {
    static DATA: OnceLock<Vec<u8>> = OnceLock::new();
    DATA.get_or_init(|| {
        let model = LeNet5::new(0);
        let file = weights::to_safetensors(&model).expect("a model serializes");
        let len = 4 * model.num_parameters();
        file[file.len() - len..].to_vec()
    })
}

/// Runs the safetensors loader on a file made from `data`.
///
/// `data[0] % 3` is the mode: [`WEIGHTS_RAW`], [`WEIGHTS_HEADER`] or [`WEIGHTS_POKE`]. The
/// header modes let the fuzzer mutate a real header with real tensor data behind it, rather
/// than carry 240 KB of tensors in every input.
///
/// Checks: [`weights::load_into`] leaves the model exactly as it was on an error, which is an
/// [`Error::Weights`]; on success it gives the model [`weights::from_safetensors`] gives, with
/// finite weights, `input_std > 0` and finite logits, and that model survives a round trip through
/// [`weights::to_safetensors`] unchanged.
pub fn safetensors(data: &[u8]) -> lenet::Result<()> {
    let Some((&mode, rest)) = data.split_first() else {
        return Ok(());
    };
    let file = match mode % 3 {
        WEIGHTS_RAW => rest.to_vec(),
        WEIGHTS_HEADER => with_header(rest, reference_data()),
        _ => {
            let (index, bits, header) = match rest {
                [i0, i1, i2, i3, b0, b1, b2, b3, header @ ..] => {
                    (u32::from_le_bytes([*i0, *i1, *i2, *i3]), [*b0, *b1, *b2, *b3], header)
                }
                _ => (0, [0; 4], rest),
            };
            let mut tensors = reference_data().to_vec();
            let at = 4 * (index as usize % (tensors.len() / 4));
            tensors[at..at + 4].copy_from_slice(&bits);
            with_header(header, &tensors)
        }
    };

    static BEFORE: OnceLock<LeNet5> = OnceLock::new();
    let before = BEFORE.get_or_init(|| LeNet5::new(1));
    let mut model = before.clone();
    let result = weights::load_into(&mut model, &file);
    match &result {
        Ok(()) => {
            let loaded = weights::from_safetensors(&file).expect("load_into accepted the file");
            assert_eq!(model, loaded, "load_into and from_safetensors disagree");
            assert!(model.is_finite(), "non-finite weights were loaded");
            assert!(model.input_mean.is_finite() && model.input_std > 0.0, "bad normalisation loaded");
            // Weights within MAX_WEIGHT and pixels normalised within MAX_NORMALISED_PIXEL keep
            // every sum finite: a blank and a full image give finite logits.
            let images = ndarray::Array4::from_shape_fn((2, 1, 28, 28), |(n, ..)| n as f32);
            let logits = model.logits(images.view()).expect("a loaded model runs");
            assert!(logits.iter().all(|v| v.is_finite()), "a loaded model gives non-finite logits");
            let again = weights::to_safetensors(&model).expect("a loaded model serializes");
            let back = weights::from_safetensors(&again).expect("a saved model loads");
            assert_eq!(back, model, "a loaded model does not survive a round trip");
        }
        Err(error) => {
            assert_eq!(&model, before, "a failed load changed the model");
            assert!(matches!(error, Error::Weights(m) if !m.is_empty()), "not a weights error: {error:?}");
        }
    }
    result
}

/// A safetensors file: the length of `header`, `header`, then `tensors`.
pub fn with_header(header: &[u8], tensors: &[u8]) -> Vec<u8> {
    let mut file = Vec::with_capacity(8 + header.len() + tensors.len());
    file.extend_from_slice(&(header.len() as u64).to_le_bytes());
    file.extend_from_slice(header);
    file.extend_from_slice(tensors);
    file
}

/// Mode of [`preprocess`]: RGBA, `data[1]` the width (0 stays 0), the height as many rows as
/// the rest holds (the bytes of a partial row are dropped).
pub const CANVAS_FITTED: u8 = 0;
/// Mode of [`preprocess`]: RGBA, `data[1..3]` and `data[3..5]` the width and height
/// (little-endian `u16`, so up to 16 times [`MAX_SIDE`]), the rest the pixels, whatever their
/// number.
pub const CANVAS_CLAIMED: u8 = 1;
/// Mode of [`preprocess`]: as [`CANVAS_FITTED`], for ink: the rest is little-endian f32s.
pub const INK_FITTED: u8 = 2;
/// Mode of [`preprocess`]: as [`CANVAS_CLAIMED`], for ink: the rest is little-endian f32s.
pub const INK_CLAIMED: u8 = 3;

/// Runs the drawing preprocessing on `data`: [`preprocess::preprocess_rgba`] or
/// [`preprocess::preprocess_ink`], with a size fitted to the bytes or claimed by them, as
/// `data[0] % 4` picks ([`CANVAS_FITTED`], [`CANVAS_CLAIMED`], [`INK_FITTED`],
/// [`INK_CLAIMED`]).
///
/// Checks: the call succeeds exactly when the size is within `1..=MAX_SIDE` on both sides, the
/// input holds `width × height` pixels and (ink) no NaN; otherwise it is an
/// [`Error::InvalidInput`]. A digit found is 784 values in `[0, 1]`, not all zero.
pub fn preprocess(data: &[u8]) -> lenet::Result<Option<Vec<f32>>> {
    let Some((&mode, rest)) = data.split_first() else {
        return Ok(None);
    };
    let mode = mode % 4;
    let pixel_bytes = 4; // an RGBA pixel or an f32 of ink
    let (width, height, bytes) = if mode == CANVAS_FITTED || mode == INK_FITTED {
        let Some((&width, bytes)) = rest.split_first() else {
            return Ok(None);
        };
        let width = usize::from(width);
        let height = if width == 0 { 0 } else { bytes.len() / (pixel_bytes * width) };
        (width, height, &bytes[..pixel_bytes * width * height])
    } else {
        match rest {
            [w0, w1, h0, h1, bytes @ ..] => {
                (usize::from(u16::from_le_bytes([*w0, *w1])), usize::from(u16::from_le_bytes([*h0, *h1])), bytes)
            }
            _ => return Ok(None),
        }
    };
    // Cannot overflow: both sides are below 2¹⁶.
    let pixels = width * height;
    let size_ok = (1..=MAX_SIDE).contains(&width) && (1..=MAX_SIDE).contains(&height);
    let result = if mode == CANVAS_FITTED || mode == CANVAS_CLAIMED {
        let result = preprocess::preprocess_rgba(bytes, width, height);
        let valid = size_ok && bytes.len() == 4 * pixels;
        assert_eq!(result.is_ok(), valid, "rgba {width}×{height}, {} bytes: {result:?}", bytes.len());
        result
    } else {
        let ink: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let result = preprocess::preprocess_ink(&ink, width, height);
        let valid = size_ok && ink.len() == pixels && !ink.iter().any(|v| v.is_nan());
        assert_eq!(result.is_ok(), valid, "ink {width}×{height}, {} values: {result:?}", ink.len());
        result
    };
    match &result {
        Ok(Some(image)) => {
            assert_eq!(image.len(), OUTPUT_LEN, "output length");
            assert!(image.iter().all(|v| (0.0..=1.0).contains(v)), "an output pixel outside [0, 1]");
            assert!(image.iter().any(|&v| v > 0.0), "a digit without ink");
        }
        Ok(None) => {}
        Err(Error::InvalidInput(message)) => assert!(!message.is_empty(), "an empty error message"),
        Err(other) => panic!("not an invalid-input error: {other:?}"),
    }
    result
}

/// The name [`unipen`] gives the segment file it parses.
pub const UNIPEN_NAME: &str = "xyz/fuzz.dat";

/// Runs the UNIPEN reader ([`lenet::data::unipen::parse`]) on `data`, split at each NUL byte
/// into files: the first is the segment file, the `k`-th after it is what `.INCLUDE k` reads
/// (any other include path is missing).
///
/// Checks: on success, the report counts one file and one outcome per segment; every digit has
/// a label `0..=9` and at least one point, all finite, within [`lenet::data::strokes`]'s bounds,
/// and renders into 784 values in `[0, 1]`. Every error is an [`Error::Unipen`] naming the
/// segment file or an include, with a message.
pub fn unipen(data: &[u8]) -> lenet::Result<()> {
    use lenet::data::{strokes, unipen};
    let files: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let mut include = |path: &str| match path.parse::<usize>() {
        Ok(k) if k >= 1 && k < files.len() => Ok(files[k].to_vec()),
        _ => Err(Error::InvalidInput(format!("no file {path}"))),
    };
    let result = unipen::parse(UNIPEN_NAME, files[0], &mut include);
    match &result {
        Ok(parsed) => {
            let report = &parsed.report;
            assert_eq!(report.files, 1, "one segment file");
            assert_eq!(parsed.digits.len() + report.skipped_total(), report.segments, "one outcome per segment");
            for digit in &parsed.digits {
                assert!(digit.label <= 9, "label {}", digit.label);
                assert!(!digit.writer.is_empty(), "a digit without a writer");
                let points: usize = digit.strokes.iter().map(|s| s.points.len()).sum();
                assert!((1..=strokes::MAX_POINTS).contains(&points), "{points} points");
                assert!(digit.strokes.len() <= strokes::MAX_STROKES, "{} strokes", digit.strokes.len());
                assert!(digit.strokes.iter().flat_map(|s| &s.points).all(|p| p[0].is_finite() && p[1].is_finite()));
                let image = strokes::render_digit(&digit.strokes).expect("a digit read renders").expect("not a dot");
                assert_eq!(image.len(), OUTPUT_LEN, "output length");
                assert!(image.iter().all(|v| (0.0..=1.0).contains(v)), "an output pixel outside [0, 1]");
            }
        }
        Err(Error::Unipen { file, message, line }) => {
            assert!(file == UNIPEN_NAME || file.starts_with("include/"), "the error names a file: {file}");
            assert!(!message.is_empty(), "an empty error message");
            assert!(line.is_none_or(|l| l >= 1), "line {line:?}");
        }
        Err(other) => panic!("not a UNIPEN error: {other:?}"),
    }
    result.map(drop)
}
