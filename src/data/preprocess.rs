//! A drawing on a canvas → the 28×28 image the model expects, made the way MNIST's own digits
//! were made.
//!
//! MNIST's digits were "size normalized to fit in a 20x20 pixel box while preserving their
//! aspect ratio", anti-aliased, and "centered in a 28x28 image by computing the center of mass
//! of the pixels, and translating the image so as to position this point at the center of the
//! 28x28 field" (LeCun, Cortes and Burges, the MNIST page; LeCun, Bottou, Bengio and Haffner,
//! "Gradient-based learning applied to document recognition", Proc. IEEE 1998, section III-A).
//! A model trained on MNIST only recognises digits that look like that, so a drawing goes
//! through the same steps:
//!
//! 1. ink: each pixel's distance from the background colour, estimated from the canvas border,
//!    with faint noise cut off and the strongest stroke scaled to 1 ([`preprocess_rgba`]);
//! 2. crop to the ink's bounding box;
//! 3. scale so that the longer side is [`BOX_SIDE`] = 20 px, keeping the aspect ratio, by area
//!    averaging: each output pixel is the mean of the input area it covers, so total ink scales
//!    by the area factor and thin strokes stay thin;
//! 4. shift by whole pixels so that the centre of mass lands in `[13.5, 14.5)` on both axes, in
//!    pixel-index coordinates (the middle of the 28×28 field is 13.5), without cutting anything
//!    off. That is where MNIST's own digits have it: over its 10,000 test digits the centre of
//!    mass runs from exactly 13.5 to just under 14.5, mean 14.0, so MNIST shifted by whole
//!    pixels to bring it into pixel 14; following the files rather than the prose keeps our
//!    digits where the model saw its training digits, not half a pixel away.

use crate::data::idx::IMAGE_SIDE;
use crate::{Error, Result};

/// Side of the box the ink's bounding box is scaled into, in output pixels (MNIST's 20×20).
pub const BOX_SIDE: usize = 20;

/// Largest canvas side accepted, in pixels: far beyond any drawing pad, and it bounds the
/// memory a caller's claimed size can make us use (4096² pixels: 64 MiB per f32 image).
pub const MAX_SIDE: usize = 4096;

/// Ink at or below this (on the 0–1 scale) is noise and becomes background: about 25 levels of
/// 255, above a canvas's "±10 levels" of speckle. Low, because it also drops the faintest
/// anti-aliased edge of real strokes: at 0.1, 99 of the first 100 MNIST test digits, drawn
/// 10× larger, come back pixel for pixel in place; at 0.15, only 94.
const NOISE_FLOOR: f32 = 0.1;

/// The strongest ink must reach this for a drawing to count as a digit: three times the noise
/// floor, so that noise alone is never stretched into strokes, while a light grey pencil (77
/// levels from its background) still counts.
const MIN_CONTRAST: f32 = 0.3;

/// Turns the RGBA pixels of a canvas into the model's input, or `None` when the canvas holds
/// no digit (blank, uniform, or only faint noise).
///
/// `rgba` is what `CanvasRenderingContext2D.getImageData` returns: `width × height` pixels,
/// row-major, 4 bytes each (red, green, blue, alpha, not premultiplied). Any colours work:
/// the background is the median colour of the border pixels, alpha-premultiplied so that a
/// transparent background is background whatever its RGB, and a pixel's ink is its largest
/// per-channel distance from it (so black-on-white, white-on-black, coloured ink and ink on a
/// transparent canvas all give ink 1 on background 0). The ink then goes through
/// [`preprocess_ink`].
///
/// Returns 784 = 28 × 28 values, row-major, in `[0, 1]`, ink = 1.0, background = 0.0; the
/// digit's longer side spans 20 pixels and its centre of mass lies in `[13.5, 14.5)` on both
/// axes (exactly 13.5 for a symmetric shape of even size) unless the shape is so lopsided that
/// centring it would cut it off.
///
/// # Errors
/// [`Error::InvalidInput`] if `width` or `height` is 0 or above [`MAX_SIDE`], or
/// `rgba.len() != width × height × 4` (the message gives both lengths).
pub fn preprocess_rgba(rgba: &[u8], width: usize, height: usize) -> Result<Option<Vec<f32>>> {
    let expected = check_size("preprocess_rgba", width, height)? * 4;
    if rgba.len() != expected {
        return Err(Error::InvalidInput(format!(
            "preprocess_rgba: expected {width}×{height}×4 = {expected} bytes of RGBA, got {}",
            rgba.len()
        )));
    }
    let ink = rgba_to_ink(rgba, width, height);
    preprocess_ink(&ink, width, height)
}

