//! Pen strokes → the 28×28 image the model expects, made the way MNIST's digits were made.
//!
//! A pad (a canvas under a mouse, finger or stylus, or a tablet such as UNIPEN's) records a
//! digit as strokes: lists of points, x to the right and y down, in any unit. MNIST's digits are
//! scanned ink: thick, and thick in proportion to the digit, since writers' pens were about the
//! same whatever the size they wrote at, and the 20 px box scaled pen and digit together. So
//! the strokes are drawn here as thick lines whose width is a fixed fraction
//! ([`STROKE_WIDTH`]) of the drawing's own bounding box (not of the pad: a small digit and a
//! large one come out the same), and then normalised by the same code as a drawing on a canvas
//! ([`crate::data::preprocess`]): cropped, scaled so that the longer side is 20 px by area
//! averaging, and shifted so that the centre of mass lies in pixel 14 (LeCun, Cortes and
//! Burges, the MNIST page; LeCun, Bottou, Bengio and Haffner, Proc. IEEE 1998, section III-A).
//!
//! 1. Marks that are tiny next to the largest stroke and far from the rest of the ink (a tap
//!    beside the digit, a neighbour's stray dot) are dropped, so that they do not stretch the
//!    bounding box and shrink the digit into a corner of the 20 px box.
//! 2. A mark smaller than [`MIN_EXTENT`] of the pad is a tap or a dot, not a digit:
//!    [`Rendered::TooSmall`].
//! 3. Every segment is drawn as a capsule (a thick line with round caps; consecutive capsules
//!    make round joins) whose half-width is `STROKE_WIDTH / 2` of the longer side of the points'
//!    bounding box, on a raster where the inked box spans [`RASTER`] = 80 pixels (4 × the 20 px
//!    box, so the area averaging that follows anti-aliases like 4 × 4 supersampling). A pixel's
//!    ink is its coverage estimated from its centre's distance `d` to the nearest segment:
//!    `clamp(R + ½ − d, 0, 1)` for a half-width of `R` pixels, exact for a straight edge.
//! 4. Crop, 20 px box, centre of mass: [`crate::data::preprocess`].
//!
//! The arithmetic is IEEE-exact (+, −, ×, ÷, √, comparisons, conversions; no `mul_add`, no
//! platform maths library), done in a fixed order, so the same strokes give the same bytes
//! natively and in WebAssembly.

use crate::data::idx::IMAGE_SIDE;
use crate::data::preprocess::box_and_center;
use crate::error::Num;
use crate::{Error, Result};

/// Full width of a stroke, as a fraction of the longer side of the bounding box of the digit's
/// points. 0.14 puts a stroke about 2.5 px wide in the 20 px box, and it makes the mean pixel of
/// the UNIPEN digits rendered here 0.132, next to MNIST's 0.1307 (the model's `input_mean`): as
/// much ink as the digits the model learnt from.
pub const STROKE_WIDTH: f64 = 0.14;

/// A drawing whose points span less than this fraction of the pad's shorter side (on both axes)
/// is a tap or a dot: [`Rendered::TooSmall`]. 4 % of a 280 px pad is 11 px.
pub const MIN_EXTENT: f64 = 0.04;

/// The most points [`render_strokes`] and [`render_digit`] accept, over all strokes: ten
/// seconds of a 1 kHz pen for one digit; beyond this the input is not a digit. It bounds the
/// work: each point costs at most one pass over the raster.
pub const MAX_POINTS: usize = 20_000;

/// The most strokes accepted (empty ones included).
pub const MAX_STROKES: usize = 1_000;

/// The largest pad side accepted, in the points' unit: beyond any screen in CSS pixels or any
/// tablet in its own points.
pub const MAX_PAD_SIDE: f32 = 1e6;

/// Side of the raster the strokes are drawn on, in pixels, for the longer side of the inked
/// box: 4 × [`crate::data::preprocess::BOX_SIDE`].
pub const RASTER: usize = 80;

