//! MNIST's IDX files, read into a [`Dataset`] of `(N, 1, 28, 28)` images and `N` labels.
//!
//! IDX is the format the MNIST files come in (LeCun, Cortes and Burges, "The MNIST database of
//! handwritten digits"): big-endian, a magic number (`0x00000803` = 2051 for images,
//! `0x00000801` = 2049 for labels: two zero bytes, the element type `0x08` = unsigned byte, the
//! number of dimensions), one `u32` per dimension, then the bytes. The files are usually
//! gzipped; both forms are read natively. The wasm build reads plain IDX only: the browser has
//! its own gzip decoder (`DecompressionStream`), and [`idx_file_len`] tells it where to stop.
//!
//! Every file is untrusted: the header's claims are checked against [`MAX_IMAGES`] and against
//! the bytes actually present before anything is allocated for them, and decompression stops
//! one byte past what the header claims, so a gzip bomb cannot exhaust memory.

use std::io::Read;
use std::ops::Range;

#[cfg(not(target_arch = "wasm32"))]
use flate2::bufread::GzDecoder;
use ndarray::{s, Array4};

use crate::data::digits::Digits;
use crate::error::shape_error;
use crate::{Error, Result};

/// Side of an MNIST image, in pixels: every image is `IMAGE_SIDE × IMAGE_SIDE`.
pub const IMAGE_SIDE: usize = 28;

/// Magic number of an IDX file of unsigned-byte images with 3 dimensions (count, rows, columns).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;

/// Magic number of an IDX file of unsigned-byte labels with 1 dimension (count).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The most images (or labels) a file may claim. MNIST's largest file holds 60,000; the bound
/// is generous for other IDX data sets yet keeps a lying header from demanding more than about
/// 800 MB of pixels.
pub const MAX_IMAGES: usize = 1_000_000;

/// Pixels in one image.
const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;

/// The first two bytes of every gzip stream (RFC 1952). An IDX file starts with two zero bytes,
/// so the two cannot be confused.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Images and their labels, as the model trains on them.
///
/// `images` is `(N, 1, 28, 28)`, f32, `byte / 255` so 0 = background and 1 = ink (the MNIST
/// convention); `labels` holds `N` digits `0..=9`, `labels[i]` being the digit of image `i`.
/// [`Dataset::new`] checks the shape, the counts and the labels; it does not scan the pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// `(N, 1, 28, 28)` pixels in `[0, 1]`.
    pub images: Array4<f32>,
    /// `N` digits `0..=9`.
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Pairs `images` `(N, 1, 28, 28)` with `N` `labels`.
    ///
    /// # Errors
    /// [`Error::Shape`] if `images` is not `(N, 1, 28, 28)`; [`Error::InvalidInput`] if the
    /// image and label counts differ or a label is above 9.
    pub fn new(images: Array4<f32>, labels: Vec<u8>) -> Result<Self> {
        let (n, channels, rows, cols) = images.dim();
        if (channels, rows, cols) != (1, IMAGE_SIDE, IMAGE_SIDE) {
            return Err(shape_error("Dataset images", "(N, 1, 28, 28)", images.shape()));
        }
        if labels.len() != n {
            return Err(Error::InvalidInput(format!(
                "Dataset: {n} images but {} labels; expected one label per image",
                labels.len()
            )));
        }
        if let Some((index, label)) = first_bad_label(&labels) {
            return Err(Error::InvalidInput(format!("Dataset: label {label} at index {index} is not a digit 0-9")));
        }
        Ok(Dataset { images, labels })
    }

    /// Number of images `N`.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the data set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// A copy of images and labels `range.start..range.end`, e.g. to hold the last 5,000
    /// training images out for validation.
    ///
    /// Like Python's slices, a range reaching past the end is cut at [`Dataset::len`] and a
    /// reversed range gives an empty data set, rather than panicking.
    pub fn slice(&self, range: Range<usize>) -> Dataset {
        let end = range.end.min(self.len());
        let start = range.start.min(end);
        Dataset {
            images: self.images.slice(s![start..end, .., .., ..]).to_owned(),
            labels: self.labels[start..end].to_vec(),
        }
    }
}

/// The first label above 9, with its index.
fn first_bad_label(labels: &[u8]) -> Option<(usize, u8)> {
    labels.iter().copied().enumerate().find(|&(_, label)| label > 9)
}

