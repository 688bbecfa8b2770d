//! Labelled digits as bytes: the form a training session keeps its data in.

use crate::error::{Error, Result};
use crate::model::{IMAGE_PIXELS, NUM_CLASSES};

/// CRC-32 with a 256-entry table (1 KiB): the wasm module's size counts more than the speed of a
/// hash computed once per data set. Natively, 16 tables (16 KiB) make it several times faster.
#[cfg(target_arch = "wasm32")]
const CRC_32: crc::Crc<u32, crc::Table<1>> = crc::Crc::<u32, crc::Table<1>>::new(&crc::CRC_32_ISO_HDLC);
#[cfg(not(target_arch = "wasm32"))]
const CRC_32: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC);

/// Labelled 28×28 digits kept as bytes, as MNIST stores them: `images` holds `N × 784` pixels
/// (row-major, 0 = background, 255 = ink), `labels` holds `N` digits `0..=9`.
///
/// A session converts a batch to f32 when it trains on it, so a data set costs one byte a
/// pixel (47 MB for MNIST's 60,000 training digits) instead of four.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Digits {
    images: Vec<u8>,
    labels: Vec<u8>,
}

impl Digits {
    /// Pairs `images` (`N × 784` bytes) with `labels` (`N` digits).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `images` is not a whole number of 784-byte images, when the
    /// counts differ, or when a label is above 9 (naming its index).
    pub fn new(images: Vec<u8>, labels: Vec<u8>) -> Result<Self> {
        if images.len() % IMAGE_PIXELS != 0 {
            return Err(Error::InvalidInput(format!(
                "images must hold n × 784 bytes (n images of 28×28 pixels), got {} bytes",
                images.len()
            )));
        }
        let n = images.len() / IMAGE_PIXELS;
        if n != labels.len() {
            return Err(Error::InvalidInput(format!(
                "{n} images but {} labels: there must be one label per image",
                labels.len()
            )));
        }
        if let Some((i, &label)) = labels.iter().enumerate().find(|(_, &l)| usize::from(l) >= NUM_CLASSES) {
            return Err(Error::InvalidInput(format!("label {label} at index {i} is not a digit 0–9")));
        }
        Ok(Digits { images, labels })
    }

    /// The digits of an f32 [`crate::data::idx::Dataset`] (pixels `byte / 255`), as bytes again:
    /// `round(255 · x)`, which gives back MNIST's bytes exactly.
    pub fn from_dataset(data: &crate::data::idx::Dataset) -> Self {
        let images = data.images.iter().map(|&x| (x.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
        Digits { images, labels: data.labels.clone() }
    }

    /// Number of digits `N`.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there is no digit.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The 784 bytes of image `i`.
    ///
    /// # Panics
    /// If `i ≥ len()`: callers index within the set.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS]
    }

    /// All the pixels, `N × 784` bytes.
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    /// All the labels, `N` digits.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Appends the digits of `other`.
    pub fn extend(&mut self, other: &Digits) {
        self.images.extend_from_slice(&other.images);
        self.labels.extend_from_slice(&other.labels);
    }

    /// A 64-bit fingerprint of the pixels and labels (two CRC-32s as gzip and zlib compute them,
    /// `CRC_32_ISO_HDLC`: of the labels, high half, and of the images): a checkpoint records it
    /// so that it is never resumed on other data.
    pub fn fingerprint(&self) -> u64 {
        let images = CRC_32.checksum(&self.images);
        let labels = CRC_32.checksum(&self.labels);
        (u64::from(labels) << 32) | u64::from(images)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_the_crc_32_of_gzip_and_zlib() {
        // Python: zlib.crc32(bytes(range(256)) * 3 + bytes(16)), zlib.crc32(bytes([7])). The same
        // values as before, so checkpoints saved by earlier builds still resume.
        let image: Vec<u8> = (0..=255u8).cycle().take(768).chain([0; 16]).collect();
        let digits = Digits::new(image, vec![7]).unwrap();
        assert_eq!(digits.fingerprint(), 0x4c66_7a2e_fe78_8d3b);
    }
}