/// A mark is tiny if its bounding box's longer side is below this fraction of the largest
/// stroke's ...
const TINY_MARK: f64 = 0.2;

/// ... and far if the gap between its bounding box and that of the other ink exceeds this
/// fraction of the other ink's longer side. A 7's bar or a 4's short stroke touches the rest of
/// the digit (gap 0); a tap beside it does not.
const FAR_MARK: f64 = 0.2;

/// One pen-down stroke: the points the pen went through, in order. `[x, y]`, x to the right and
/// y down (screen convention; UNIPEN's upward y is flipped by its reader), in any unit as long
/// as both axes use the same one. A single point is a dot.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stroke {
    /// `[x, y]` points, in drawing order.
    pub points: Vec<[f32; 2]>,
}

/// What [`render_strokes`] made of a drawing.
#[derive(Debug, Clone, PartialEq)]
pub enum Rendered {
    /// A digit: 784 = 28 × 28 values, row-major, in `[0, 1]`, ink = 1.
    Digit(Vec<f32>),
    /// No point at all.
    Empty,
    /// A tap or a dot: the ink spans less than [`MIN_EXTENT`] of the pad.
    TooSmall,
}

/// Renders the strokes of a drawing made on a pad `pad_width × pad_height` (same unit as the
/// points) into the model's input (see the module docs for the recipe).
///
/// Returns [`Rendered::Empty`] if there is no point, [`Rendered::TooSmall`] if the ink (after
/// dropping stray marks) spans less than [`MIN_EXTENT`] of the pad's shorter side on both
/// axes, else [`Rendered::Digit`] with 784 values in `[0, 1]`, the longer side spanning 20
/// pixels and the centre of mass in `[13.5, 14.5)` on both axes (unless centring would cut
/// the digit off). Deterministic: the same bytes on every platform.
///
/// # Errors
/// [`Error::InvalidInput`] if a pad side is not finite, not above 0 or above
/// [`MAX_PAD_SIDE`], a coordinate is NaN or infinite (the message gives the stroke and point),
/// or there are more than [`MAX_STROKES`] strokes or [`MAX_POINTS`] points.
pub fn render_strokes(strokes: &[Stroke], pad_width: f32, pad_height: f32) -> Result<Rendered> {
    for (name, side) in [("pad_width", pad_width), ("pad_height", pad_height)] {
        if !(side.is_finite() && side > 0.0 && side <= MAX_PAD_SIDE) {
            return Err(Error::InvalidInput(format!(
                "render_strokes: {name} must be above 0 and at most {}, got {}",
                Num(MAX_PAD_SIDE),
                Num(side)
            )));
        }
    }
    check("render_strokes", strokes)?;
    let kept = drop_stray_marks(strokes);
    let Some(bounds) = Bounds::of(kept.iter().flat_map(|s| s.iter())) else {
        return Ok(Rendered::Empty);
    };
    let shorter = f64::from(pad_width.min(pad_height));
    if bounds.extent() < MIN_EXTENT * shorter {
        return Ok(Rendered::TooSmall);
    }
    Ok(draw(&kept, &bounds).map_or(Rendered::TooSmall, Rendered::Digit))
}

/// Renders the strokes of one digit with no pad to compare it with (UNIPEN's digits, cut out
/// of longer recordings): as [`render_strokes`], but `None` where that gives `Empty`, and for
/// points that all coincide (a dot, or a recording of zeros); any other size is a digit.
///
/// Returns 784 values in `[0, 1]`, row-major.
///
/// # Errors
/// As [`render_strokes`], for the coordinates and the counts.
pub fn render_digit(strokes: &[Stroke]) -> Result<Option<Vec<f32>>> {
    check("render_digit", strokes)?;
    let kept = drop_stray_marks(strokes);
    let Some(bounds) = Bounds::of(kept.iter().flat_map(|s| s.iter())) else {
        return Ok(None);
    };
    Ok(draw(&kept, &bounds))
}