/// Turns an ink image (0 = background, 1 = ink; `width × height` f32, row-major) into the
/// model's input, or `None` when it holds no digit (its strongest ink is below 0.3).
///
/// Values are clamped to `[0, 1]` (so ±∞ are 1 and 0); ink at or below 0.1 is noise and
/// becomes background, and the rest is divided by the strongest ink so that it is 1, as in
/// MNIST, whose strokes saturate (a grey pencil gives the same image as a black pen). The ink
/// is then cropped to its bounding box, scaled by area averaging so its longer side is 20 px,
/// and shifted by whole pixels to put its centre of mass in `[13.5, 14.5)` on both axes of the
/// 28×28 field (the MNIST recipe; see the module docs).
///
/// Returns 784 = 28 × 28 values, row-major, in `[0, 1]`.
///
/// # Errors
/// [`Error::InvalidInput`] if `width` or `height` is 0 or above [`MAX_SIDE`],
/// `ink.len() != width × height`, or a value is NaN (the message gives its row and column).
pub fn preprocess_ink(ink: &[f32], width: usize, height: usize) -> Result<Option<Vec<f32>>> {
    let expected = check_size("preprocess_ink", width, height)?;
    if ink.len() != expected {
        return Err(Error::InvalidInput(format!(
            "preprocess_ink: expected {width}×{height} = {expected} values, got {}",
            ink.len()
        )));
    }
    if let Some(i) = ink.iter().position(|v| v.is_nan()) {
        return Err(Error::InvalidInput(format!("preprocess_ink: NaN at row {}, column {}", i / width, i % width)));
    }
    let peak = ink.iter().fold(0.0f32, |peak, &v| peak.max(v)).min(1.0);
    if peak < MIN_CONTRAST {
        return Ok(None);
    }
    let stretched: Vec<f32> =
        ink.iter().map(|&v| if v <= NOISE_FLOOR { 0.0 } else { (v / peak).clamp(0.0, 1.0) }).collect();
    Ok(box_and_center(&stretched, width))
}

/// Steps 2–4 of the recipe (see the module docs) on an ink image already on the 0–1 scale
/// (`ink` row-major, `width` wide, values in `[0, 1]`, 0 = background): crop to the bounding box
/// of the non-zero ink, scale its longer side to [`BOX_SIDE`] by area averaging, and place it in
/// the 28×28 field with its centre of mass in `[13.5, 14.5)`. `None` if there is no ink. Shared
/// with the stroke renderer ([`crate::data::strokes`]), so that drawn and rendered digits are
/// normalised by the same code. Only IEEE-exact operations (and `ceil`), so the result is the
/// same on every platform.
pub(crate) fn box_and_center(ink: &[f32], width: usize) -> Option<Vec<f32>> {
    let bounds = BoundingBox::of(ink, width)?;
    let patch = scale_into_box(ink, width, &bounds);
    center_by_mass(&patch)
}

/// Checks a claimed image size; returns the number of pixels.
fn check_size(what: &str, width: usize, height: usize) -> Result<usize> {
    if width == 0 || height == 0 {
        return Err(Error::InvalidInput(format!(
            "{what}: the image is {width}×{height}; width and height must be at least 1"
        )));
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(Error::InvalidInput(format!(
            "{what}: the image is {width}×{height}, larger than the {MAX_SIDE}×{MAX_SIDE} accepted"
        )));
    }
    Ok(width * height)
}

