//! The UNIPEN reader and the stroke renderer on real handwriting, natively.
//!
//! The full-data test reads a UNIPEN distribution from `$UNIPEN_DIR`, or else from
//! `../shared/data/unipen/train_r01_v07` beside the repository (as `tests/mnist.rs` finds MNIST); where neither exists it says so
//! and passes without reading (a user's machine need not hold UNIPEN).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use lenet::data::strokes::{render_digit, render_strokes, Rendered, Stroke};
use lenet::data::unipen::{self, Skip};

fn unipen_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("UNIPEN_DIR") {
        return Some(PathBuf::from(dir));
    }
    let shared = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/unipen/train_r01_v07"));
    shared.join("data").is_dir().then_some(shared)
}

#[test]
fn the_development_digits_load_and_render() {
    let Some(dir) = unipen_dir() else {
        eprintln!("UNIPEN not found (set UNIPEN_DIR): full-data test not run");
        return;
    };
    let started = std::time::Instant::now();
    let (digits, report) = unipen::load_with_report(&dir).unwrap();
    let loaded = started.elapsed();
    eprintln!("{} digits from {} files in {loaded:?}; {report:?}", digits.len(), report.files);
    assert_eq!(report.files, 404);
    assert_eq!(report.segments, 7947);
    assert_eq!(digits.len() + report.skipped_total(), report.segments);
    assert!((7_700..=7_947).contains(&digits.len()), "{} digits", digits.len());
    assert!(!report.skipped.contains_key(&Skip::NotADigit), "{report:?}");
    let mut per_label = [0usize; 10];
    for d in &digits {
        per_label[usize::from(d.label)] += 1;
    }
    eprintln!("digits per label: {per_label:?}");
    assert!(per_label.iter().all(|&n| n > 500), "{per_label:?}");
    let writers: BTreeSet<&str> = digits.iter().map(|d| d.writer.as_str()).collect();
    let institutions: BTreeMap<&str, usize> = digits.iter().fold(BTreeMap::new(), |mut m, d| {
        *m.entry(d.writer.split('/').next().unwrap()).or_default() += 1;
        m
    });
    eprintln!("{} writers; per institution {institutions:?}", writers.len());
    assert_eq!(institutions.len(), 10);
    assert!((100..=200).contains(&writers.len()), "{} writers", writers.len());

    let started = std::time::Instant::now();
    let (images, labels) = unipen::render_dataset(&digits);
    eprintln!("rendered in {:?}", started.elapsed());
    assert_eq!(labels.len(), digits.len());
    assert_eq!(images.len(), 784 * digits.len());
    let mean = images.iter().map(|&b| f64::from(b) / 255.0).sum::<f64>() / images.len() as f64;
    eprintln!("mean pixel {mean:.4} (MNIST: 0.1307)");
    assert!((0.10..0.16).contains(&mean), "mean pixel {mean}");
}

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/unipen");

fn strokes_of(xy: &[f32], ends: &[u32]) -> Vec<Stroke> {
    let mut start = 0;
    ends.iter()
        .map(|&end| {
            let points = xy[2 * start..2 * end as usize].chunks(2).map(|p| [p[0], p[1]]).collect();
            start = end as usize;
            Stroke { points }
        })
        .collect()
}

#[test]
fn the_same_strokes_give_the_same_bytes_everywhere() {
    let (xy, ends) = common::four_strokes();
    let Rendered::Digit(image) = render_strokes(&strokes_of(&xy, &ends), 280.0, 280.0).unwrap() else {
        panic!("the 4 is a digit");
    };
    assert_eq!(common::fnv1a(&image), common::FOUR_STROKES_FNV1A, "{:#x}", common::fnv1a(&image));
    // The tap is a stray mark: without it, the same image.
    let Rendered::Digit(without) = render_strokes(&strokes_of(&xy[..18], &ends[..2]), 280.0, 280.0).unwrap() else {
        panic!("the 4 is a digit");
    };
    assert_eq!(image, without);
}