/// [`render_digit`], quantised to bytes as MNIST's files hold them: `round(255 · v)`.
///
/// # Errors
/// As [`render_digit`].
pub fn render_digit_u8(strokes: &[Stroke]) -> Result<Option<Vec<u8>>> {
    Ok(render_digit(strokes)?.map(|image| image.iter().map(|&v| to_byte(v)).collect()))
}

/// `round(255 · v)` for `v` in `[0, 1]`, with exact operations only (`f32::round` may call the
/// platform's maths library).
pub(crate) fn to_byte(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8
}

/// Checks the counts and that every coordinate is finite.
fn check(what: &str, strokes: &[Stroke]) -> Result<()> {
    if strokes.len() > MAX_STROKES {
        return Err(Error::InvalidInput(format!(
            "{what}: {} strokes, more than the {MAX_STROKES} accepted",
            strokes.len()
        )));
    }
    let points: usize = strokes.iter().map(|s| s.points.len()).sum();
    if points > MAX_POINTS {
        return Err(Error::InvalidInput(format!("{what}: {points} points, more than the {MAX_POINTS} accepted")));
    }
    for (i, stroke) in strokes.iter().enumerate() {
        if let Some(j) = stroke.points.iter().position(|p| !(p[0].is_finite() && p[1].is_finite())) {
            let [x, y] = stroke.points[j];
            return Err(Error::InvalidInput(format!(
                "{what}: stroke {i}, point {j} is ({}, {}), not finite",
                Num(x),
                Num(y)
            )));
        }
    }
    Ok(())
}

/// An axis-aligned bounding box of points, in f64 (every f32 is exact in f64, and no
/// difference of two f32s overflows it).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bounds {
    min_x: f64,
    max_x: f64,
    min_y: f64,
    max_y: f64,
}

impl Bounds {
    fn of<'a>(points: impl Iterator<Item = &'a [f32; 2]>) -> Option<Bounds> {
        let mut bounds: Option<Bounds> = None;
        for &[x, y] in points {
            let (x, y) = (f64::from(x), f64::from(y));
            let b = bounds.get_or_insert(Bounds { min_x: x, max_x: x, min_y: y, max_y: y });
            b.min_x = b.min_x.min(x);
            b.max_x = b.max_x.max(x);
            b.min_y = b.min_y.min(y);
            b.max_y = b.max_y.max(y);
        }
        bounds
    }

    fn union(self, other: Bounds) -> Bounds {
        Bounds {
            min_x: self.min_x.min(other.min_x),
            max_x: self.max_x.max(other.max_x),
            min_y: self.min_y.min(other.min_y),
            max_y: self.max_y.max(other.max_y),
        }
    }

    fn width(&self) -> f64 {
        self.max_x - self.min_x
    }

    fn height(&self) -> f64 {
        self.max_y - self.min_y
    }

    /// The longer side.
    fn extent(&self) -> f64 {
        self.width().max(self.height())
    }

    /// The larger of the horizontal and vertical gaps between two boxes; 0 if they overlap.
    fn gap(&self, other: &Bounds) -> f64 {
        let dx = (other.min_x - self.max_x).max(self.min_x - other.max_x);
        let dy = (other.min_y - self.max_y).max(self.min_y - other.max_y);
        dx.max(dy).max(0.0)
    }
}

/// The non-empty strokes, without the stray marks: strokes whose box is below [`TINY_MARK`] of
/// the largest stroke's and lies more than [`FAR_MARK`] of the other ink's extent away from the
/// box of the other (not tiny) strokes.
fn drop_stray_marks(strokes: &[Stroke]) -> Vec<&[[f32; 2]]> {
    let boxed: Vec<(&[[f32; 2]], Bounds)> =
        strokes.iter().filter_map(|s| Bounds::of(s.points.iter()).map(|b| (s.points.as_slice(), b))).collect();
    let largest = boxed.iter().fold(0.0f64, |m, (_, b)| m.max(b.extent()));
    let tiny = |b: &Bounds| b.extent() < TINY_MARK * largest;
    let main = boxed.iter().filter(|(_, b)| !tiny(b)).map(|(_, b)| *b).reduce(Bounds::union);
    boxed
        .iter()
        .filter(|(_, b)| match &main {
            Some(main) if tiny(b) => b.gap(main) <= FAR_MARK * main.extent(),
            _ => true,
        })
        .map(|(points, _)| *points)
        .collect()
}

