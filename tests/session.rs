//! The training session: exact resume, the same weights for any thread count, divergence as
//! an outcome, evaluation, settings, on the committed real-digit fixture.
#![cfg(not(target_arch = "wasm32"))]

use lenet::data::augment::Augment;
use lenet::data::digits::Digits;
use lenet::data::idx::parse_digits;
use lenet::model::{Gradients, Workspace};
use lenet::optim::{self, OptimizerKind, OptimizerState};
use lenet::session::{Session, Settings};
use lenet::train::LrSchedule;
use lenet::{weights, LeNet5};
use ndarray::{s, Array4};

fn fixture() -> (Digits, Digits) {
    let train = parse_digits(
        include_bytes!("fixtures/mnist-small/train-images-idx3-ubyte.gz"),
        "train images",
        include_bytes!("fixtures/mnist-small/train-labels-idx1-ubyte.gz"),
        "train labels",
    )
    .unwrap();
    let test = parse_digits(
        include_bytes!("fixtures/mnist-small/t10k-images-idx3-ubyte.gz"),
        "test images",
        include_bytes!("fixtures/mnist-small/t10k-labels-idx1-ubyte.gz"),
        "test labels",
    )
    .unwrap();
    (train, test)
}

fn session(settings: Settings) -> Session {
    let (train, test) = fixture();
    let mut s = Session::new(settings).unwrap();
    s.set_train_data(train).unwrap();
    s.set_test_data(test);
    s
}

fn run(s: &mut Session, steps: u64) {
    for _ in 0..steps {
        let outcome = s.step().unwrap();
        assert_eq!(outcome.diverged, None, "step {}", outcome.step);
    }
}

fn weights_of(s: &Session) -> Vec<u8> {
    weights::to_safetensors(s.model()).unwrap()
}

/// A recipe that crosses an epoch of the 2,500-digit fixture within the test (batch 64: an
/// epoch is 39 steps and a bit), with augmentation and a schedule, so resume must get the
/// order, the cursor, the augmentation and the rate right.
fn recipe(optimizer: OptimizerKind) -> Settings {
    let learning_rate = if optimizer == OptimizerKind::Sgd { 0.02 } else { 1e-3 };
    Settings { optimizer, learning_rate, batch_size: 64, shard_size: 16, schedule_steps: 120, ..Settings::default() }
}

#[test]
fn a_resumed_run_equals_the_uninterrupted_run_bit_for_bit() {
    for optimizer in [OptimizerKind::Sgd, OptimizerKind::Adam, OptimizerKind::AdamW] {
        let mut whole = session(recipe(optimizer));
        run(&mut whole, 60);

        let mut first = session(recipe(optimizer));
        run(&mut first, 35);
        let checkpoint = first.checkpoint().unwrap();
        drop(first);
        // A fresh session with other settings: the checkpoint's own apply.
        let mut resumed = session(Settings { seed: 99, learning_rate: 0.5, ..Settings::default() });
        resumed.restore(&checkpoint).unwrap();
        assert_eq!(resumed.progress().step, 35);
        run(&mut resumed, 25);
        assert_eq!(resumed.progress(), whole.progress(), "{optimizer:?}");
        assert!(weights_of(&resumed) == weights_of(&whole), "{optimizer:?}: resumed weights differ");
        assert_eq!(resumed.checkpoint().unwrap(), whole.checkpoint().unwrap(), "{optimizer:?}");
    }
}

#[test]
fn a_run_without_its_momentum_is_another_run() {
    // The check above would pass vacuously if the optimizer state did not matter.
    let mut whole = session(recipe(OptimizerKind::Sgd));
    run(&mut whole, 30);
    let mut other = session(recipe(OptimizerKind::Sgd));
    run(&mut other, 20);
    let model = other.model().clone();
    other.set_model(model).unwrap(); // clears momentum
    run(&mut other, 10);
    assert!(weights_of(&other) != weights_of(&whole));
}