#[test]
fn the_fixture_distribution_reads_as_written() {
    let (digits, report) = unipen::load_with_report(std::path::Path::new(FIXTURE)).unwrap();
    let labels: Vec<u8> = digits.iter().map(|d| d.label).collect();
    assert_eq!(labels, [1, 7, 4, 0, 5, 6]);
    assert_eq!((report.files, report.segments), (2, 12));
    let skipped: Vec<(Skip, usize)> = report.skipped.iter().map(|(&k, &v)| (k, v)).collect();
    assert_eq!(
        skipped,
        [
            (Skip::NotADigit, 1),
            (Skip::NotACharacter, 1),
            (Skip::OutOfRange, 1),
            (Skip::NoInk, 1),
            (Skip::Zeros, 1),
            (Skip::Scribble, 1)
        ]
    );
    let writers: Vec<&str> = digits.iter().map(|d| d.writer.as_str()).collect();
    assert_eq!(writers, ["xyz/tester", "xyz/tester", "xyz/tester", "xyz/tester", "xyz/w2.dat", "xyz/w2.dat"]);
    let points = |i: usize| -> Vec<Vec<[f32; 2]>> { digits[i].strokes.iter().map(|s| s.points.clone()).collect() };
    // x at 254 points per inch = 10 per mm, y at 5 per mm, and y flipped to point down.
    assert_eq!(points(0), [vec![[10.0, -60.0], [10.0, -40.0], [10.0, -20.0]]]);
    // Components 1-3: the empty pen-up marker and `.DT` are not components; the hovering pen
    // (component 2) is, but it is not ink.
    assert_eq!(points(1), [vec![[10.0, -60.0], [20.0, -60.0]], vec![[20.0, -60.0], [15.0, -20.0]]]);
    // Components 4 and 6, not 5 between them.
    assert_eq!(points(2), [vec![[10.0, -60.0], [8.0, -40.0], [16.0, -40.0]], vec![[14.0, -52.0], [14.0, -20.0]]]);
    // Points 1.. of component 7 and ..=1 of component 8.
    assert_eq!(points(3), [vec![[15.0, -60.0], [10.0, -40.0], [15.0, -20.0]], vec![[20.0, -40.0], [15.0, -60.0]]]);
    // No resolution: the tablet's points; a third column is ignored; CRLF line ends.
    assert_eq!(points(4)[1], [[10.0, -30.0], [25.0, -30.0]]);
    assert_eq!(points(5)[0].len(), 5);
    for d in &digits {
        let image = render_digit(&d.strokes).unwrap().expect("every digit read renders");
        assert_eq!(image.len(), 784);
    }
    assert_eq!(unipen::load(std::path::Path::new(FIXTURE)).unwrap(), digits);
}

/// Parses `files[0]` (named `xyz/test.dat`) with the others as its includes, by name.
fn parse_files(files: &[(&str, &str)]) -> lenet::Result<unipen::Parsed> {
    let (_, main) = files[0];
    let mut include = |path: &str| match files.iter().find(|(name, _)| *name == path) {
        Some((_, text)) => Ok(text.as_bytes().to_vec()),
        None => Err(lenet::Error::InvalidInput(format!("no file {path}"))),
    };
    unipen::parse("xyz/test.dat", main.as_bytes(), &mut include)
}

fn parse_error(files: &[(&str, &str)]) -> String {
    parse_files(files).expect_err("a bad file").to_string()
}

