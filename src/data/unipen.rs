//! UNIPEN on-line handwriting: the isolated digits (category `1a`) of a UNIPEN distribution,
//! read into labelled pen strokes ([`Digit`]) that [`crate::data::strokes`] renders into the
//! model's input.
//!
//! UNIPEN (I. Guyon, L. Schomaker, R. Plamondon, M. Liberman and S. Janet, "UNIPEN project of
//! on-line data exchange and recognizer benchmarks", ICPR 1994; the format of the
//! `train_r01_v07` distribution, International Unipen Foundation, 1999) is a line-based text
//! format. A line starting with `.` and a capital letter is a keyword; the lines after it, up
//! to the next keyword, are its value. What is read here:
//!
//! - `.INCLUDE path`: the contents of `include/path`, expanded in place (nested includes too);
//! - `.PEN_DOWN`, `.PEN_UP`: a block of points, one `x y [more columns]` per line. A block that
//!   holds at least one point is a *component*; components are numbered from 0 over the
//!   expanded file. Only pen-down points are ink (some tablets record the hovering pen in the
//!   pen-up blocks);
//! - `.SEGMENT CHARACTER|DIGIT delineation quality "label"`: the components (or points) of one
//!   digit. A delineation is a comma-separated list of `a`, `a-b`, with `a:p` for point `p` of
//!   component `a` (points 0-based, ranges inclusive), e.g. `169-170`, `468,471`,
//!   `426:18-426:68`, `405:7-406`;
//! - `.X_POINTS_PER_INCH`, `.Y_POINTS_PER_INCH` (or `_MM`): each axis is divided by its own
//!   resolution, so that aspect ratios are right; `.COORD`: which columns are x and y;
//! - `.WRITER_ID`: who wrote the digits that follow.
//!
//! y counts upwards in UNIPEN: it is negated here, so that strokes are y-down like a screen.
//!
//! Every file is untrusted: lines, files, the expanded text, the include depth (a cycle is
//! caught by it), the points and the segments are bounded before anything is allocated for
//! them, include paths cannot leave the `include/` folder, and every error names the file and
//! line. Segments that cannot be a digit (see [`Skip`]) are skipped and counted in a
//! [`Report`], not errors: the distribution holds a few.

use std::collections::BTreeMap;
use std::fmt;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::idx::{Dataset, IMAGE_SIDE};
use crate::data::strokes::{self, Stroke};
use crate::{Error, Result};

/// The largest file accepted, segment file or include, in bytes (the largest in the
/// distribution is 1.3 MB).
pub const MAX_FILE_BYTES: usize = 64 << 20;

/// The most bytes one segment file may expand to, includes included.
pub const MAX_EXPANDED_BYTES: usize = 256 << 20;

/// The longest line accepted, in bytes.
pub const MAX_LINE_BYTES: usize = 16 << 10;

/// How deep includes may nest; an include cycle ends here with an error.
pub const MAX_INCLUDE_DEPTH: usize = 8;

/// The most `.INCLUDE`s one segment file may expand.
pub const MAX_INCLUDES: usize = 1_000;

/// The most points one expanded segment file may hold (and the most its segments may select
/// in all): 64 MB of coordinates.
pub const MAX_POINTS: usize = 8_000_000;

/// The most `.SEGMENT`s one expanded file may hold.
pub const MAX_SEGMENTS: usize = 200_000;

/// A segment whose bounding box is more than this many times the median of its file's is a
/// scribble (a crossed-out digit, pen noise), not a digit. The digits of one file are written
/// at one size: in the development subset, sizes run smoothly up to 3.8 times their file's
/// median, then jump to the 5 scribbles, 5 to 27 times.
pub const SCRIBBLE_FACTOR: f64 = 4.0;

/// One isolated digit: its label and its pen-down strokes, y down, in millimetres when the
/// files give the resolution (else in the tablet's points; only proportions matter).
#[derive(Debug, Clone, PartialEq)]
pub struct Digit {
    /// The digit, `0..=9`.
    pub label: u8,
    /// Who wrote it: `institution/WRITER_ID` (e.g. `apb/Jon_Klein`), or
    /// `institution/segment-file` when the file names no writer. Digits of one writer share it.
    pub writer: String,
    /// The pen-down strokes, in writing order.
    pub strokes: Vec<Stroke>,
}