/// Which of MNIST's two parts: the 60,000 training digits or the 10,000 test digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`: 60,000 digits.
    Train,
    /// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`: 10,000 digits.
    Test,
}

impl Split {
    /// The file names of this split's images and labels as MNIST distributes them, without
    /// the `.gz` suffix, e.g. `("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")`.
    pub fn file_names(self) -> (&'static str, &'static str) {
        match self {
            Split::Train => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
            Split::Test => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        }
    }
}

/// Parses an IDX image file, gzipped (it starts with `1f 8b`) or plain, into `(N, 1, 28, 28)`
/// f32 pixels `byte / 255` in `[0, 1]`.
///
/// `name` (a file name or path) is used in error messages.
///
/// # Errors
/// [`Error::Idx`] naming the file when the gzip stream is corrupt, the magic number is not
/// 2051, the images are not 28×28, the header claims more than [`MAX_IMAGES`] images, or the
/// pixel bytes are fewer or more than the header claims.
pub fn parse_images(bytes: &[u8], name: &str) -> Result<Array4<f32>> {
    let pixels = parse_image_bytes(bytes, name)?;
    let count = pixels.len() / IMAGE_PIXELS;
    let values: Vec<f32> = pixels.iter().map(|&byte| f32::from(byte) / 255.0).collect();
    Array4::from_shape_vec((count, 1, IMAGE_SIDE, IMAGE_SIDE), values)
        .map_err(|e| idx_error(name, format!("cannot shape the pixels: {e}")))
}

/// Parses an IDX image file like [`parse_images`], keeping the pixels as the file's bytes:
/// `N × 784` values, 0 = background, 255 = ink.
///
/// # Errors
/// As [`parse_images`].
pub fn parse_image_bytes(bytes: &[u8], name: &str) -> Result<Vec<u8>> {
    let mut reader = open(bytes, name)?;
    let dims = read_header(&mut reader, name, IMAGES_MAGIC)?;
    let &[count, rows, cols] = dims.as_slice() else {
        return Err(idx_error(name, format!("expected 3 dimensions, got {}", dims.len())));
    };
    if (rows, cols) != (IMAGE_SIDE, IMAGE_SIDE) {
        return Err(idx_error(name, format!("expected 28×28 images, got {rows}×{cols}")));
    }
    check_count(count, name, "images")?;
    // Cannot overflow: count <= MAX_IMAGES, and 784 * MAX_IMAGES fits even a 32-bit usize.
    read_body(&mut reader, name, count * IMAGE_PIXELS, count, "images")
}

/// Parses an image file and a label file (each gzipped or plain, named `images_name` and
/// `labels_name` in messages) into [`Digits`]: bytes, as a training session keeps them.
///
/// # Errors
/// Those of [`parse_images`] and [`parse_labels`], and [`Error::Idx`] if the two files hold
/// different numbers of digits.
pub fn parse_digits(images: &[u8], images_name: &str, labels: &[u8], labels_name: &str) -> Result<Digits> {
    let pixels = parse_image_bytes(images, images_name)?;
    let labels = parse_labels(labels, labels_name)?;
    let count = pixels.len() / IMAGE_PIXELS;
    if count != labels.len() {
        return Err(idx_error(
            images_name,
            format!("holds {count} images but {labels_name} holds {} labels", labels.len()),
        ));
    }
    Digits::new(pixels, labels)
}

/// Reads a split of MNIST from the folder `dir` as [`Digits`] (bytes): the files as for [`load`].
///
/// # Errors
/// As [`load`].
#[cfg(not(target_arch = "wasm32"))]
pub fn load_digits(dir: &std::path::Path, split: Split) -> Result<Digits> {
    let (images_name, labels_name) = split.file_names();
    let (images_path, images) = read_plain_or_gz(dir, images_name)?;
    let (labels_path, labels) = read_plain_or_gz(dir, labels_name)?;
    parse_digits(&images, &images_path, &labels, &labels_path)
}