/// Draws the strokes as capsules on the raster and normalises it; `None` if the points all
/// coincide (no size to scale from).
fn draw(strokes: &[&[[f32; 2]]], bounds: &Bounds) -> Option<Vec<f32>> {
    let extent = bounds.extent();
    if extent <= 0.0 {
        return None;
    }
    let half_width = STROKE_WIDTH / 2.0 * extent;
    // Raster pixels per unit: the inked box (the points' box grown by the half-width) spans
    // RASTER pixels along its longer side, with one pixel of margin for the anti-aliased edge.
    let scale = RASTER as f64 / (extent + 2.0 * half_width);
    let radius = half_width * scale;
    let side = RASTER + 2;
    let to_raster = |p: &[f32; 2]| {
        let x = (f64::from(p[0]) - bounds.min_x + half_width) * scale + 1.0;
        let y = (f64::from(p[1]) - bounds.min_y + half_width) * scale + 1.0;
        (x, y)
    };
    let mut raster = vec![0.0f32; side * side];
    for stroke in strokes {
        let mut previous = None;
        for point in stroke.iter() {
            let q = to_raster(point);
            let p = previous.unwrap_or(q);
            capsule(&mut raster, side, p, q, radius);
            previous = Some(q);
        }
    }
    let image = box_and_center(&raster, side)?;
    debug_assert_eq!(image.len(), IMAGE_SIDE * IMAGE_SIDE);
    Some(image)
}

