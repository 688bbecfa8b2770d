//! LeNet-5 as a whole: gradient check of every parameter tensor against finite differences,
//! the SGD step's contract, divergence recovery.
#![cfg(not(target_arch = "wasm32"))]

use lenet::model::{Gradients, Workspace, PARAMETER_NAMES};
use lenet::optim::OptimizerConfig;
use lenet::session::{Session, Settings};
use lenet::LeNet5;
use ndarray::Array4;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_images(n: usize, seed: u64) -> Array4<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array4::from_shape_simple_fn((n, 1, 28, 28), || rng.random::<f32>())
}

fn loss(model: &LeNet5, images: &Array4<f32>, labels: &[u8]) -> f32 {
    let logits = model.logits(images.view()).unwrap();
    lenet::loss::cross_entropy(logits.view(), labels).unwrap()
}

/// Central differences of the mean cross-entropy with respect to sampled elements of every
/// parameter tensor, in f32, against backward's gradients.
///
/// ReLU and max-pooling make the loss piecewise smooth: a perturbation can cross a kink, where
/// a finite difference means nothing. Each element is therefore differenced with ε = 10⁻³ and
/// ε = 3·10⁻⁴; where the two disagree by more than 2 % plus 10⁻³, the element sits near a kink
/// and is left out (at most a quarter of them may be). Elsewhere the tolerance is 3 % of the
/// gradient plus 10⁻³ absolute: the f32 forward pass rounds a loss near 2.3 to about
/// 2·10⁻⁷, which a difference over 2ε = 6·10⁻⁴ turns into ~5·10⁻⁴. (The PyTorch reference
/// test holds the same gradients to 10⁻⁵.)
#[test]
fn lenet5_gradients_match_finite_differences() {
    let mut model = LeNet5::new(11);
    // Positive biases keep most ReLUs away from their kink, so that few finite differences
    // straddle one; they vary so that their own gradients differ.
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for t in model.parameters_mut() {
        if t.len() <= 120 {
            t.iter_mut().for_each(|b| *b = 0.4 + rng.random::<f32>() * 0.2);
        }
    }
    let images = random_images(3, 13);
    let labels = [4u8, 9, 0];
    let mut ws = Workspace::default();
    let mut grads = Gradients::zeros_like(&model);
    model.forward(images.view(), &mut ws).unwrap();
    model.backward(&mut ws, &labels, &mut grads).unwrap();

    let (mut checked, mut kinks) = (0, 0);
    for (t, name) in PARAMETER_NAMES.iter().enumerate() {
        let len = model.parameters()[t].len();
        for k in 0..12 {
            let i = (k * 7919 + 13) % len;
            let analytic = grads.tensors()[t][i];
            let mut difference = |eps: f32| {
                let original = model.parameters()[t][i];
                model.parameters_mut()[t][i] = original + eps;
                let plus = loss(&model, &images, &labels);
                model.parameters_mut()[t][i] = original - eps;
                let minus = loss(&model, &images, &labels);
                model.parameters_mut()[t][i] = original;
                (plus - minus) / (2.0 * eps)
            };
            let (wide, narrow) = (difference(1e-3), difference(3e-4));
            if (wide - narrow).abs() > 2e-2 * wide.abs().max(narrow.abs()) + 1e-3 {
                kinks += 1;
                continue;
            }
            checked += 1;
            assert!(
                (analytic - narrow).abs() <= 3e-2 * analytic.abs() + 1e-3,
                "{name}[{i}]: backward gives {analytic}, finite differences {narrow} (ε = 10⁻³: {wide})"
            );
        }
    }
    eprintln!("checked {checked} elements, left out {kinks} near kinks");
    assert!(kinks * 4 <= checked + kinks, "{kinks} of {} sampled elements sat on kinks", checked + kinks);
}