/// Parses an IDX label file, gzipped or plain, into `N` digits `0..=9`.
///
/// `name` (a file name or path) is used in error messages.
///
/// # Errors
/// [`Error::Idx`] naming the file when the gzip stream is corrupt, the magic number is not
/// 2049, the header claims more than [`MAX_IMAGES`] labels, the label bytes are fewer or more
/// than the header claims, or a label is above 9.
pub fn parse_labels(bytes: &[u8], name: &str) -> Result<Vec<u8>> {
    let mut reader = open(bytes, name)?;
    let dims = read_header(&mut reader, name, LABELS_MAGIC)?;
    let &[count] = dims.as_slice() else {
        return Err(idx_error(name, format!("expected 1 dimension, got {}", dims.len())));
    };
    check_count(count, name, "labels")?;
    let labels = read_body(&mut reader, name, count, count, "labels")?;
    if let Some((index, label)) = first_bad_label(&labels) {
        return Err(idx_error(name, format!("label {label} at index {index} is not a digit 0-9")));
    }
    Ok(labels)
}

/// Parses an image file and a label file (each gzipped or plain) into a [`Dataset`].
///
/// Error messages call the files `images` and `labels`; [`load`] names them by path.
///
/// # Errors
/// Those of [`parse_images`] and [`parse_labels`], and [`Error::Idx`] if the two files hold
/// different numbers of digits.
pub fn parse_dataset(images: &[u8], labels: &[u8]) -> Result<Dataset> {
    pair(parse_images(images, "images")?, "images", parse_labels(labels, "labels")?, "labels")
}

/// Reads a split of MNIST from the folder `dir`: `<dir>/train-images-idx3-ubyte` and
/// `<dir>/train-labels-idx1-ubyte` for [`Split::Train`], `t10k-…` for [`Split::Test`], each
/// plain or with a `.gz` suffix.
///
/// # Errors
/// [`Error::Io`] with the path when a file is missing or unreadable; [`Error::InvalidInput`]
/// naming both when a file is there plain and gzipped; otherwise those of
/// [`parse_dataset`], naming the file by its path.
#[cfg(not(target_arch = "wasm32"))]
pub fn load(dir: &std::path::Path, split: Split) -> Result<Dataset> {
    let (images_name, labels_name) = split.file_names();
    let (images_path, images) = read_plain_or_gz(dir, images_name)?;
    let (labels_path, labels) = read_plain_or_gz(dir, labels_name)?;
    pair(parse_images(&images, &images_path)?, &images_path, parse_labels(&labels, &labels_path)?, &labels_path)
}

/// Reads `<dir>/<name>`, or `<dir>/<name>.gz` if the former does not exist; returns the path
/// read (for messages) and the bytes. Both being there is an error: they may hold different
/// digits.
#[cfg(not(target_arch = "wasm32"))]
fn read_plain_or_gz(dir: &std::path::Path, name: &str) -> Result<(String, Vec<u8>)> {
    // An images file of MAX_IMAGES images (a labels file is smaller), gzipped or not: a file
    // past that is refused without being read whole.
    let read = |path: &std::path::Path| crate::files::read_bounded(path, (16 + MAX_IMAGES * IMAGE_PIXELS) as u64);
    let plain = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    // Reading either one would be a guess (the page refuses the same): one may be left from
    // another download, or be other digits under MNIST's name.
    if plain.exists() && gz.exists() {
        return Err(Error::InvalidInput(format!(
            "{} and {} are both MNIST's {name}, and they may hold different digits: keep one of them",
            plain.display(),
            gz.display()
        )));
    }
    match read(&plain) {
        Ok(bytes) => return Ok((plain.display().to_string(), bytes)),
        // Any other failure (permissions, a folder in the way) is the one to report.
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match read(&gz) {
        Ok(bytes) => Ok((gz.display().to_string(), bytes)),
        Err(Error::Io { source, .. }) => {
            Err(Error::Io { path: format!("{} (nor {})", gz.display(), plain.display()), source })
        }
        Err(e) => Err(e),
    }
}

/// Makes a [`Dataset`] of parsed images and labels, naming both files if their counts differ.
fn pair(images: Array4<f32>, images_name: &str, labels: Vec<u8>, labels_name: &str) -> Result<Dataset> {
    let count = images.dim().0;
    if count != labels.len() {
        return Err(idx_error(
            images_name,
            format!("holds {count} images but {labels_name} holds {} labels", labels.len()),
        ));
    }
    Dataset::new(images, labels)
}

/// A reader of the decompressed bytes: through a gzip decoder ([`GzipMembers`]) if `bytes`
/// starts with the gzip magic, else the bytes themselves.
#[cfg(not(target_arch = "wasm32"))]
fn open<'a>(bytes: &'a [u8], _name: &str) -> Result<Box<dyn Read + 'a>> {
    if bytes.starts_with(&GZIP_MAGIC) {
        Ok(Box::new(GzipMembers { member: Some(GzDecoder::new(bytes)) }))
    } else {
        Ok(Box::new(bytes))
    }
}