/// Each pixel's distance from the background, on a 0–1 scale (see [`preprocess_rgba`]).
/// `rgba` has been checked to hold `width × height` pixels.
fn rgba_to_ink(rgba: &[u8], width: usize, height: usize) -> Vec<f32> {
    let background = border_median(rgba, width, height);
    rgba.chunks_exact(4)
        .map(|pixel| {
            let distance = premultiplied(pixel).iter().zip(&background).fold(0.0f32, |d, (a, b)| d.max((a - b).abs()));
            distance / 255.0
        })
        .collect()
}

/// A pixel's colour multiplied by its opacity, and the opacity, each 0–255: what the pixel
/// adds when composited. Without this, transparent pixels would differ by their (invisible)
/// RGB, and a transparent background would read as black.
fn premultiplied(rgba: &[u8]) -> [f32; 4] {
    let alpha = f32::from(rgba.get(3).copied().unwrap_or(255));
    let channel = |i: usize| f32::from(rgba.get(i).copied().unwrap_or(0)) * alpha / 255.0;
    [channel(0), channel(1), channel(2), alpha]
}

/// The per-channel median of the premultiplied pixels on the image's outer frame: the
/// background colour. The median, so that strokes running off the edge of the canvas do not
/// shift it.
fn border_median(rgba: &[u8], width: usize, height: usize) -> [f32; 4] {
    let on_border = |i: &usize| {
        let (row, col) = (i / width, i % width);
        row == 0 || row + 1 == height || col == 0 || col + 1 == width
    };
    let border: Vec<[f32; 4]> =
        (0..width * height).filter(on_border).filter_map(|i| rgba.get(4 * i..4 * i + 4).map(premultiplied)).collect();
    let mut median = [0.0; 4];
    for (channel, m) in median.iter_mut().enumerate() {
        let mut values: Vec<f32> = border.iter().map(|p| p[channel]).collect();
        let middle = values.len() / 2;
        // The element a full sort would put in the middle, without sorting the rest.
        *m = if values.is_empty() { 0.0 } else { *values.select_nth_unstable_by(middle, f32::total_cmp).1 };
    }
    median
}

/// The smallest rectangle holding every pixel of non-zero ink: columns `left..right`, rows
/// `top..bottom`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BoundingBox {
    left: usize,
    right: usize,
    top: usize,
    bottom: usize,
}

impl BoundingBox {
    /// The bounding box of the ink in a row-major image `width` wide; `None` if there is none.
    fn of(ink: &[f32], width: usize) -> Option<BoundingBox> {
        let mut bounds: Option<BoundingBox> = None;
        for (i, _) in ink.iter().enumerate().filter(|(_, &v)| v > 0.0) {
            let (row, col) = (i / width, i % width);
            let b = bounds.get_or_insert(BoundingBox { left: col, right: col + 1, top: row, bottom: row + 1 });
            b.left = b.left.min(col);
            b.right = b.right.max(col + 1);
            b.top = b.top.min(row);
            b.bottom = b.bottom.max(row + 1);
        }
        bounds
    }

    fn width(&self) -> usize {
        self.right - self.left
    }

    fn height(&self) -> usize {
        self.bottom - self.top
    }
}

/// A small row-major image: the scaled digit before it is placed in the 28×28 field.
struct Patch {
    values: Vec<f64>,
    width: usize,
    height: usize,
}