/// Why a segment was not made into a [`Digit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Skip {
    /// The label is not one digit `0`–`9`.
    NotADigit,
    /// The segment is not a `CHARACTER` or `DIGIT` (a word, a line of text).
    NotACharacter,
    /// The delineation names a component or point the file does not hold.
    OutOfRange,
    /// No pen-down point.
    NoInk,
    /// Every point is at (0, 0): a recording of nothing.
    Zeros,
    /// Every point is at the same place: a dot.
    Dot,
    /// More points or strokes than [`strokes::MAX_POINTS`] or [`strokes::MAX_STROKES`].
    TooLarge,
    /// More than [`SCRIBBLE_FACTOR`] times the median size of its file's digits.
    Scribble,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Skip::NotADigit => "label not a digit 0-9",
            Skip::NotACharacter => "not a CHARACTER or DIGIT segment",
            Skip::OutOfRange => "delineation beyond the file's pen data",
            Skip::NoInk => "no pen-down point",
            Skip::Zeros => "points only at (0, 0)",
            Skip::Dot => "all points at one place (a dot)",
            Skip::TooLarge => "too many points or strokes",
            Skip::Scribble => "a scribble: many times its file's median size",
        })
    }
}

/// What a load read and what it skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Segment files read.
    pub files: usize,
    /// `.SEGMENT`s found.
    pub segments: usize,
    /// Segments skipped, by reason; `segments − Σ skipped` digits were read.
    pub skipped: BTreeMap<Skip, usize>,
}

impl Report {
    /// The number of segments skipped, all reasons together.
    pub fn skipped_total(&self) -> usize {
        self.skipped.values().sum()
    }

    /// Adds the counts of `other` to these.
    pub fn merge(&mut self, other: &Report) {
        self.files += other.files;
        self.segments += other.segments;
        for (&reason, &count) in &other.skipped {
            *self.skipped.entry(reason).or_default() += count;
        }
    }
}

/// The digits of one segment file and what was skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// The digits, in the order of their `.SEGMENT`s.
    pub digits: Vec<Digit>,
    /// `files` is 1.
    pub report: Report,
}

/// Reads every segment file under `<dir>/data/1a/` (the isolated digits), in path order, with
/// includes from `<dir>/include/`. `dir` is the distribution's folder, the one holding `data/`
/// and `include/` (e.g. `train_r01_v07`).
///
/// # Errors
/// [`Error::InvalidInput`] when `dir` has no `data/1a/` folder (not a distribution's folder:
/// the message says which one to give); [`Error::Io`] with the path when a folder or file cannot
/// be read; those of [`parse`].
#[cfg(not(target_arch = "wasm32"))]
pub fn load(dir: &std::path::Path) -> Result<Vec<Digit>> {
    load_with_report(dir).map(|(digits, _)| digits)
}

/// [`load`], with the [`Report`] of what was read and skipped.
///
/// # Errors
/// As [`load`].
#[cfg(not(target_arch = "wasm32"))]
pub fn load_with_report(dir: &std::path::Path) -> Result<(Vec<Digit>, Report)> {
    use crate::files::read_bounded;
    let digits_dir = dir.join("data").join("1a");
    std::fs::metadata(dir).map_err(|e| Error::Io { path: dir.display().to_string(), source: e })?;
    if !digits_dir.is_dir() {
        return Err(Error::InvalidInput(format!(
            "{} is not a UNIPEN distribution's folder: it has no data/1a/ (the isolated digits); give the folder that holds data/ and include/, e.g. train_r01_v07",
            dir.display()
        )));
    }
    let mut files = Vec::new();
    list_files(&digits_dir, &mut files, 0)?;
    files.sort();
    let include_dir = dir.join("include");
    let mut include = |path: &str| read_bounded(&include_dir.join(path), MAX_FILE_BYTES as u64);
    let mut digits = Vec::new();
    let mut report = Report::default();
    for path in files {
        let bytes = read_bounded(&path, MAX_FILE_BYTES as u64)?;
        // Named from `data/1a/` on, with `/`: the institution first.
        let name = path
            .strip_prefix(&digits_dir)
            .unwrap_or(&path)
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let parsed = parse(&name, &bytes, &mut include)?;
        digits.extend(parsed.digits);
        report.merge(&parsed.report);
    }
    Ok((digits, report))
}