#[test]
fn the_weights_do_not_depend_on_the_thread_count() {
    let mut one = session(recipe(OptimizerKind::Sgd));
    run(&mut one, 20);
    // 3 and 5 threads split a step's shards unevenly; 9 leaves some idle.
    for threads in [2, 3, 4, 5, 9] {
        let mut many = session(recipe(OptimizerKind::Sgd));
        many.set_threads(threads).unwrap();
        run(&mut many, 20);
        assert!(weights_of(&many) == weights_of(&one), "{threads} threads gave other weights");
    }
    // Changing the count in the middle of a run changes nothing either.
    let mut changed = session(recipe(OptimizerKind::Sgd));
    changed.set_threads(3).unwrap();
    run(&mut changed, 10);
    changed.set_threads(2).unwrap();
    run(&mut changed, 10);
    assert!(weights_of(&changed) == weights_of(&one));
}

#[test]
fn a_thread_count_past_the_limit_is_refused_and_the_session_trains_on() {
    let mut s = session(recipe(OptimizerKind::Sgd));
    s.set_threads(2).unwrap();
    let err = s.set_threads(Session::MAX_THREADS + 1).unwrap_err().to_string();
    assert!(err.contains("threads must be from 1 to 256, got 257"), "{err}");
    run(&mut s, 2);
    assert_eq!(s.progress().step, 2);
}

#[test]
fn one_shard_is_the_plain_batch_gradient() {
    // Shards of 64 and of 16 sum the gradient in another order: close, not equal.
    let mut sharded = session(Settings { augment: None, ..recipe(OptimizerKind::Sgd) });
    let mut whole = session(Settings { augment: None, shard_size: 64, ..recipe(OptimizerKind::Sgd) });
    run(&mut sharded, 5);
    run(&mut whole, 5);
    let (a, b) = (sharded.model().parameters(), whole.model().parameters());
    let max = a
        .iter()
        .zip(b.iter())
        .flat_map(|(x, y)| x.iter().zip(y.iter()))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(max < 1e-5, "largest difference {max}");
}

#[test]
fn a_checkpoint_refuses_other_data_and_weights_files_are_named() {
    let mut s = session(recipe(OptimizerKind::Sgd));
    run(&mut s, 3);
    let checkpoint = s.checkpoint().unwrap();
    let (train, _) = fixture();
    let mut other = Session::new(Settings::default()).unwrap();
    let half = Digits::new(train.images()[..784 * 1000].to_vec(), train.labels()[..1000].to_vec()).unwrap();
    other.set_train_data(half).unwrap();
    let before = weights_of(&other);
    let err = other.restore(&checkpoint).unwrap_err().to_string();
    assert!(err.contains("other training data") && err.contains("1000 digits"), "{err}");
    assert!(weights_of(&other) == before);
    let err = other.restore(&weights_of(&s)).unwrap_err().to_string();
    assert!(err.contains("a weights file, not a checkpoint"), "{err}");
    let err = other.restore(&checkpoint[..100]).unwrap_err().to_string();
    assert!(err.starts_with("checkpoint file: not a valid safetensors file"), "{err}");
}

#[test]
fn whether_a_checkpoint_fits_is_what_restore_decides() {
    let mut s = session(recipe(OptimizerKind::Adam));
    run(&mut s, 3);
    let checkpoint = s.checkpoint().unwrap();
    let (train, test) = fixture();

    // Other settings and weights, the same digits: it fits, and restore takes it.
    let mut same = session(Settings { seed: 7, ..Settings::default() });
    assert!(same.checkpoint_fits(&checkpoint).unwrap());
    same.restore(&checkpoint).unwrap();
    assert_eq!(same.progress().step, 3);

    // The same number of digits with one label changed: the count alone would pass it.
    let mut labels = train.labels().to_vec();
    labels[0] = (labels[0] + 1) % 10;
    let relabelled = Digits::new(train.images().to_vec(), labels).unwrap();
    assert_eq!(relabelled.len(), train.len());
    let mut other = Session::new(Settings::default()).unwrap();
    other.set_train_data(relabelled).unwrap();
    other.set_test_data(test);
    let before = other.checkpoint().unwrap();
    assert!(!other.checkpoint_fits(&checkpoint).unwrap());
    let err = other.restore(&checkpoint).unwrap_err().to_string();
    assert!(err.contains("other training data") && err.contains("2500 digits"), "{err}");
    assert_eq!(other.checkpoint().unwrap(), before, "neither the query nor the refused restore changes the session");

    // Fewer digits: it does not fit either.
    let mut half = Session::new(Settings::default()).unwrap();
    half.set_train_data(Digits::new(train.images()[..784 * 1000].to_vec(), train.labels()[..1000].to_vec()).unwrap())
        .unwrap();
    assert!(!half.checkpoint_fits(&checkpoint).unwrap());

    // Bytes that are no checkpoint are an error, not a "no": resuming them would fail for
    // another reason than the data.
    let err = same.checkpoint_fits(b"not a checkpoint at all").unwrap_err().to_string();
    assert!(err.starts_with("checkpoint file: not a valid safetensors file"), "{err}");
    let err = same.checkpoint_fits(&weights_of(&s)).unwrap_err().to_string();
    assert!(err.contains("a weights file, not a checkpoint"), "{err}");
    let err = same.checkpoint_fits(&checkpoint[..100]).unwrap_err().to_string();
    assert!(err.starts_with("checkpoint file: not a valid safetensors file"), "{err}");
    assert!(same.checkpoint_fits(&[]).is_err());
}

