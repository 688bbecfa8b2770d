//! Training on real MNIST, natively.
//!
//! The full-data test reads MNIST's IDX files from `$MNIST_DIR`, or else from
//! `../shared/data/mnist` beside the repository; where neither exists it says so and passes
//! without training (a user's machine need not hold MNIST; CI's does).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::path::PathBuf;

use lenet::data::idx::{load, Split};
use lenet::train::{train_epoch, Recipe, Trainer};
use lenet::LeNet5;
use ndarray::s;

fn mnist_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("MNIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist")));
    dir.is_dir().then_some(dir)
}

#[test]
fn one_epoch_of_the_default_recipe_reaches_98_5_percent() {
    let Some(dir) = mnist_dir() else {
        eprintln!("MNIST not found (set MNIST_DIR): full-data training test not run");
        return;
    };
    let train_set = load(&dir, Split::Train).unwrap();
    let test_set = load(&dir, Split::Test).unwrap();
    let recipe = Recipe { epochs: 1, ..Recipe::default() };
    let mut trainer = Trainer::new(LeNet5::new(recipe.seed), recipe.sgd).unwrap();
    let mut losses = Vec::new();
    train_epoch(&mut trainer, &train_set, &recipe, 0, |r| losses.push(r.loss)).unwrap();
    assert_eq!(losses.len(), 60_000 / 32);
    let result = trainer.evaluate(test_set.images.view(), &test_set.labels, 1000).unwrap();
    eprintln!("one epoch, seed 0: test accuracy {:.2} %, loss {:.4}", 100.0 * result.accuracy, result.loss);
    assert!(result.accuracy >= 0.985, "test accuracy {} after one epoch", result.accuracy);
    // An untrained network predicts nearly uniformly: its loss starts near ln 10 = 2.30.
    assert!((losses[0] - 10f32.ln()).abs() < 1.0, "the first loss is {}, not near ln 10", losses[0]);
}

#[test]
fn seed_0_gives_the_golden_probabilities() {
    let test = common::small_test();
    let p = LeNet5::new(0).predict(test.images.slice(s![0..2, .., .., ..])).unwrap();
    for (row, golden) in p.rows().into_iter().zip(common::SEED0_PROBABILITIES) {
        for (a, b) in row.iter().zip(golden) {
            assert!((a - b).abs() <= 1e-6, "{row} vs {golden:?}");
        }
    }
}