/// The decompressed bytes of gzip members one after another (`cat a.gz b.gz` is valid gzip, as
/// with flate2's `MultiGzDecoder`), where bytes after the last member that are not another one
/// are an error saying so: `MultiGzDecoder` read them as a header cut short ("unexpected end of
/// file"), and `gzip -d` ignores them with a warning.
#[cfg(not(target_arch = "wasm32"))]
struct GzipMembers<'a> {
    member: Option<GzDecoder<&'a [u8]>>,
}

#[cfg(not(target_arch = "wasm32"))]
impl Read for GzipMembers<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some(member) = &mut self.member {
            let n = member.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // The bufread decoder consumed exactly its member: what is left follows it.
            let rest = self.member.take().map_or(&[][..], GzDecoder::into_inner);
            if rest.starts_with(&GZIP_MAGIC) {
                self.member = Some(GzDecoder::new(rest));
            } else if !rest.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} bytes follow the end of its gzip data, and they are not gzip", rest.len()),
                ));
            }
        }
        Ok(0)
    }
}

/// The bytes themselves: the wasm build carries no gzip decoder (the browser's is used). A slice,
/// not a `Box<dyn Read>`: every method of the trait object would be kept in the module.
#[cfg(target_arch = "wasm32")]
fn open<'a>(bytes: &'a [u8], name: &str) -> Result<&'a [u8]> {
    if bytes.starts_with(&GZIP_MAGIC) {
        return Err(idx_error(name, "is gzipped: decompress it first (this build reads plain IDX)".to_string()));
    }
    Ok(bytes)
}

/// The length in bytes of the whole IDX file whose first bytes are `header` (at least 8 for a
/// label file, 16 for an image file): header plus data, as the header claims. A gzip decoder
/// outside the core stops one byte past it, so that a gzip bomb cannot exhaust memory, and the
/// parser then reports what is wrong.
///
/// # Errors
/// [`Error::Idx`] naming `name` when the header is cut short, its magic number is neither an IDX
/// image file's (2051) nor a label file's (2049), or it claims more than [`MAX_IMAGES`] items.
pub fn idx_file_len(header: &[u8], name: &str) -> Result<usize> {
    // Read as the parser reads it: a label file unless the magic says images.
    let images = header.len() >= 4 && be_u32(&header[..4]) == IMAGES_MAGIC;
    let (magic, what, item) = if images { (IMAGES_MAGIC, "images", IMAGE_PIXELS) } else { (LABELS_MAGIC, "labels", 1) };
    let dims = read_header(&mut &header[..], name, magic)?;
    let count = dims[0];
    check_count(count, name, what)?;
    // Cannot overflow: count <= MAX_IMAGES, and 784 * MAX_IMAGES fits even a 32-bit usize.
    Ok(4 * (1 + dims.len()) + count * item)
}

/// Reads the magic number, checks it against `magic`, and reads the dimensions it announces
/// (its low byte is their count).
fn read_header(reader: &mut impl Read, name: &str, magic: u32) -> Result<Vec<usize>> {
    let expected_dims = (magic & 0xff) as usize;
    let header_len = 4 * (1 + expected_dims);
    let mut header = vec![0u8; header_len];
    let got = read_up_to(reader, &mut header, name)?;
    if got < 4 {
        return Err(idx_error(name, format!("truncated: the header is {header_len} bytes, the file has {got}")));
    }
    let found = be_u32(&header[0..4]);
    if found != magic {
        return Err(idx_error(
            name,
            format!("wrong magic number: expected {}, got {}", describe_magic(magic), describe_magic(found)),
        ));
    }
    if got < header_len {
        return Err(idx_error(name, format!("truncated: the header is {header_len} bytes, the file has {got}")));
    }
    Ok(header[4..].chunks_exact(4).map(|b| be_u32(b) as usize).collect())
}