#[test]
fn divergence_is_an_outcome_and_keeps_finite_weights() {
    let mut s = session(Settings { learning_rate: 1e6, ..recipe(OptimizerKind::Sgd) });
    let mut diverged = None;
    for _ in 0..10 {
        let outcome = s.step().unwrap();
        if let Some(reason) = outcome.diverged {
            diverged = Some((outcome.step, reason));
            break;
        }
    }
    let (step, reason) = diverged.expect("learning rate 10⁶ diverges within 10 steps");
    assert!(reason.contains("restored") || reason.contains("left as they were"), "{reason}");
    assert!(s.model().is_finite());
    assert_eq!(s.progress().step, step - 1, "a diverged step is not counted");
}

#[test]
fn evaluation_counts_add_up_and_come_in_passes() {
    let mut s = session(Settings { eval_limit: 300, ..recipe(OptimizerKind::Sgd) });
    run(&mut s, 40);
    assert_eq!(s.progress().test_count, 300);
    assert_eq!(s.evaluate(250).unwrap(), None);
    let result = s.evaluate(250).unwrap().expect("the pass completes at 300");
    assert_eq!(result.count, 300);
    let total: u64 = result.confusion.iter().flatten().sum();
    let diagonal: u64 = (0..10).map(|d| result.confusion[d][d]).sum();
    assert_eq!(total, 300);
    assert_eq!(diagonal as usize, result.correct);
    assert!((result.accuracy - result.correct as f32 / 300.0).abs() < 1e-6);
    for d in 0..10 {
        let row: u64 = result.confusion[d].iter().sum();
        assert!((result.per_class[d] - result.confusion[d][d] as f32 / row as f32).abs() < 1e-6);
    }
    assert!(result.accuracy > 0.3, "40 steps of 64 reach {}: no better than chance", result.accuracy);
    assert_eq!(result.step, 40);

    // `usize::MAX` after a partial pass finishes it (the end had wrapped, and the pass never
    // completed); the counts are those of one pass in a single call.
    assert_eq!(s.evaluate(3).unwrap(), None);
    assert_eq!(s.evaluate(usize::MAX).unwrap(), Some(result));
}

