//! Teaching real writers their own handwriting with the page's recipe, natively: the two writers of
//! the UNIPEN development subset the shipped network reads worst label the first five of each
//! digit they wrote, are taught them, and more of their other digits are read right after,
//! while MNIST's test accuracy drops by at most 0.3 points.
//!
//! Needs UNIPEN (`$UNIPEN_DIR`, or `../shared/data/unipen/train_r01_v07` beside the repository)
//! and MNIST (`$MNIST_DIR`, or `../shared/data/mnist`); where either is missing it says so and
//! passes without reading (a user's machine need not hold them).
#![cfg(not(target_arch = "wasm32"))]

use std::path::PathBuf;

use lenet::data::idx::{self, Split};
use lenet::data::unipen;
use lenet::teach::{self, TeachRecipe, Teaching};
use lenet::weights;

fn shared(env: &str, relative: &str, probe: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(env) {
        return Some(PathBuf::from(dir));
    }
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/")).join(relative);
    dir.join(probe).exists().then_some(dir)
}

#[test]
fn teaching_the_worst_read_writers_helps_them_and_keeps_mnist() {
    let (Some(unipen_dir), Some(mnist_dir)) = (
        shared("UNIPEN_DIR", "unipen/train_r01_v07", "data"),
        shared("MNIST_DIR", "mnist", "t10k-labels-idx1-ubyte.gz"),
    ) else {
        eprintln!("UNIPEN or MNIST not found (set UNIPEN_DIR and MNIST_DIR): teaching test not run");
        return;
    };
    let started = std::time::Instant::now();
    let model = weights::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/www/public/lenet5-mnist.safetensors"
    )))
    .unwrap();
    let digits = unipen::load(&unipen_dir).unwrap();
    let replay = idx::load_digits(&mnist_dir, Split::Train).unwrap();
    let mnist_test = idx::load_digits(&mnist_dir, Split::Test).unwrap();
    let mnist_before = teach::accuracy(&model, &mnist_test).unwrap().unwrap();
    eprintln!("MNIST test before: {:.2} %", 100.0 * mnist_before);
    assert!(mnist_before > 0.99, "the shipped weights read MNIST at {mnist_before}");

    let ranked = teach::rank_writers(&model, &digits, 5).unwrap();
    assert!(ranked.len() >= 10, "{} writers with more than 5 of every digit", ranked.len());
    assert!(ranked.windows(2).all(|w| w[0].accuracy() <= w[1].accuracy()), "not worst first");
    // The two worst-read writers: there is something to teach them.
    for writer in &ranked[..2] {
        assert!(writer.correct < writer.digits.len(), "{}: every digit read right", writer.writer);
        let taken = teach::take_per_digit(writer.digits.labels(), 5).unwrap();
        let (others, learn) = teach::split(&writer.digits, &taken).unwrap();
        assert_eq!(learn.len(), 50);
        let recipe = TeachRecipe::default();
        let mut teaching = Teaching::new(model.clone(), &learn, others, &replay, &recipe).unwrap();
        let before = teaching.held_out_accuracy().unwrap().unwrap();
        assert_eq!(before, teach::accuracy(&model, teaching.held_out()).unwrap().unwrap());
        teaching.run().unwrap();
        assert_eq!(teaching.steps_taken(), recipe.steps);
        let after = teaching.held_out_accuracy().unwrap().unwrap();
        let mnist_after = teach::accuracy(teaching.model(), &mnist_test).unwrap().unwrap();
        eprintln!(
            "{}: other {} digits {:.2} % → {:.2} %, MNIST test {:.2} % → {:.2} %",
            writer.writer,
            teaching.held_out().len(),
            100.0 * before,
            100.0 * after,
            100.0 * mnist_before,
            100.0 * mnist_after
        );
        // Both read more of their other digits right after (53 → 54 of 55, 23 → 24 of 24).
        assert!(after > before, "{}: teaching did not help ({before} → {after})", writer.writer);
        assert!(mnist_before - mnist_after <= 0.003, "MNIST {mnist_before} → {mnist_after}");
    }
    eprintln!("in {:?}", started.elapsed());
}
