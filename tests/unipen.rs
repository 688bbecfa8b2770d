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
    assert!(report.skipped.get(&Skip::NotADigit).is_none(), "{report:?}");
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