/// A magic number in hexadecimal and decimal, with what it means when it is one of MNIST's.
fn describe_magic(magic: u32) -> String {
    let meaning = match magic {
        IMAGES_MAGIC => ", an IDX image file",
        LABELS_MAGIC => ", an IDX label file",
        _ => "",
    };
    format!("0x{magic:08x} ({magic}{meaning})")
}

/// Fails if a header claims more than [`MAX_IMAGES`] items: checked before anything is read.
fn check_count(count: usize, name: &str, what: &str) -> Result<()> {
    if count > MAX_IMAGES {
        return Err(idx_error(
            name,
            format!("the header claims {count} {what}, more than the {MAX_IMAGES} this reader accepts"),
        ));
    }
    Ok(())
}

/// Reads exactly `len` bytes of data after the header (`count` items of `what`), failing if the
/// file holds fewer or more.
///
/// Reads at most `len + 1` bytes, so a gzip stream inflating far beyond its header's claim is
/// stopped there; the buffer grows with the bytes actually read, never with the claim.
fn read_body(reader: &mut impl Read, name: &str, len: usize, count: usize, what: &str) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    reader
        .take(len as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| idx_error(name, format!("cannot decompress: {e}")))?;
    if body.len() < len {
        return Err(idx_error(
            name,
            format!("truncated: the header claims {count} {what} ({len} bytes), the file holds {} bytes", body.len()),
        ));
    }
    if body.len() > len {
        return Err(idx_error(
            name,
            format!("the header claims {count} {what} ({len} bytes), but more bytes follow them"),
        ));
    }
    Ok(body)
}

/// Fills `buf` as far as the reader goes; returns how many bytes were read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8], name: &str) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(idx_error(name, format!("cannot decompress: {e}"))),
        }
    }
    Ok(filled)
}

/// A big-endian `u32` from 4 bytes (fewer bytes are zero-padded on the left: never panics).
fn be_u32(bytes: &[u8]) -> u32 {
    bytes.iter().take(4).fold(0, |acc, &b| (acc << 8) | u32::from(b))
}