#[test]
fn bad_files_are_errors_naming_file_and_line() {
    let err = parse_error(&[("main", ".VERSION 1.0\n.INCLUDE loop.dat\n"), ("loop.dat", "\n.INCLUDE loop.dat\n")]);
    assert!(err.starts_with("UNIPEN file include/loop.dat, line 2: includes nested more than 8"), "{err}");
    let err = parse_error(&[("main", ".INCLUDE ../../etc/passwd\n")]);
    assert!(err.contains("xyz/test.dat, line 1: .INCLUDE `../../etc/passwd`: an include path must be"), "{err}");
    let err = parse_error(&[("main", ".INCLUDE /etc/passwd\n")]);
    assert!(err.contains("must be relative"), "{err}");
    let err = parse_error(&[("main", "\n\n.INCLUDE missing.dat\n")]);
    assert!(err.contains("line 3: cannot include missing.dat: invalid input: no file missing.dat"), "{err}");
    let err = parse_error(&[("main", ".PEN_DOWN\n1 2\n3 x\n")]);
    assert!(err.contains("line 3: a point needs numbers in columns 1 and 2, got `3 x`"), "{err}");
    let err = parse_error(&[("main", ".PEN_DOWN\n1 1e300\n")]);
    assert!(err.contains("line 2: coordinate 1e300 is out of range"), "{err}");
    let err = parse_error(&[("main", ".X_POINTS_PER_INCH -3\n")]);
    assert!(err.contains("line 1: .X_POINTS_PER_INCH must be a positive number, got `-3`"), "{err}");
    let err = parse_error(&[("main", ".COORD X P\n")]);
    assert!(err.contains("must name the columns X and Y"), "{err}");
    let err = parse_error(&[("main", ".PEN_DOWN\n1 2\n.SEGMENT CHARACTER 0-x ? \"1\"\n")]);
    assert!(err.contains("xyz/test.dat, line 3: malformed delineation in `.SEGMENT CHARACTER 0-x ? \"1\"`"), "{err}");
    let long = format!(".COMMENT {}\n", "a".repeat(unipen::MAX_LINE_BYTES));
    let err = parse_error(&[("main", &long)]);
    assert!(err.contains("line 1: a line of 16393 bytes, more than the 16384 accepted"), "{err}");
}

#[test]
fn claims_beyond_the_data_are_skipped_not_followed() {
    // A delineation up to the largest usize, and point ranges past a component's end.
    let text = ".PEN_DOWN\n0 0\n5 9\n.PEN_UP\n\
                .SEGMENT CHARACTER 0-18446744073709551615 ? \"1\"\n\
                .SEGMENT CHARACTER 0:0-0:7 ? \"1\"\n\
                .SEGMENT CHARACTER 0:1-0:0 ? \"1\"\n\
                .SEGMENT CHARACTER 0:1 ? \"1\"\n\
                .SEGMENT CHARACTER 0 ? \"1\"\n";
    let parsed = parse_files(&[("main", text)]).unwrap();
    assert_eq!(parsed.report.skipped.get(&Skip::OutOfRange), Some(&3));
    assert_eq!(parsed.report.skipped.get(&Skip::Dot), Some(&1), "one point is a dot");
    assert_eq!(parsed.digits.len(), 1);
    assert_eq!(parsed.digits[0].strokes[0].points, [[0.0, -0.0], [5.0, -9.0]]);
}

#[test]
fn a_split_by_writer_keeps_each_writer_on_one_side() {
    let mut digits = unipen::load(std::path::Path::new(FIXTURE)).unwrap();
    // Ten writers of six digits each.
    digits = (0..10)
        .flat_map(|w| digits.iter().cloned().map(move |d| unipen::Digit { writer: format!("w{w}"), ..d }))
        .collect();
    let (kept, held) = unipen::split_by_writer(&digits, 0.25, 7).unwrap();
    assert_eq!(kept.len() + held.len(), 60);
    assert_eq!(held.len(), 18, "whole writers until at least 25 % of the digits");
    let writers = |set: &[unipen::Digit]| set.iter().map(|d| d.writer.clone()).collect::<BTreeSet<_>>();
    assert!(writers(&kept).is_disjoint(&writers(&held)));
    assert_eq!(unipen::split_by_writer(&digits, 0.25, 7).unwrap(), (kept, held.clone()));
    assert_ne!(unipen::split_by_writer(&digits, 0.25, 8).unwrap().1, held, "another seed, other writers");
    assert_eq!(unipen::split_by_writer(&digits, 0.0, 7).unwrap().1.len(), 0);
    assert_eq!(unipen::split_by_writer(&digits, 1.0, 7).unwrap().0.len(), 0);
    for bad in [-0.1, 1.5, f64::NAN] {
        assert!(unipen::split_by_writer(&digits, bad, 7).unwrap_err().to_string().contains("in [0, 1]"));
    }
    let (images, labels) = unipen::render_dataset(&digits[..6]);
    assert_eq!((images.len(), labels), (6 * 784, vec![1, 7, 4, 0, 5, 6]));
    let set = unipen::dataset(&digits[..6]).unwrap();
    assert_eq!(set.images.dim(), (6, 1, 28, 28));
    assert_eq!(set.images[[2, 0, 10, 10]], f32::from(images[2 * 784 + 10 * 28 + 10]) / 255.0);
}