#[test]
fn train_step_returns_the_loss_before_its_update_and_lowers_it() {
    let images = random_images(8, 21);
    let labels = [0u8, 1, 2, 3, 4, 5, 6, 7];
    let model = LeNet5::new(5);
    let before = loss(&model, &images, &labels);
    let config =
        OptimizerConfig { learning_rate: 0.01, momentum: 0.9, weight_decay: 0.0, ..OptimizerConfig::default() };
    let mut session = Session::with_model(model, Settings::manual(config)).unwrap();
    let first = session.train_batch(images.view(), &labels).unwrap().loss;
    assert_eq!(first, before);
    let mut last = first;
    for _ in 0..30 {
        last = session.train_batch(images.view(), &labels).unwrap().loss;
    }
    assert!(last < 0.5 * first, "memorising 8 images: loss {first} → {last}");
    assert_eq!(session.progress().step, 31);
}

#[test]
fn bad_batches_are_rejected_and_change_nothing() {
    let mut trainer = Session::with_model(LeNet5::new(1), Settings::manual(OptimizerConfig::default())).unwrap();
    let before = trainer.model().clone();
    let images = random_images(2, 3);
    let err = trainer.train_batch(images.view(), &[1]).unwrap_err();
    assert!(err.to_string().contains("2 images but 1 labels"), "{err}");
    let err = trainer.train_batch(images.view(), &[1, 10]).unwrap_err();
    assert!(err.to_string().contains("label 10 at index 1"), "{err}");
    let mut bright = images.clone();
    bright[[1, 0, 27, 0]] = 1.5;
    let err = trainer.train_batch(bright.view(), &[1, 2]).unwrap_err();
    assert!(err.to_string().contains("pixel (row 27, column 0) of image 1 is 1.5"), "{err}");
    let err = trainer.train_batch(Array4::zeros((2, 1, 28, 27)).view(), &[1, 2]).unwrap_err();
    assert!(err.to_string().contains("expected shape (N ≥ 1, 1, 28, 28), got (2, 1, 28, 27)"), "{err}");
    assert_eq!(trainer.model(), &before);
    assert_eq!(trainer.progress().step, 0);
}

#[test]
fn learning_rate_10_for_20_steps_keeps_every_weight_finite() {
    let images = random_images(16, 4);
    let labels: Vec<u8> = (0..16).map(|i| (i % 10) as u8).collect();
    let config = OptimizerConfig { learning_rate: 10.0, ..OptimizerConfig::default() };
    let mut trainer = Session::with_model(LeNet5::new(2), Settings::manual(config)).unwrap();
    let mut diverged = 0;
    for _ in 0..20 {
        let outcome = trainer.train_batch(images.view(), &labels).unwrap();
        match outcome.diverged {
            None => assert!(outcome.loss.is_finite()),
            Some(message) => {
                assert!(message.contains("weights were") || message.contains("restored"), "{message}");
                diverged += 1;
            }
        }
        assert!(trainer.model().is_finite());
    }
    assert!(diverged > 0, "learning rate 10 never diverged: the test exercises nothing");
    // Predictions still work after the storm.
    let p = trainer.model().predict(images.view()).unwrap();
    assert!(p.iter().all(|v| v.is_finite()));
    eprintln!("learning rate 10: {diverged} of 20 steps refused as diverging");
}

#[test]
fn settings_out_of_range_are_refused_by_name() {
    let model = LeNet5::new(0);
    for (config, word) in [
        (Settings { learning_rate: 0.0, ..Settings::default() }, "learning_rate"),
        (Settings { learning_rate: f32::NAN, ..Settings::default() }, "learning_rate"),
        (Settings { momentum: 1.0, ..Settings::default() }, "momentum"),
        (Settings { weight_decay: -1.0, ..Settings::default() }, "weight_decay"),
        (Settings { batch_size: 0, ..Settings::default() }, "batch_size"),
        (Settings { batch_size: 5000, ..Settings::default() }, "batch_size"),
        (Settings { shard_size: 0, ..Settings::default() }, "shard_size"),
    ] {
        let err = Session::with_model(model.clone(), config).unwrap_err().to_string();
        assert!(err.contains(word), "{err}");
    }
}