/// Crops `ink` (row-major, `width` wide) to `bounds` and scales it by area averaging so that the
/// longer side becomes [`BOX_SIDE`] pixels; the shorter side becomes `ceil(side × 20 / longer)`
/// pixels, its last one partly covered (the uncovered part counts as background).
///
/// Separable: each output pixel's value is `Σ coverage_x · coverage_y · ink` over the input
/// pixels under it, the coverages being the fractions of the output pixel's width and height
/// each input pixel spans. Coverages are computed exactly in integers (units of 1/20 input
/// pixel) and summed in f64, so a solid shape stays exactly 1.0 inside.
fn scale_into_box(ink: &[f32], width: usize, bounds: &BoundingBox) -> Patch {
    let longer = bounds.width().max(bounds.height());
    let out_width = (bounds.width() * BOX_SIDE).div_ceil(longer);
    let out_height = (bounds.height() * BOX_SIDE).div_ceil(longer);
    let columns = coverage(bounds.width(), out_width, longer);
    let rows = coverage(bounds.height(), out_height, longer);

    // Horizontal pass: each input row of the box → `out_width` sums.
    let mut across = vec![0.0f64; bounds.height() * out_width];
    for (y, sums) in across.chunks_exact_mut(out_width).enumerate() {
        let start = (bounds.top + y) * width + bounds.left;
        let Some(row) = ink.get(start..start + bounds.width()) else {
            continue;
        };
        for (sum, weights) in sums.iter_mut().zip(&columns) {
            *sum = weights.iter().map(|&(x, w)| w * row.get(x).map_or(0.0, |&v| f64::from(v))).sum();
        }
    }
    // Vertical pass, then from integer coverage units to fractions of an output pixel's area.
    let unit_area = (longer * longer) as f64;
    let mut values = vec![0.0f64; out_height * out_width];
    for (out_row, weights) in values.chunks_exact_mut(out_width).zip(&rows) {
        for &(y, w) in weights {
            let Some(source) = across.get(y * out_width..(y + 1) * out_width) else {
                continue;
            };
            for (v, s) in out_row.iter_mut().zip(source) {
                *v += w * s;
            }
        }
        for v in out_row.iter_mut() {
            *v /= unit_area;
        }
    }
    Patch { values, width: out_width, height: out_height }
}

/// For each of `n_out` output pixels along one axis, the input pixels (of `n_in`) it covers and
/// by how much, when `longer` input pixels map onto [`BOX_SIDE`] output pixels.
///
/// Output pixel `o` spans input `[o·longer/20, (o+1)·longer/20)`; in units of 1/20 input pixel
/// that is `[o·longer, (o+1)·longer)` and input pixel `i` is `[20i, 20(i+1))`, so overlaps are
/// exact integers. An overlap divided by `longer` is the fraction of the output pixel's side.
fn coverage(n_in: usize, n_out: usize, longer: usize) -> Vec<Vec<(usize, f64)>> {
    (0..n_out)
        .map(|o| {
            let (lo, hi) = (o * longer, (o + 1) * longer);
            let last = hi.div_ceil(BOX_SIDE).min(n_in);
            (lo / BOX_SIDE..last)
                .filter_map(|i| {
                    let overlap = hi.min((i + 1) * BOX_SIDE).saturating_sub(lo.max(i * BOX_SIDE));
                    (overlap > 0).then_some((i, overlap as f64))
                })
                .collect()
        })
        .collect()
}