/// Adds the capsule of half-width `radius` around the segment `p`–`q` to the `side × side`
/// raster: each pixel keeps the larger of its ink and its coverage `clamp(radius + ½ − d, 0,
/// 1)`, `d` being the distance from its centre to the segment.
fn capsule(raster: &mut [f32], side: usize, p: (f64, f64), q: (f64, f64), radius: f64) {
    let reach = radius + 0.5;
    let span = |a: f64, b: f64| {
        // Truncation of a non-negative value is its floor; one pixel more either way is harmless.
        let lo = (a.min(b) - reach).max(0.0) as usize;
        let hi = ((a.max(b) + reach).max(0.0) as usize + 1).min(side);
        lo..hi
    };
    let (vx, vy) = (q.0 - p.0, q.1 - p.1);
    let length2 = vx * vx + vy * vy;
    let (inner2, outer2) = ((radius - 0.5).max(0.0), reach);
    let (inner2, outer2) = (inner2 * inner2, outer2 * outer2);
    for row in span(p.1, q.1) {
        let cy = row as f64 + 0.5;
        for col in span(p.0, q.0) {
            let cx = col as f64 + 0.5;
            let (wx, wy) = (cx - p.0, cy - p.1);
            let t = if length2 > 0.0 { ((wx * vx + wy * vy) / length2).clamp(0.0, 1.0) } else { 0.0 };
            let (dx, dy) = (wx - t * vx, wy - t * vy);
            let d2 = dx * dx + dy * dy;
            let coverage = if d2 >= outer2 {
                continue;
            } else if d2 <= inner2 && radius >= 0.5 {
                1.0
            } else {
                (reach - d2.sqrt()).clamp(0.0, 1.0) as f32
            };
            let pixel = &mut raster[row * side + col];
            *pixel = pixel.max(coverage);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ink per row over the middle rows of the ink (rows with ink, the outer quarter on each
    /// side left out): the stroke width of a vertical stroke, in pixels.
    fn width_per_row(image: &[f32]) -> f64 {
        let rows: Vec<f64> = image.chunks(28).map(|r| r.iter().map(|&v| f64::from(v)).sum()).collect();
        let inked: Vec<f64> = rows.into_iter().filter(|&m| m > 0.0).collect();
        let quarter = inked.len() / 4;
        let middle = &inked[quarter..inked.len() - quarter];
        middle.iter().sum::<f64>() / middle.len() as f64
    }

    /// Column and row of the ink's bounding box: (left, right, top, bottom), exclusive ends.
    fn ink_box(image: &[f32]) -> (usize, usize, usize, usize) {
        let mut b = (28, 0, 28, 0);
        for (i, &v) in image.iter().enumerate() {
            if v > 0.0 {
                let (r, c) = (i / 28, i % 28);
                b = (b.0.min(c), b.1.max(c + 1), b.2.min(r), b.3.max(r + 1));
            }
        }
        b
    }

    fn stroke(points: &[[f32; 2]]) -> Stroke {
        Stroke { points: points.to_vec() }
    }

    /// A vertical 1 of `height` pad units at `(x, top)`, sampled every unit, with a little wobble.
    fn one(x: f32, top: f32, height: f32) -> Stroke {
        let n = height as usize;
        Stroke { points: (0..=n).map(|i| [x + (i % 3) as f32 * 0.01 * height, top + i as f32]).collect() }
    }

    fn digit(strokes: &[Stroke], pad: f32) -> Vec<f32> {
        match render_strokes(strokes, pad, pad).unwrap() {
            Rendered::Digit(image) => image,
            other => panic!("expected a digit, got {other:?}"),
        }
    }

    #[test]
    fn a_small_and_a_large_one_have_the_same_stroke_width() {
        let pad = 500.0;
        let small = digit(&[one(100.0, 300.0, 0.16 * pad)], pad);
        let large = digit(&[one(250.0, 40.0, 0.8 * pad)], pad);
        let (ws, wl) = (width_per_row(&small), width_per_row(&large));
        eprintln!("stroke width: 16 % of the pad {ws:.3} px, 80 % {wl:.3} px");
        assert!((ws - wl).abs() <= 2.0 && ws <= 4.0 && wl <= 4.0, "{ws} vs {wl}");
        assert!(ws >= 1.5 && wl >= 1.5, "{ws} vs {wl}: a stroke should be about MNIST's 2–3 px");
        for image in [&small, &large] {
            let (l, r, t, b) = ink_box(image);
            assert_eq!(b - t, 20, "the 1 spans the 20 px box: {:?}", ink_box(image));
            assert!(r - l <= 5, "{:?}", ink_box(image));
        }
    }

    #[test]
    fn a_stray_dot_does_not_shrink_the_digit() {
        let pad = 400.0;
        let alone = digit(&[one(200.0, 100.0, 200.0)], pad);
        // A tap far to the left of the 1, and a tiny tick far below it.
        let dotted = digit(
            &[stroke(&[[60.0, 150.0]]), one(200.0, 100.0, 200.0), stroke(&[[210.0, 380.0], [212.0, 381.0]])],
            pad,
        );
        assert_eq!(alone, dotted);
        // A short stroke that touches the digit (a serif at the foot of a 1) is kept.
        let serif = digit(&[one(200.0, 100.0, 200.0), stroke(&[[195.0, 300.0], [215.0, 300.0]])], pad);
        assert_ne!(alone, serif);
    }

    #[test]
    fn taps_dots_and_nothing_are_not_digits() {
        assert_eq!(render_strokes(&[], 280.0, 280.0).unwrap(), Rendered::Empty);
        assert_eq!(render_strokes(&[Stroke::default(), Stroke::default()], 280.0, 280.0).unwrap(), Rendered::Empty);
        assert_eq!(render_strokes(&[stroke(&[[10.0, 10.0]])], 280.0, 280.0).unwrap(), Rendered::TooSmall);
        // A 5 px wiggle on a 280 px pad: a tap, not a digit; the same wiggle on a 50 px pad is one.
        let wiggle = [stroke(&[[100.0, 100.0], [105.0, 102.0], [101.0, 104.0]])];
        assert_eq!(render_strokes(&wiggle, 280.0, 280.0).unwrap(), Rendered::TooSmall);
        assert!(matches!(render_strokes(&wiggle, 50.0, 50.0).unwrap(), Rendered::Digit(_)));
        assert_eq!(render_digit(&[]).unwrap(), None);
        assert_eq!(render_digit(&[stroke(&[[0.0, 0.0], [0.0, 0.0]])]).unwrap(), None);
    }

    #[test]
    fn a_digit_is_normalised_like_mnist() {
        // A 7: a bar and a diagonal, drawn in two sizes and places.
        let seven = |x: f32, y: f32, s: f32| {
            vec![stroke(&[[x, y], [x + 0.6 * s, y]]), stroke(&[[x + 0.6 * s, y], [x + 0.2 * s, y + s]])]
        };
        let a = digit(&seven(10.0, 10.0, 100.0), 300.0);
        let b = digit(&seven(150.0, 40.0, 250.0), 300.0);
        assert_eq!(a, b, "size and place do not matter");
        let (l, r, t, bottom) = ink_box(&a);
        assert_eq!(bottom - t, 20, "{:?}", ink_box(&a));
        assert!((10..=15).contains(&(r - l)), "{:?}", ink_box(&a));
        let total: f64 = a.iter().map(|&v| f64::from(v)).sum();
        let (mut mx, mut my) = (0.0, 0.0);
        for (i, &v) in a.iter().enumerate() {
            mx += (i % 28) as f64 * f64::from(v);
            my += (i / 28) as f64 * f64::from(v);
        }
        let (cx, cy) = (mx / total, my / total);
        assert!((13.5..14.5).contains(&cx) && (13.5..14.5).contains(&cy), "centre of mass ({cx}, {cy})");
        assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(a.iter().filter(|&&v| v == 1.0).count() > 20, "the stroke's core is solid ink");
    }

    #[test]
    fn bad_input_is_an_error_naming_it() {
        let ok = [stroke(&[[0.0, 0.0], [10.0, 30.0]])];
        for (w, h) in [(0.0, 10.0), (10.0, -1.0), (f32::NAN, 10.0), (10.0, f32::INFINITY), (2e6, 10.0)] {
            let err = render_strokes(&ok, w, h).unwrap_err().to_string();
            assert!(err.contains("must be above 0"), "{err}");
        }
        let bad = [stroke(&[[0.0, 0.0]]), stroke(&[[1.0, 2.0], [3.0, f32::NAN]])];
        let err = render_strokes(&bad, 100.0, 100.0).unwrap_err().to_string();
        assert!(err.contains("stroke 1, point 1 is (3, NaN), not finite"), "{err}");
        let err = render_digit(&[stroke(&[[f32::INFINITY, 0.0]])]).unwrap_err().to_string();
        assert!(err.contains("stroke 0, point 0"), "{err}");
        let many = [stroke(&vec![[1.0, 1.0]; MAX_POINTS + 1])];
        let err = render_strokes(&many, 100.0, 100.0).unwrap_err().to_string();
        assert!(err.contains("20001 points, more than the 20000"), "{err}");
        let err = render_digit(&vec![Stroke::default(); MAX_STROKES + 1]).unwrap_err().to_string();
        assert!(err.contains("1001 strokes"), "{err}");
    }

    #[test]
    fn extreme_coordinates_still_render() {
        let far = [stroke(&[[-3e38, 3e38], [3e38, -3e38]])];
        assert!(matches!(render_strokes(&far, 1e6, 1e6).unwrap(), Rendered::Digit(_)));
        let tiny = [stroke(&[[1e-30, 0.0], [2e-30, 3e-30]])];
        assert!(render_digit(&tiny).unwrap().is_some());
    }

    #[test]
    fn bytes_round_half_up() {
        assert_eq!(
            [to_byte(0.0), to_byte(1.0), to_byte(0.5), to_byte(2.0 / 255.0), to_byte(-1.0)],
            [0, 255, 128, 2, 0]
        );
    }
}