/// Every regular file under `dir` (hidden ones left out), at most 16 folders deep.
#[cfg(not(target_arch = "wasm32"))]
fn list_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>, depth: usize) -> Result<()> {
    let io = |e| Error::Io { path: dir.display().to_string(), source: e };
    if depth > 16 {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type().map_err(io)?;
        if kind.is_dir() {
            list_files(&entry.path(), out, depth + 1)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

fn unipen_error(file: &str, line: Option<usize>, message: String) -> Error {
    Error::Unipen { file: file.to_string(), line, message }
}

/// Parses one segment file: `bytes` is its text, `name` its path from `data/1a/` on (e.g.
/// `apb/apb22/app2234.dat`: the institution comes first, and names the writers), and
/// `include(path)` returns the bytes of `include/<path>` for an `.INCLUDE path` (a path with
/// no `..`, not absolute).
///
/// Returns the digits in the order of their `.SEGMENT`s, and the [`Report`] of the segments
/// skipped. Work and memory are bounded by [`MAX_EXPANDED_BYTES`], [`MAX_POINTS`] and
/// [`MAX_SEGMENTS`] whatever the files say.
///
/// # Errors
/// [`Error::Unipen`] naming the file (`name`, or `include/<path>`) and line for: a line above
/// [`MAX_LINE_BYTES`]; a point line without numbers in the `.COORD` columns, or with a number
/// that is not finite as f32; a resolution that is not a positive number; a `.COORD` without `X`
/// and `Y`; a malformed delineation; an include path that is empty, absolute or holds `..`;
/// includes nested deeper than [`MAX_INCLUDE_DEPTH`] (a cycle), more than [`MAX_INCLUDES`] or
/// expanding beyond [`MAX_EXPANDED_BYTES`]; a file above [`MAX_FILE_BYTES`]; more than
/// [`MAX_POINTS`] points or [`MAX_SEGMENTS`] segments. An error of `include` is passed on,
/// named after the `.INCLUDE` line.
pub fn parse(name: &str, bytes: &[u8], include: &mut dyn FnMut(&str) -> Result<Vec<u8>>) -> Result<Parsed> {
    let mut reader = Reader::default();
    reader.read(name, bytes, include, 0)?;
    let institution = name.split('/').next().unwrap_or(name);
    reader.finish(name, institution)
}

/// A block of points: one component.
#[derive(Debug, Clone, Copy)]
struct Component {
    /// Its points are `points[start..start + len]`.
    start: usize,
    len: usize,
    pen_down: bool,
    /// Index into `Reader::writers`, if a writer was named before it.
    writer: Option<usize>,
}

/// A `.SEGMENT` line (with its continuation lines), kept for resolving once every component is
/// known.
#[derive(Debug, Clone)]
struct SegmentLine {
    file: String,
    line: usize,
    text: String,
}

/// What the lines after the last keyword belong to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Block {
    /// Not pen data (documentation, comments, `.DT`): ignored.
    Other,
    /// Points of a `.PEN_DOWN` (`true`) or `.PEN_UP` block; `started` once it holds a point.
    Pen { down: bool, started: bool },
    /// Continuation of the last `.SEGMENT`.
    Segment,
}

/// The expanded file, read line by line.
struct Reader {
    points: Vec<[f32; 2]>,
    components: Vec<Component>,
    segments: Vec<SegmentLine>,
    writers: Vec<String>,
    writer: Option<usize>,
    /// Points per unit on each axis (points per mm once a resolution is read).
    resolution: [f64; 2],
    /// Columns of x and y in a point line.
    columns: [usize; 2],
    block: Block,
    expanded: usize,
    includes: usize,
}

impl Default for Reader {
    fn default() -> Self {
        Reader {
            points: Vec::new(),
            components: Vec::new(),
            segments: Vec::new(),
            writers: Vec::new(),
            writer: None,
            resolution: [1.0, 1.0],
            columns: [0, 1],
            block: Block::Other,
            expanded: 0,
            includes: 0,
        }
    }
}

impl Reader {
    fn read(
        &mut self,
        file: &str,
        bytes: &[u8],
        include: &mut dyn FnMut(&str) -> Result<Vec<u8>>,
        depth: usize,
    ) -> Result<()> {
        if bytes.len() > MAX_FILE_BYTES {
            return Err(unipen_error(file, None, format!("larger than {MAX_FILE_BYTES} bytes")));
        }
        self.expanded += bytes.len();
        if self.expanded > MAX_EXPANDED_BYTES {
            return Err(unipen_error(file, None, format!("the includes expand beyond {MAX_EXPANDED_BYTES} bytes")));
        }
        for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let number = index + 1;
            let error = |message: String| unipen_error(file, Some(number), message);
            if raw.len() > MAX_LINE_BYTES {
                return Err(error(format!("a line of {} bytes, more than the {MAX_LINE_BYTES} accepted", raw.len())));
            }
            let line = String::from_utf8_lossy(raw);
            let line = line.trim_end_matches('\r');
            let keyword = line.strip_prefix('.').filter(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()));
            let Some(keyword_line) = keyword else {
                self.body_line(line, file, number)?;
                continue;
            };
            let (keyword, value) = keyword_line.split_once(char::is_whitespace).unwrap_or((keyword_line, ""));
            let value = value.trim();
            self.block = Block::Other;
            match keyword {
                "INCLUDE" => {
                    let path = value.split_whitespace().next().unwrap_or("");
                    check_include_path(path).map_err(error)?;
                    if depth + 1 > MAX_INCLUDE_DEPTH {
                        return Err(error(format!(
                            "includes nested more than {MAX_INCLUDE_DEPTH} deep at {path} (a cycle?)"
                        )));
                    }
                    self.includes += 1;
                    if self.includes > MAX_INCLUDES {
                        return Err(error(format!("more than {MAX_INCLUDES} includes")));
                    }
                    let included = include(path).map_err(|e| error(format!("cannot include {path}: {e}")))?;
                    self.read(&format!("include/{path}"), &included, include, depth + 1)?;
                    self.block = Block::Other;
                }
                "PEN_DOWN" | "PEN_UP" => self.block = Block::Pen { down: keyword == "PEN_DOWN", started: false },
                "SEGMENT" => {
                    if self.segments.len() >= MAX_SEGMENTS {
                        return Err(error(format!("more than {MAX_SEGMENTS} segments")));
                    }
                    self.segments.push(SegmentLine { file: file.to_string(), line: number, text: value.to_string() });
                    self.block = Block::Segment;
                }
                "WRITER_ID" => {
                    let id = value.split_whitespace().next().unwrap_or("").to_string();
                    self.writer = (!id.is_empty()).then(|| {
                        if self.writers.last() != Some(&id) {
                            self.writers.push(id);
                        }
                        self.writers.len() - 1
                    });
                }
                "X_POINTS_PER_INCH" | "Y_POINTS_PER_INCH" | "X_POINTS_PER_MM" | "Y_POINTS_PER_MM" => {
                    let per_unit = value.split_whitespace().next().and_then(|v| v.parse::<f64>().ok());
                    let Some(per_unit) = per_unit.filter(|v| v.is_finite() && *v > 0.0) else {
                        return Err(error(format!(".{keyword} must be a positive number, got `{value}`")));
                    };
                    let per_mm = if keyword.ends_with("INCH") { per_unit / 25.4 } else { per_unit };
                    self.resolution[usize::from(keyword.starts_with('Y'))] = per_mm;
                }
                "COORD" => {
                    let names: Vec<&str> = value.split_whitespace().collect();
                    let column = |axis: &str| names.iter().position(|n| n.eq_ignore_ascii_case(axis));
                    let (Some(x), Some(y)) = (column("X"), column("Y")) else {
                        return Err(error(format!(".COORD must name the columns X and Y, got `{value}`")));
                    };
                    self.columns = [x, y];
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A line that is not a keyword: a point, a segment's continuation, or ignored text.
    fn body_line(&mut self, line: &str, file: &str, number: usize) -> Result<()> {
        match self.block {
            Block::Other => Ok(()),
            Block::Segment => {
                if let Some(segment) = self.segments.last_mut() {
                    if !line.trim().is_empty() && segment.text.len() + line.len() <= MAX_LINE_BYTES {
                        segment.text.push(' ');
                        segment.text.push_str(line.trim());
                    }
                }
                Ok(())
            }
            Block::Pen { down, started } => {
                if line.trim().is_empty() {
                    return Ok(());
                }
                let error = |message: String| unipen_error(file, Some(number), message);
                let mut xy = [0.0f32; 2];
                for (axis, (&column, value)) in self.columns.iter().zip(&mut xy).enumerate() {
                    let token = line.split_whitespace().nth(column).unwrap_or("");
                    let Ok(v) = token.parse::<f64>() else {
                        return Err(error(format!(
                            "a point needs numbers in columns {} and {}, got `{line}`",
                            self.columns[0] + 1,
                            self.columns[1] + 1
                        )));
                    };
                    // Each axis in its own resolution; y flipped to point down.
                    let scaled = v / self.resolution[axis];
                    *value = (if axis == 1 { -scaled } else { scaled }) as f32;
                    if !value.is_finite() {
                        return Err(error(format!("coordinate {token} is out of range")));
                    }
                }
                if self.points.len() >= MAX_POINTS {
                    return Err(error(format!("more than {MAX_POINTS} points")));
                }
                if !started {
                    self.components.push(Component {
                        start: self.points.len(),
                        len: 0,
                        pen_down: down,
                        writer: self.writer,
                    });
                    self.block = Block::Pen { down, started: true };
                }
                self.points.push(xy);
                if let Some(component) = self.components.last_mut() {
                    component.len += 1;
                }
                Ok(())
            }
        }
    }

    /// Resolves every segment into a digit or a skip.
    fn finish(self, name: &str, institution: &str) -> Result<Parsed> {
        let mut report = Report { files: 1, segments: self.segments.len(), skipped: BTreeMap::new() };
        // Points before each component, for counting a segment's points without walking it.
        let mut before = Vec::with_capacity(self.components.len() + 1);
        before.push(0usize);
        for c in &self.components {
            before.push(before.last().copied().unwrap_or(0) + c.len);
        }
        let mut candidates: Vec<(Digit, f64)> = Vec::new();
        let mut budget = MAX_POINTS;
        for segment in &self.segments {
            match self.resolve(segment, &before, &mut budget)? {
                Ok((label, strokes, writer)) => {
                    let writer = match writer.and_then(|w| self.writers.get(w)) {
                        Some(id) => format!("{institution}/{id}"),
                        None => name.to_string(),
                    };
                    let size = extent(&strokes);
                    candidates.push((Digit { label, writer, strokes }, size));
                }
                Err(reason) => *report.skipped.entry(reason).or_default() += 1,
            }
        }
        // Scribbles: far larger than the file's other digits (the lower median, so that one
        // scribble among two digits is still caught).
        let mut sizes: Vec<f64> = candidates.iter().map(|(_, s)| *s).collect();
        sizes.sort_by(f64::total_cmp);
        let median = sizes.get(sizes.len().saturating_sub(1) / 2).copied().unwrap_or(0.0);
        let mut digits = Vec::with_capacity(candidates.len());
        for (digit, size) in candidates {
            if size > SCRIBBLE_FACTOR * median {
                *report.skipped.entry(Skip::Scribble).or_default() += 1;
            } else {
                digits.push(digit);
            }
        }
        Ok(Parsed { digits, report })
    }

    /// The label, pen-down strokes and writer of a segment, or why it is skipped; an error if
    /// its delineation is malformed. `budget` is what is left of the points all segments may
    /// select.
    #[allow(clippy::type_complexity)]
    fn resolve(
        &self,
        segment: &SegmentLine,
        before: &[usize],
        budget: &mut usize,
    ) -> Result<std::result::Result<(u8, Vec<Stroke>, Option<usize>), Skip>> {
        let Some(ranges) = parse_delineation(segment.text.split_whitespace().nth(1).unwrap_or("")) else {
            return Err(unipen_error(
                &segment.file,
                Some(segment.line),
                format!("malformed delineation in `.SEGMENT {}`: expected e.g. 3, 3-4, 3,5 or 3:0-4:12", segment.text),
            ));
        };
        Ok(self.select(segment, &ranges, before, budget))
    }

    /// [`Reader::resolve`] once the delineation is parsed.
    #[allow(clippy::type_complexity)]
    fn select(
        &self,
        segment: &SegmentLine,
        ranges: &[(Mark, Mark)],
        before: &[usize],
        budget: &mut usize,
    ) -> std::result::Result<(u8, Vec<Stroke>, Option<usize>), Skip> {
        let mut tokens = segment.text.split_whitespace();
        let hierarchy = tokens.next().unwrap_or("");
        let _delineation = tokens.next();
        let _quality = tokens.next();
        let label = tokens.collect::<Vec<_>>().join(" ");
        if !(hierarchy.eq_ignore_ascii_case("CHARACTER") || hierarchy.eq_ignore_ascii_case("DIGIT")) {
            return Err(Skip::NotACharacter);
        }
        let label = label.trim().trim_matches('"');
        let label = match label.as_bytes() {
            [d @ b'0'..=b'9'] => d - b'0',
            _ => return Err(Skip::NotADigit),
        };
        let mut strokes = Vec::new();
        let mut writer = None;
        for &(from, to) in ranges {
            let (first, last) = (from.component, to.component);
            if first > last || last >= self.components.len() {
                return Err(Skip::OutOfRange);
            }
            let claimed = before[last + 1] - before[first];
            if claimed > strokes::MAX_POINTS || last - first >= strokes::MAX_STROKES {
                return Err(Skip::TooLarge);
            }
            *budget = budget.checked_sub(claimed).ok_or(Skip::TooLarge)?;
            for (c, component) in self.components.iter().enumerate().take(last + 1).skip(first) {
                let start = if c == first { from.point.unwrap_or(0) } else { 0 };
                let end = if c == last { to.point.unwrap_or(component.len - 1) } else { component.len - 1 };
                if start > end || end >= component.len {
                    return Err(Skip::OutOfRange);
                }
                writer = writer.or(component.writer);
                if component.pen_down {
                    let points = &self.points[component.start + start..=component.start + end];
                    strokes.push(Stroke { points: points.to_vec() });
                }
            }
        }
        let count: usize = strokes.iter().map(|s| s.points.len()).sum();
        if count == 0 {
            return Err(Skip::NoInk);
        }
        if count > strokes::MAX_POINTS || strokes.len() > strokes::MAX_STROKES {
            return Err(Skip::TooLarge);
        }
        let all_points = || strokes.iter().flat_map(|s| s.points.iter());
        if all_points().all(|p| p[0] == 0.0 && p[1] == 0.0) {
            return Err(Skip::Zeros);
        }
        if extent(&strokes) <= 0.0 {
            return Err(Skip::Dot);
        }
        Ok((label, strokes, writer))
    }
}

/// The longer side of the bounding box of all points.
fn extent(strokes: &[Stroke]) -> f64 {
    let mut b = [f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY];
    for p in strokes.iter().flat_map(|s| s.points.iter()) {
        let (x, y) = (f64::from(p[0]), f64::from(p[1]));
        b = [b[0].min(x), b[1].max(x), b[2].min(y), b[3].max(y)];
    }
    (b[1] - b[0]).max(b[3] - b[2]).max(0.0)
}

/// One end of a delineation range: a component and, optionally, a point in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    component: usize,
    point: Option<usize>,
}

/// `a`, `a-b`, `a:p-b:q`, …, comma-separated, into inclusive ranges; `None` if malformed.
fn parse_delineation(text: &str) -> Option<Vec<(Mark, Mark)>> {
    let mark = |s: &str| -> Option<Mark> {
        let number = |t: &str| -> Option<usize> {
            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok())?
        };
        match s.split_once(':') {
            Some((c, p)) => Some(Mark { component: number(c)?, point: Some(number(p)?) }),
            None => Some(Mark { component: number(s)?, point: None }),
        }
    };
    text.split(',')
        .map(|range| match range.split_once('-') {
            Some((a, b)) => Some((mark(a)?, mark(b)?)),
            None => mark(range).map(|m| (m, m)),
        })
        .collect()
}

/// An include path must be relative and stay inside `include/`.
fn check_include_path(path: &str) -> std::result::Result<(), String> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.starts_with('\\')
        || path.contains(':')
        || path.split(['/', '\\']).any(|part| part == "..");
    if bad {
        Err(format!(".INCLUDE `{path}`: an include path must be relative, inside include/, without `..`"))
    } else {
        Ok(())
    }
}

/// Renders `digits` as MNIST's files hold digits: `N × 784` bytes (28×28, row-major, 0 =
/// background, 255 = ink) and `N` labels, through [`strokes::render_digit_u8`]. A digit that
/// does not render (none that [`load`] returns) is left out, with its label.
pub fn render_dataset(digits: &[Digit]) -> (Vec<u8>, Vec<u8>) {
    let mut images = Vec::with_capacity(digits.len() * IMAGE_SIDE * IMAGE_SIDE);
    let mut labels = Vec::with_capacity(digits.len());
    for digit in digits {
        if let Ok(Some(image)) = strokes::render_digit_u8(&digit.strokes) {
            images.extend_from_slice(&image);
            labels.push(digit.label);
        }
    }
    (images, labels)
}

/// [`render_dataset`] as a [`Dataset`] (`(N, 1, 28, 28)`, pixels `byte / 255` like MNIST's),
/// ready to be evaluated on or mixed with MNIST.
///
/// # Errors
/// [`Error::InvalidInput`] if a label is above 9 (only possible for hand-made digits).
pub fn dataset(digits: &[Digit]) -> Result<Dataset> {
    let (bytes, labels) = render_dataset(digits);
    let pixels: Vec<f32> = bytes.iter().map(|&b| f32::from(b) / 255.0).collect();
    let images = ndarray::Array4::from_shape_vec((labels.len(), 1, IMAGE_SIDE, IMAGE_SIDE), pixels)
        .map_err(|e| Error::InvalidInput(format!("UNIPEN dataset: {e}")))?;
    Dataset::new(images, labels)
}

/// Checks a share of writers to hold out for [`split_by_writer`], before any digit is read.
///
/// # Errors
/// [`Error::InvalidInput`] if `fraction_held_out` is not a number in `[0, 1]`.
pub fn check_fraction_held_out(fraction_held_out: f64) -> Result<()> {
    if (0.0..=1.0).contains(&fraction_held_out) {
        return Ok(());
    }
    Err(Error::InvalidInput(format!(
        "the share of UNIPEN writers held out must be a fraction in [0, 1] (0.2 holds out a fifth), got {}",
        crate::error::Num(fraction_held_out)
    )))
}

/// Splits `digits` by writer, so that no writer has digits on both sides: the distinct writers
/// are shuffled with `seed` (ChaCha8) and held out in that order until at least
/// `fraction_held_out` of the digits are. Returns `(kept, held_out)`, each in the input order.
/// The same digits, fraction and seed give the same split on every platform.
///
/// # Errors
/// [`Error::InvalidInput`] if `fraction_held_out` is not in `[0, 1]`.
pub fn split_by_writer(digits: &[Digit], fraction_held_out: f64, seed: u64) -> Result<(Vec<Digit>, Vec<Digit>)> {
    check_fraction_held_out(fraction_held_out)?;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for digit in digits {
        *counts.entry(digit.writer.as_str()).or_default() += 1;
    }
    let mut writers: Vec<(&str, usize)> = counts.into_iter().collect();
    writers.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let target = fraction_held_out * digits.len() as f64;
    let mut held = std::collections::BTreeSet::new();
    let mut held_count = 0usize;
    for (writer, count) in writers {
        if held_count as f64 >= target {
            break;
        }
        held.insert(writer);
        held_count += count;
    }
    let (held_out, kept): (Vec<&Digit>, Vec<&Digit>) = digits.iter().partition(|d| held.contains(d.writer.as_str()));
    Ok((kept.into_iter().cloned().collect(), held_out.into_iter().cloned().collect()))
}