/// An [`Error::Idx`] for the file `name`.
fn idx_error(name: &str, message: String) -> Error {
    Error::Idx { name: name.to_string(), message }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IDX image file header claiming `count` images of `rows × cols`, followed by `pixels`.
    fn image_file(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for word in [IMAGES_MAGIC, count, rows, cols] {
            bytes.extend_from_slice(&word.to_be_bytes());
        }
        bytes.extend_from_slice(pixels);
        bytes
    }

    /// An IDX label file claiming `count` labels, followed by `labels`.
    fn label_file(count: u32, labels: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
        bytes.extend_from_slice(&count.to_be_bytes());
        bytes.extend_from_slice(labels);
        bytes
    }

    #[cfg(not(target_arch = "wasm32"))] // the wasm build reads plain IDX only
    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).expect("writing to a Vec");
        encoder.finish().expect("writing to a Vec")
    }

    /// Two 28×28 images: the first all 0 except pixel (0, 0) = 255 and (27, 27) = 51, the second
    /// all 255.
    fn two_images() -> Vec<u8> {
        let mut pixels = vec![0u8; 2 * IMAGE_PIXELS];
        pixels[0] = 255;
        pixels[IMAGE_PIXELS - 1] = 51;
        pixels[IMAGE_PIXELS..].fill(255);
        image_file(2, 28, 28, &pixels)
    }

    /// The message of an [`Error::Idx`], after checking that it names the file `name`.
    fn idx_message(result: Result<impl std::fmt::Debug>, name: &str) -> String {
        match result {
            Err(Error::Idx { name: got, message }) => {
                assert_eq!(got, name);
                message
            }
            other => panic!("expected Error::Idx, got {other:?}"),
        }
    }

    #[test]
    fn parses_images_as_bytes_over_255() {
        let images = parse_images(&two_images(), "x").unwrap();
        assert_eq!(images.shape(), &[2, 1, 28, 28]);
        assert_eq!(images[[0, 0, 0, 0]], 1.0);
        assert_eq!(images[[0, 0, 0, 1]], 0.0);
        assert!((images[[0, 0, 27, 27]] - 0.2).abs() < 1e-7);
        assert!(images.slice(s![1, .., .., ..]).iter().all(|&p| p == 1.0));
    }

    #[test]
    #[cfg(not(target_arch = "wasm32"))] // the wasm build reads plain IDX only
    fn plain_and_gzipped_give_the_same_result() {
        let images = two_images();
        let labels = label_file(2, &[3, 9]);
        let plain = parse_dataset(&images, &labels).unwrap();
        let gzipped = parse_dataset(&gzip(&images), &gzip(&labels)).unwrap();
        assert_eq!(plain, gzipped);
        assert_eq!(plain.labels, vec![3, 9]);
        // Mixed forms too: each file is detected on its own.
        assert_eq!(parse_dataset(&gzip(&images), &labels).unwrap(), plain);
        // Gzip members one after another (`cat a.gz b.gz`) are one file.
        let members = [gzip(&images[..100]), gzip(&images[100..])].concat();
        assert_eq!(parse_dataset(&members, &labels).unwrap(), plain);
    }

    #[test]
    #[cfg(not(target_arch = "wasm32"))] // the wasm build reads plain IDX only
    fn bytes_after_the_gzip_data_are_named_as_such() {
        let labels = label_file(2, &[3, 9]);
        let trailing = [gzip(&labels), b"garbage\n".to_vec()].concat();
        let message = idx_message(parse_labels(&trailing, "l.gz"), "l.gz");
        // It had read as a gzip header cut short: "cannot decompress: unexpected end of file".
        assert_eq!(message, "cannot decompress: 8 bytes follow the end of its gzip data, and they are not gzip");
        let cut = gzip(&labels);
        let message = idx_message(parse_labels(&cut[..cut.len() - 4], "l.gz"), "l.gz");
        assert!(message.starts_with("cannot decompress: "), "{message}");
    }

    #[test]
    fn wrong_magic_is_named_with_both_numbers() {
        let message = idx_message(parse_images(&label_file(2, &[1, 2]), "imgs"), "imgs");
        assert!(message.contains("expected 0x00000803 (2051"), "{message}");
        assert!(message.contains("got 0x00000801 (2049, an IDX label file)"), "{message}");

        let message = idx_message(parse_labels(&two_images(), "lbls"), "lbls");
        assert!(message.contains("expected 0x00000801 (2049"), "{message}");
        assert!(message.contains("got 0x00000803 (2051, an IDX image file)"), "{message}");

        let message = idx_message(parse_labels(b"\x00\x00\x08\x03junk", "j"), "j");
        assert!(message.contains("wrong magic number"), "{message}");
    }

    #[test]
    fn truncated_header_is_an_error() {
        for len in [0, 3, 4, 15] {
            let message = idx_message(parse_images(&two_images()[..len], "t"), "t");
            assert!(message.contains("truncated: the header is 16 bytes"), "{len}: {message}");
            assert!(message.contains(&format!("has {len}")), "{len}: {message}");
        }
        let message = idx_message(parse_labels(&label_file(1, &[])[..6], "t"), "t");
        assert!(message.contains("the header is 8 bytes, the file has 6"), "{message}");
    }

    #[test]
    fn truncated_pixels_and_labels_are_errors() {
        let pixels = vec![0u8; 2 * IMAGE_PIXELS + 100];
        let message = idx_message(parse_images(&image_file(3, 28, 28, &pixels), "t"), "t");
        assert!(message.contains("claims 3 images (2352 bytes), the file holds 1668 bytes"), "{message}");

        let message = idx_message(parse_labels(&label_file(5, &[1, 2, 3]), "l"), "l");
        assert!(message.contains("claims 5 labels (5 bytes), the file holds 3 bytes"), "{message}");

        // A gzip stream cut short is reported, not panicked on.
        #[cfg(not(target_arch = "wasm32"))]
        {
            let gz = gzip(&two_images());
            let message = idx_message(parse_images(&gz[..gz.len() / 2], "g"), "g");
            assert!(message.contains("decompress") || message.contains("truncated"), "{message}");
        }
    }

    #[test]
    fn extra_bytes_after_the_data_are_an_error() {
        let message = idx_message(parse_labels(&label_file(2, &[1, 2, 3]), "l"), "l");
        assert!(message.contains("claims 2 labels (2 bytes), but more bytes follow"), "{message}");
    }

    #[test]
    fn a_huge_claim_fails_before_allocating() {
        let message = idx_message(parse_images(&image_file(u32::MAX, 28, 28, &[]), "h"), "h");
        assert!(message.contains("claims 4294967295 images, more than the 1000000"), "{message}");
        let message = idx_message(parse_labels(&label_file(u32::MAX, &[]), "h"), "h");
        assert!(message.contains("claims 4294967295 labels"), "{message}");
        // Within the bound but far beyond the bytes present: a truncation, found without
        // allocating the 784 MB the header asks for.
        let message = idx_message(parse_images(&image_file(1_000_000, 28, 28, &[0; 784]), "h"), "h");
        assert!(message.contains("truncated"), "{message}");
    }

    #[test]
    fn idx_file_len_is_the_header_plus_what_it_claims() {
        let images = two_images();
        assert_eq!(idx_file_len(&images[..16], "i").unwrap(), images.len());
        assert_eq!(idx_file_len(&[0, 0, 8, 1, 0, 0, 0, 7], "l").unwrap(), 15);
        let message = idx_message(idx_file_len(&images[..12], "i"), "i");
        assert!(message.contains("truncated: the header is 16 bytes, the file has 12"), "{message}");
        let message = idx_message(idx_file_len(&[0, 0, 8, 2, 0, 0, 0, 7], "x"), "x");
        assert!(message.contains("wrong magic number") && message.contains("0x00000802"), "{message}");
        let message = idx_message(idx_file_len(&[0, 0, 8, 1, 0xff, 0xff, 0xff, 0xff], "l"), "l");
        assert!(message.contains("more than the 1000000"), "{message}");
    }

    #[test]
    #[cfg(not(target_arch = "wasm32"))] // the wasm build reads plain IDX only
    fn a_gzip_bomb_stops_at_the_claimed_size() {
        // 64 MiB of zeros, compressing to about 64 KiB, behind a header claiming one image.
        let mut bomb = image_file(1, 28, 28, &[]);
        bomb.resize(bomb.len() + (64 << 20), 0);
        let message = idx_message(parse_images(&gzip(&bomb), "b"), "b");
        assert!(message.contains("claims 1 images (784 bytes), but more bytes follow"), "{message}");
    }

    #[test]
    fn images_other_than_28_by_28_are_rejected() {
        let message = idx_message(parse_images(&image_file(1, 32, 32, &[0; 1024]), "d"), "d");
        assert_eq!(message, "expected 28×28 images, got 32×32");
        let message = idx_message(parse_images(&image_file(1, 28, 27, &[0; 756]), "d"), "d");
        assert_eq!(message, "expected 28×28 images, got 28×27");
    }

    #[test]
    fn counts_that_disagree_name_both_files() {
        let message = idx_message(parse_dataset(&two_images(), &label_file(3, &[1, 2, 3])), "images");
        assert_eq!(message, "holds 2 images but labels holds 3 labels");
    }

    #[test]
    fn a_label_above_9_is_rejected_with_its_index() {
        let message = idx_message(parse_labels(&label_file(3, &[0, 9, 10]), "l"), "l");
        assert_eq!(message, "label 10 at index 2 is not a digit 0-9");
    }

    #[test]
    fn dataset_new_checks_shape_counts_and_labels() {
        let images = Array4::<f32>::zeros((2, 1, 28, 28));
        assert!(Dataset::new(images.clone(), vec![1, 2]).is_ok());
        assert!(matches!(
            Dataset::new(Array4::zeros((2, 3, 28, 28)), vec![1, 2]),
            Err(Error::Shape { got, .. }) if got == "(2, 3, 28, 28)"
        ));
        let err = Dataset::new(images.clone(), vec![1]).unwrap_err().to_string();
        assert!(err.contains("2 images but 1 labels"), "{err}");
        let err = Dataset::new(images, vec![1, 200]).unwrap_err().to_string();
        assert!(err.contains("label 200 at index 1"), "{err}");
    }

    #[test]
    fn slice_copies_the_range_and_clamps_it() {
        let data = parse_dataset(&two_images(), &label_file(2, &[3, 9])).unwrap();
        let second = data.slice(1..2);
        assert_eq!(second.len(), 1);
        assert_eq!(second.labels, vec![9]);
        assert_eq!(second.images[[0, 0, 5, 5]], 1.0);
        assert_eq!(data.slice(1..100).labels, vec![9]);
        assert!(data.slice(5..9).is_empty());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = data.slice(2..1);
        assert!(reversed.is_empty());
        assert_eq!(reversed.images.shape(), &[0, 1, 28, 28]);
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod files {
        use super::*;
        use std::path::Path;

        const MNIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist");

        /// Genuine MNIST beside the repository, or `None` (said on stderr) on a machine without it.
        fn mnist() -> Option<&'static Path> {
            let dir = Path::new(MNIST);
            if dir.join("t10k-images-idx3-ubyte.gz").exists() {
                return Some(dir);
            }
            eprintln!("MNIST not found at {MNIST}: test skipped");
            None
        }
        const SMALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mnist-small");

        fn histogram(labels: &[u8]) -> [usize; 10] {
            let mut counts = [0; 10];
            for &label in labels {
                counts[usize::from(label)] += 1;
            }
            counts
        }

        #[test]
        fn a_missing_file_is_an_io_error_with_its_path() {
            let dir = std::env::temp_dir().join("lenet-idx-test-no-such-folder");
            match load(&dir, Split::Test) {
                Err(Error::Io { path, source }) => {
                    assert!(path.contains("lenet-idx-test-no-such-folder/t10k-images-idx3-ubyte.gz"), "{path}");
                    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
                }
                other => panic!("expected Error::Io, got {other:?}"),
            }
        }

        #[test]
        fn loads_the_real_mnist_test_split() {
            let Some(mnist) = mnist() else { return };
            let test = load(mnist, Split::Test).unwrap();
            assert_eq!(test.len(), 10_000);
            assert_eq!(test.images.shape(), &[10_000, 1, 28, 28]);
            assert_eq!(test.labels[0], 7);
            let (min, max) = test.images.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &p| (lo.min(p), hi.max(p)));
            assert_eq!((min, max), (0.0, 1.0));
            assert_eq!(histogram(&test.labels), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
        }

        #[test]
        fn the_small_fixture_is_the_head_of_real_mnist() {
            let Some(mnist) = mnist() else { return };
            let small_test = load(Path::new(SMALL), Split::Test).unwrap();
            let small_train = load(Path::new(SMALL), Split::Train).unwrap();
            assert_eq!((small_train.len(), small_test.len()), (2_500, 500));
            assert_eq!(small_test, load(mnist, Split::Test).unwrap().slice(0..500));
            assert_eq!(small_train, load(mnist, Split::Train).unwrap().slice(0..2_500));
            // Every digit is there in fair numbers, so a model trained on it can learn them all.
            assert!(histogram(&small_train.labels).iter().all(|&n| n >= 200), "{:?}", histogram(&small_train.labels));
            assert!(histogram(&small_test.labels).iter().all(|&n| n >= 30), "{:?}", histogram(&small_test.labels));
        }

        #[test]
        fn a_plain_file_is_read_like_the_gzipped_one() {
            let dir = std::env::temp_dir().join(format!("lenet-idx-test-plain-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let images = two_images();
            let labels = label_file(2, &[4, 5]);
            std::fs::write(dir.join("train-images-idx3-ubyte"), &images).unwrap();
            std::fs::write(dir.join("train-labels-idx1-ubyte.gz"), gzip(&labels)).unwrap();
            let loaded = load(&dir, Split::Train);
            std::fs::remove_dir_all(&dir).unwrap();
            assert_eq!(loaded.unwrap(), parse_dataset(&images, &labels).unwrap());
        }

        #[test]
        fn a_file_there_both_plain_and_gzipped_is_refused_naming_both() {
            let dir = std::env::temp_dir().join(format!("lenet-idx-test-both-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), gzip(&two_images())).unwrap();
            std::fs::write(dir.join("t10k-labels-idx1-ubyte"), label_file(2, &[4, 5])).unwrap();
            std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), gzip(&label_file(2, &[7, 1]))).unwrap();
            let loaded = load(&dir, Split::Test).map(|d| d.labels);
            let digits = load_digits(&dir, Split::Test).map(|d| d.labels().to_vec());
            std::fs::remove_dir_all(&dir).unwrap();
            let labels = dir.join("t10k-labels-idx1-ubyte");
            let expected = format!(
                "invalid input: {} and {}.gz are both MNIST's t10k-labels-idx1-ubyte, and they may hold different digits: keep one of them",
                labels.display(),
                labels.display()
            );
            assert_eq!(loaded.unwrap_err().to_string(), expected);
            assert_eq!(digits.unwrap_err().to_string(), expected);
        }
    }
}