/// Places `patch` in the 28×28 field, shifted by whole pixels so that its centre of mass lies in
/// `[13.5, 14.5)` on both axes, clamped so that no ink falls outside; `None` if the patch holds
/// no ink. Whole-pixel shifts keep every value and the ink total exact.
fn center_by_mass(patch: &Patch) -> Option<Vec<f32>> {
    let total: f64 = patch.values.iter().sum();
    if total <= 0.0 || patch.width > IMAGE_SIDE || patch.height > IMAGE_SIDE {
        return None;
    }
    let (mut moment_x, mut moment_y) = (0.0, 0.0);
    for (i, v) in patch.values.iter().enumerate() {
        moment_x += (i % patch.width) as f64 * v;
        moment_y += (i / patch.width) as f64 * v;
    }
    // The smallest whole shift reaching 13.5 (see the module docs for why not the nearest).
    // The epsilon keeps float noise in a centre that should be a half-integer (a symmetric
    // shape) from tipping the ceiling by a whole pixel.
    let lowest = (IMAGE_SIDE as f64 - 1.0) / 2.0;
    let shift = |moment: f64, size: usize| {
        let ideal = (lowest - moment / total - 1e-9).ceil();
        ideal.clamp(0.0, (IMAGE_SIDE - size) as f64) as usize
    };
    let (dx, dy) = (shift(moment_x, patch.width), shift(moment_y, patch.height));
    let mut image = vec![0.0f32; IMAGE_SIDE * IMAGE_SIDE];
    for (i, v) in patch.values.iter().enumerate() {
        let (row, col) = (i / patch.width + dy, i % patch.width + dx);
        if let Some(pixel) = image.get_mut(row * IMAGE_SIDE + col) {
            *pixel = (*v as f32).clamp(0.0, 1.0);
        }
    }
    Some(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHITE: [u8; 4] = [255, 255, 255, 255];
    const BLACK: [u8; 4] = [0, 0, 0, 255];
    const TRANSPARENT: [u8; 4] = [0, 0, 0, 0];

    /// A `width × height` canvas of one colour.
    fn canvas(width: usize, height: usize, color: [u8; 4]) -> Vec<u8> {
        color.repeat(width * height)
    }

    /// Paints the rectangle at column `x`, row `y`, `w` wide and `h` tall.
    #[allow(clippy::too_many_arguments)]
    fn fill(rgba: &mut [u8], width: usize, x: usize, y: usize, w: usize, h: usize, color: [u8; 4]) {
        for row in y..y + h {
            for col in x..x + w {
                let i = 4 * (row * width + col);
                rgba[i..i + 4].copy_from_slice(&color);
            }
        }
    }

    /// What a test wants to know of a 28×28 output.
    #[derive(Debug)]
    struct Stats {
        total: f64,
        com: (f64, f64),
        /// Columns and rows holding ink above 1e-6: `(left, right, top, bottom)`, exclusive ends.
        bounds: (usize, usize, usize, usize),
    }

    fn stats(image: &[f32]) -> Stats {
        assert_eq!(image.len(), 784);
        let (mut total, mut mx, mut my) = (0.0, 0.0, 0.0);
        let mut bounds = (usize::MAX, 0, usize::MAX, 0);
        for (i, &v) in image.iter().enumerate() {
            let (row, col) = (i / 28, i % 28);
            total += f64::from(v);
            mx += col as f64 * f64::from(v);
            my += row as f64 * f64::from(v);
            if v > 1e-6 {
                bounds = (bounds.0.min(col), bounds.1.max(col + 1), bounds.2.min(row), bounds.3.max(row + 1));
            }
        }
        Stats { total, com: (mx / total, my / total), bounds }
    }

    fn digit(rgba: &[u8], width: usize, height: usize) -> Vec<f32> {
        preprocess_rgba(rgba, width, height).unwrap().expect("a digit")
    }

    /// The output for black rectangles `(x, y, w, h)` drawn on a white 280 × 280 canvas.
    fn drawn(rects: &[(usize, usize, usize, usize)]) -> Vec<f32> {
        let mut rgba = canvas(280, 280, WHITE);
        for &(x, y, w, h) in rects {
            fill(&mut rgba, 280, x, y, w, h, BLACK);
        }
        digit(&rgba, 280, 280)
    }

    /// Whether the centre of mass is where MNIST puts it: `[13.5, 14.5)` on both axes.
    fn centred(s: &Stats) -> bool {
        (13.5..14.5).contains(&s.com.0) && (13.5..14.5).contains(&s.com.1)
    }

    /// Near-white, 245 ± 10 levels of noise per channel, opaque (a seeded LCG: no crate needed).
    fn noisy_canvas(width: usize, height: usize) -> Vec<u8> {
        let mut state = 12345u32;
        (0..width * height * 4)
            .map(|i| {
                if i % 4 == 3 {
                    return 255;
                }
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (235 + (state >> 16) % 21) as u8
            })
            .collect()
    }

    #[test]
    fn blank_uniform_and_noisy_canvases_hold_no_digit() {
        for color in [TRANSPARENT, WHITE, BLACK, [255, 255, 255, 0], [30, 120, 200, 255]] {
            assert_eq!(preprocess_rgba(&canvas(280, 280, color), 280, 280).unwrap(), None, "{color:?}");
        }
        let noisy = noisy_canvas(280, 280);
        assert!(noisy.iter().any(|&v| v < 240), "the noise is really there");
        assert_eq!(preprocess_rgba(&noisy, 280, 280).unwrap(), None);
        // An ink image that only holds faint noise.
        let faint: Vec<f32> = (0..100 * 100).map(|i| (i % 7) as f32 * 0.04).collect();
        assert_eq!(preprocess_ink(&faint, 100, 100).unwrap(), None);
    }

    #[test]
    fn a_bar_becomes_4_by_20_centred_wherever_and_however_drawn() {
        let schemes: [([u8; 4], [u8; 4]); 5] = [
            (WHITE, BLACK),
            (TRANSPARENT, BLACK),
            ([255, 255, 255, 0], BLACK),
            (BLACK, WHITE),
            ([200, 220, 255, 255], [200, 30, 30, 255]),
        ];
        let positions = [(0, 0), (260, 180), (100, 50), (0, 180), (260, 0)];
        let mut first: Option<Vec<f32>> = None;
        for (background, ink) in schemes {
            for (x, y) in positions {
                let mut rgba = canvas(280, 280, background);
                fill(&mut rgba, 280, x, y, 20, 100, ink);
                let image = digit(&rgba, 280, 280);
                let s = stats(&image);
                assert_eq!(s.bounds.1 - s.bounds.0, 4, "width, at {x},{y}: {s:?}");
                assert_eq!(s.bounds.3 - s.bounds.2, 20, "height, at {x},{y}: {s:?}");
                assert!((s.com.0 - 13.5).abs() < 1e-9 && (s.com.1 - 13.5).abs() < 1e-9, "{s:?}");
                assert!((s.total - 80.0).abs() < 1e-6, "{s:?}");
                assert!(image.iter().all(|&v| v == 0.0 || v == 1.0));
                match &first {
                    None => first = Some(image),
                    Some(expected) => {
                        assert_eq!(&image, expected, "{background:?}/{ink:?} at {x},{y}")
                    }
                }
            }
        }
    }

    #[test]
    fn a_digit_on_a_noisy_canvas_leaves_the_noise_out() {
        let mut rgba = noisy_canvas(280, 280);
        fill(&mut rgba, 280, 200, 30, 20, 100, BLACK);
        assert_eq!(digit(&rgba, 280, 280), drawn(&[(0, 0, 20, 100)]));
    }

    #[test]
    fn the_largest_canvas_accepted_works() {
        let side = MAX_SIDE;
        let mut rgba = canvas(side, side, WHITE);
        fill(&mut rgba, side, 3000, 3500, 200, 400, BLACK);
        let s = stats(&digit(&rgba, side, side));
        assert_eq!(s.bounds, (9, 19, 4, 24), "{s:?}");
        let err = preprocess_rgba(&rgba, side + 1, side).unwrap_err().to_string();
        assert!(err.contains("4097×4096, larger than"), "{err}");
    }

    #[test]
    fn a_thin_stroke_is_not_stretched_sideways() {
        let s = stats(&drawn(&[(140, 60, 3, 150)]));
        assert!(s.bounds.1 - s.bounds.0 <= 2, "{s:?}");
        assert_eq!(s.bounds.3 - s.bounds.2, 20, "{s:?}");
        // 450 px of ink, scaled by (20/150)²: total ink follows the area.
        assert!((s.total - 8.0).abs() < 1e-4, "{s:?}");
    }

    #[test]
    fn squares_and_rectangles_get_the_expected_size() {
        for side in [100, 10, 250] {
            let image = drawn(&[(15, 20, side, side)]);
            let s = stats(&image);
            assert_eq!(s.bounds, (4, 24, 4, 24), "side {side}: {s:?}");
            assert!(image.iter().all(|&v| v == 0.0 || v == 1.0), "side {side}");
        }
        // 140 wide, 70 tall → 20 × 10, total 200; centred at rows 9..19 (centre of mass 13.5).
        let s = stats(&drawn(&[(30, 100, 140, 70)]));
        assert_eq!(s.bounds, (4, 24, 9, 19), "{s:?}");
        assert!((s.total - 200.0).abs() < 1e-6, "{s:?}");
        // 70 wide, 35 tall: the short side is 10 output px, each covering 3.5 input px exactly.
        let s = stats(&drawn(&[(30, 100, 35, 70)]));
        assert_eq!((s.bounds.1 - s.bounds.0, s.bounds.3 - s.bounds.2), (10, 20), "{s:?}");
    }

    #[test]
    fn an_odd_width_keeps_its_partial_column() {
        // 30 × 100: 6 output columns exactly. 35 × 100: 7 columns exactly.
        // 33 × 100: 6.6 → 7 columns, the last 60 % covered.
        let image = drawn(&[(10, 10, 33, 100)]);
        let s = stats(&image);
        assert_eq!(s.bounds.1 - s.bounds.0, 7, "{s:?}");
        assert!((s.total - 33.0 * 100.0 * 0.04).abs() < 1e-4, "{s:?}");
        let last_column: Vec<f32> = (s.bounds.2..s.bounds.3).map(|r| image[r * 28 + s.bounds.1 - 1]).collect();
        assert!(last_column.iter().all(|&v| (v - 0.6).abs() < 1e-6), "{last_column:?}");
    }

    #[test]
    fn the_centre_of_mass_not_the_box_is_centred() {
        // A Γ: a 10 × 100 bar under a 30 × 20 block. In the 6 × 20 patch the mass is high
        // (centre row 7.21) and left (centre column 1.36), so the box sits low and right of
        // centre: rows 7..27 (not 4..24), columns 13..19 (not 11..17).
        let s = stats(&drawn(&[(100, 50, 10, 100), (100, 50, 30, 20)]));
        assert_eq!(s.bounds, (13, 19, 7, 27), "{s:?}");
        assert!(centred(&s), "{s:?}");
    }

    #[test]
    fn a_lopsided_shape_is_clamped_not_cut_off() {
        // An L fills its whole 20 × 20 box with its mass down and left: centring its mass would
        // push it off the field, so it goes as far as it can, every pixel kept.
        let s = stats(&drawn(&[(50, 50, 10, 100), (50, 140, 100, 10)]));
        assert_eq!(s.bounds, (8, 28, 0, 20), "{s:?}");
        assert!((s.total - 1900.0 * 0.04).abs() < 1e-6, "{s:?}");
    }

    /// Cosine similarity of `a` and `b` shifted by `(dx, dy)` pixels (28×28 images).
    fn cosine_shifted(a: &[f32], b: &[f32], dx: isize, dy: isize) -> f64 {
        let mut dot = 0.0;
        for (i, &x) in a.iter().enumerate() {
            let (row, col) = ((i / 28) as isize + dy, (i % 28) as isize + dx);
            if (0..28).contains(&row) && (0..28).contains(&col) {
                dot += f64::from(x * b[(row * 28 + col) as usize]);
            }
        }
        let norm = |v: &[f32]| v.iter().map(|&x| f64::from(x * x)).sum::<f64>().sqrt();
        dot / (norm(a) * norm(b))
    }

    #[test]
    fn an_mnist_digit_drawn_ten_times_larger_comes_back_as_itself() {
        let mnist = crate::data::idx::parse_images(
            include_bytes!("../../tests/fixtures/mnist-small/t10k-images-idx3-ubyte.gz"),
            "fixture",
        )
        .unwrap();
        let mut aligned = 0;
        for n in 0..100 {
            let original: Vec<f32> = mnist.slice(ndarray::s![n, 0, .., ..]).iter().copied().collect();
            // Black ink on white, each MNIST pixel a 10 × 10 block of its grey.
            let mut rgba = canvas(280, 280, WHITE);
            for (i, &v) in original.iter().enumerate() {
                let level = 255 - (v * 255.0).round() as u8;
                fill(&mut rgba, 280, (i % 28) * 10, (i / 28) * 10, 10, 10, [level, level, level, 255]);
            }
            let image = digit(&rgba, 280, 280);
            let s = stats(&image);
            assert!(centred(&s), "{n}: {s:?}");
            // The noise floor drops MNIST's faintest edge pixels, which can move the centre of
            // mass across a rounding boundary: then the digit comes back one pixel off.
            let shifts = (-1..=1).flat_map(|dx| (-1..=1).map(move |dy| (dx, dy)));
            let (best, (dx, dy)) = shifts
                .map(|(dx, dy)| (cosine_shifted(&original, &image, dx, dy), (dx, dy)))
                .fold((f64::MIN, (0, 0)), |best, c| if c.0 > best.0 { c } else { best });
            assert!(best > 0.97, "{n}: cosine {best} at shift ({dx}, {dy})");
            aligned += usize::from((dx, dy) == (0, 0));
        }
        assert!(aligned >= 95, "only {aligned} of 100 digits came back in place");
    }

    #[test]
    fn bad_sizes_and_lengths_are_errors_naming_both_sides() {
        let err = preprocess_rgba(&[0; 280 * 280 * 4 - 1], 280, 280).unwrap_err().to_string();
        assert!(err.contains("expected 280×280×4 = 313600 bytes"), "{err}");
        assert!(err.contains("got 313599"), "{err}");
        let err = preprocess_ink(&[0.0; 10], 4, 4).unwrap_err().to_string();
        assert!(err.contains("expected 4×4 = 16 values, got 10"), "{err}");
        for (w, h) in [(0, 10), (10, 0), (0, 0)] {
            let err = preprocess_rgba(&[], w, h).unwrap_err().to_string();
            assert!(err.contains("must be at least 1"), "{err}");
        }
        let err = preprocess_rgba(&[], 5000, 5000).unwrap_err().to_string();
        assert!(err.contains("larger than the 4096×4096"), "{err}");
        // A size whose byte count overflows is refused before it is multiplied out.
        assert!(preprocess_rgba(&[], usize::MAX, usize::MAX).is_err());
        let mut ink = vec![0.0; 12];
        ink[7] = f32::NAN;
        let err = preprocess_ink(&ink, 4, 3).unwrap_err().to_string();
        assert!(err.contains("NaN at row 1, column 3"), "{err}");
    }

    #[test]
    fn infinite_ink_is_clamped() {
        let mut ink = vec![f32::NEG_INFINITY; 20 * 20];
        for row in 5..15 {
            ink[row * 20 + 10] = f32::INFINITY;
        }
        let s = stats(&preprocess_ink(&ink, 20, 20).unwrap().expect("a digit"));
        assert_eq!((s.bounds.1 - s.bounds.0, s.bounds.3 - s.bounds.2), (2, 20), "{s:?}");
        assert!((s.total - 40.0).abs() < 1e-6, "{s:?}");
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn check(out: Option<Vec<f32>>) -> std::result::Result<(), TestCaseError> {
            if let Some(image) = out {
                prop_assert_eq!(image.len(), 784);
                prop_assert!(image.iter().all(|v| (0.0..=1.0).contains(v)));
                prop_assert!(image.iter().any(|&v| v > 0.0));
            }
            Ok(())
        }

        proptest! {
            #[test]
            fn random_rgba_never_panics(
                (width, height, rgba) in (1usize..48, 1usize..48).prop_flat_map(|(w, h)| {
                    (Just(w), Just(h), proptest::collection::vec(any::<u8>(), w * h * 4))
                })
            ) {
                check(preprocess_rgba(&rgba, width, height).unwrap())?;
            }

            #[test]
            fn random_sizes_and_lengths_never_panic(
                width in 0usize..6000, height in 0usize..6000,
                rgba in proptest::collection::vec(any::<u8>(), 0..400),
            ) {
                match preprocess_rgba(&rgba, width, height) {
                    Ok(out) => {
                        prop_assert_eq!(rgba.len(), width * height * 4);
                        check(out)?;
                    }
                    Err(Error::InvalidInput(_)) => {}
                    Err(other) => prop_assert!(false, "unexpected error {other:?}"),
                }
            }

            #[test]
            fn random_ink_never_panics(
                (width, height, ink) in (1usize..40, 1usize..40).prop_flat_map(|(w, h)| {
                    let value = prop_oneof![
                        8 => 0.0f32..=1.0,
                        1 => Just(0.0f32),
                        1 => any::<f32>(),
                    ];
                    (Just(w), Just(h), proptest::collection::vec(value, w * h))
                })
            ) {
                match preprocess_ink(&ink, width, height) {
                    Ok(out) => check(out)?,
                    Err(_) => prop_assert!(ink.iter().any(|v| v.is_nan())),
                }
            }
        }
    }
}