#[test]
fn settings_merge_by_name_and_refuse_what_is_wrong() {
    let base = Settings::default();
    let merged = base.merged(r#"{ "learning_rate": 0.5, "optimizer": "adamw" }"#).unwrap();
    assert_eq!(merged.learning_rate, 0.5);
    assert_eq!(merged.optimizer, OptimizerKind::AdamW);
    assert_eq!(merged.batch_size, base.batch_size);
    // Augmentation merges field by field, and switches off with null and on again from the default.
    let rotated = base.merged(r#"{ "augment": { "rotate": 3 } }"#).unwrap();
    assert_eq!(rotated.augment, Some(Augment { rotate: 3.0, ..base.augment.unwrap() }));
    let plain = base.merged(r#"{ "augment": null }"#).unwrap();
    assert_eq!(plain.augment, None);
    let again = plain.merged(r#"{ "augment": { "shear": 2 } }"#).unwrap();
    assert_eq!(again.augment, Some(Augment { shear: 2.0, ..Augment::default() }));
    for (patch, words) in [
        (serde_json::json!({ "augment": { "rotation": 3 } }), "unknown setting `augment.rotation`"),
        (serde_json::json!({ "learning_rat": 0.1 }), "unknown setting `learning_rat`"),
        (
            serde_json::json!({ "learning_rate": "0,01" }),
            "setting `learning_rate` cannot be \"0,01\": expected a number such as",
        ),
        (serde_json::json!({ "batch_size": 1.5 }), "`batch_size` cannot be 1.5: expected a whole number ≥ 0"),
        (serde_json::json!({ "learning_rate": null }), "NaN"),
        (serde_json::json!({ "learning_rate": -1 }), "learning_rate must be a positive"),
        (serde_json::json!({ "optimizer": "rmsprop" }), "setting `optimizer`"),
        (serde_json::json!({ "batch_size": 2.5 }), "setting `batch_size`"),
        (serde_json::json!([1, 2]), "settings must be an object"),
    ] {
        let err = base.merged(&patch.to_string()).unwrap_err().to_string();
        assert!(err.contains(words), "{patch}: {err}");
    }
}

#[test]
fn no_data_is_an_error_not_a_panic() {
    let mut s = Session::new(Settings::default()).unwrap();
    assert!(s.step().unwrap_err().to_string().contains("no training data"));
    assert!(s.evaluate(10).unwrap_err().to_string().contains("no held-out data"));
    assert!(s.set_train_data(Digits::default()).is_err());
}

#[test]
fn a_checkpoint_whose_weights_or_moments_training_cannot_go_on_from_is_refused() {
    let mut s = session(Settings { batch_size: 16, ..recipe(OptimizerKind::Adam) });
    run(&mut s, 1);
    let bytes = s.checkpoint().unwrap();
    let (model, state, first, second) = weights::checkpoint_from_bytes(&bytes).unwrap();
    let before = weights_of(&s);
    // Each had restored, and then every step diverged and none was counted.
    let mut wild = model.clone();
    wild.fc3.weight[[0, 0]] = 1e30;
    let file = weights::checkpoint_to_bytes(&wild, &state, &first, &second).unwrap();
    let error = s.restore(&file).unwrap_err().to_string();
    assert!(
        error.contains("tensor `fc3.weight` holds 1e+30 at flat index 0, larger in magnitude than 10000"),
        "{error}"
    );
    let mut negative = second.clone();
    negative[9][3] = -1.0;
    let file = weights::checkpoint_to_bytes(&model, &state, &first, &negative).unwrap();
    let error = s.restore(&file).unwrap_err().to_string();
    assert!(error.contains("tensor `optimizer.second.fc3.bias` holds -1 at flat index 3"), "{error}");
    assert_eq!(weights_of(&s), before);
    s.restore(&bytes).unwrap();
    assert_eq!(s.step().unwrap().diverged, None);
}

#[test]
fn a_checkpoint_with_impossible_counters_or_normalisation_is_refused_and_changes_nothing() {
    let mut s = session(Settings { batch_size: 16, ..Settings::default() });
    run(&mut s, 2);
    let bytes = s.checkpoint().unwrap();
    let (model, state, first, second) = weights::checkpoint_from_bytes(&bytes).unwrap();
    let before = weights_of(&s);

    let huge = state.replacen("\"step\":2", "\"step\":18446744073709551615", 1);
    assert_ne!(huge, state);
    let file = weights::checkpoint_to_bytes(&model, &huge, &first, &second).unwrap();
    let error = s.restore(&file).unwrap_err().to_string();
    assert!(error.contains("must be at most 2^53"), "{error}");

    let mut flat = model.clone();
    flat.input_std = 0.0;
    let file = weights::checkpoint_to_bytes(&flat, &state, &first, &second).unwrap();
    let error = s.restore(&file).unwrap_err().to_string();
    assert!(error.contains("input_std must be a positive finite number"), "{error}");

    let partial = weights::checkpoint_to_bytes(&model, &state, &first[..3], &second).unwrap_err().to_string();
    assert!(partial.contains("3 buffers"), "{partial}");
    assert_eq!(weights_of(&s), before);
    s.restore(&bytes).unwrap();
    assert_eq!(weights_of(&s), before);
}

#[test]
fn the_update_equals_the_optimizers_whole_tensor_step_bit_for_bit() {
    // The session sums the shards' gradients, backs up and steps piece by piece; the plain way
    // is one pass after another over whole tensors. Every element's arithmetic is the same, so
    // are the bits, for every optimizer, over steps that carry momentum and moments along.
    let (train, _) = fixture();
    for (optimizer, threads) in
        [OptimizerKind::Sgd, OptimizerKind::Adam, OptimizerKind::AdamW].into_iter().flat_map(|o| [(o, 1), (o, 3)])
    {
        let settings = Settings { augment: None, schedule: LrSchedule::Constant, ..recipe(optimizer) };
        let mut s = Session::new(settings).unwrap();
        s.set_threads(threads).unwrap();
        let mut model = s.model().clone();
        let lengths: Vec<usize> = model.parameters().iter().map(|t| t.len()).collect();
        let mut state = OptimizerState::new(&lengths);
        let mut workspace = Workspace::default();
        for step in 0..3 {
            let range = step * 64..(step + 1) * 64;
            let pixels: Vec<f32> =
                train.images()[range.start * 784..range.end * 784].iter().map(|&p| f32::from(p) / 255.0).collect();
            let images = Array4::from_shape_vec((64, 1, 28, 28), pixels).unwrap();
            let labels = &train.labels()[range];
            s.train_batch(images.view(), labels).unwrap();

            let mut sum: Vec<Vec<f32>> = lengths.iter().map(|&n| vec![0.0; n]).collect();
            for shard in 0..4 {
                let mut grads = Gradients::zeros_like(&model);
                let part = shard * 16..(shard + 1) * 16;
                model.forward(images.slice(s![part.clone(), .., .., ..]), &mut workspace).unwrap();
                model.backward(&mut workspace, &labels[part], &mut grads).unwrap();
                for (total, g) in sum.iter_mut().zip(grads.tensors()) {
                    for (t, &v) in total.iter_mut().zip(g) {
                        *t += 0.25 * v;
                    }
                }
            }
            let grads: Vec<&[f32]> = sum.iter().map(Vec::as_slice).collect();
            optim::step(&settings.optimizer_config(), &mut state, &mut model.parameters_mut(), &grads);
        }
        assert!(model.parameters() == s.model().parameters(), "{optimizer:?}, {threads} threads: the weights differ");
        assert_ne!(model.parameters(), LeNet5::new(settings.seed).parameters(), "nothing was trained");
    }
}

#[test]
fn a_diverged_step_restores_the_weights_it_says_on_any_thread_count() {
    // The update backs the weights up piece by piece as it goes: a step that breaks them must
    // give back exactly the weights before it (or, when the loss itself is no longer finite,
    // those before the step that broke them).
    for (optimizer, learning_rate) in [(OptimizerKind::Sgd, 1e6), (OptimizerKind::Adam, 3e4)] {
        for threads in [1, 3] {
            // A few sound steps first, so that the backup was written over by real updates.
            let mut s = session(recipe(optimizer));
            s.set_threads(threads).unwrap();
            run(&mut s, 3);
            s.set_settings(Settings { learning_rate, ..recipe(optimizer) }).unwrap();
            let mut before: Vec<Vec<u8>> = Vec::new();
            let reason = (0..10)
                .find_map(|_| {
                    before.push(weights_of(&s));
                    s.step().unwrap().diverged
                })
                .unwrap_or_else(|| panic!("{optimizer:?} at {learning_rate} did not diverge in 10 steps"));
            let expected = if reason.contains("the last good weights were restored") {
                &before[before.len() - 1]
            } else {
                assert!(reason.contains("the weights before the previous update were restored"), "{reason}");
                &before[before.len() - 2]
            };
            assert!(weights_of(&s) == *expected, "{optimizer:?}, {threads} threads: {reason}");
        }
    }
}
