//! Data-parallel steps: a step's shards computed by several replicas of a session and applied
//! by each give the same bits as `Session::step`, for any number of replicas.
#![cfg(not(target_arch = "wasm32"))]

use lenet::data::digits::Digits;
use lenet::data::idx::parse_digits;
use lenet::optim::OptimizerKind;
use lenet::session::{Session, Settings, ShardGradient, StepOutcome};
use lenet::weights;

fn train_digits() -> Digits {
    parse_digits(
        include_bytes!("fixtures/mnist-small/train-images-idx3-ubyte.gz"),
        "train images",
        include_bytes!("fixtures/mnist-small/train-labels-idx1-ubyte.gz"),
        "train labels",
    )
    .unwrap()
}

fn session(settings: Settings, train: &Digits) -> Session {
    let mut s = Session::new(settings).unwrap();
    s.set_train_data(train.clone()).unwrap();
    s
}

/// Contiguous shares of `0..shards` for `replicas` replicas, as the page's workers split them:
/// the first ones get one more when the count does not divide.
fn shares(shards: usize, replicas: usize) -> Vec<std::ops::Range<usize>> {
    let (base, extra) = (shards / replicas, shards % replicas);
    let mut start = 0;
    (0..replicas)
        .map(|r| {
            let len = base + usize::from(r < extra);
            let range = start..start + len;
            start += len;
            range
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// One step over `replicas`: each computes its share, the shards travel as bytes, and every
/// replica applies all of them. Returns each replica's outcome.
fn parallel_step(replicas: &mut [Session]) -> Vec<StepOutcome> {
    let count = replicas[0].shard_count();
    let mut wire = Vec::new();
    let split = shares(count, replicas.len());
    for (replica, range) in replicas.iter_mut().zip(split) {
        for shard in replica.compute_shard_gradients(range).unwrap() {
            shard.to_bytes(&mut wire);
        }
    }
    let shards = ShardGradient::list_from_bytes(&wire).unwrap();
    replicas.iter_mut().map(|r| r.apply_shard_gradients(&shards).unwrap()).collect()
}

/// Batches of 40 in shards of 16 (the last one of 8) cross an epoch of the 2,500-digit fixture
/// at step 62, with augmentation and a schedule.
fn recipe(optimizer: OptimizerKind) -> Settings {
    let learning_rate = if optimizer == OptimizerKind::Sgd { 0.02 } else { 1e-3 };
    Settings { optimizer, learning_rate, batch_size: 40, shard_size: 16, schedule_steps: 100, ..Settings::default() }
}

#[test]
fn shards_split_over_any_number_of_replicas_give_the_weights_of_step() {
    let train = train_digits();
    for optimizer in [OptimizerKind::Sgd, OptimizerKind::AdamW] {
        let mut reference = session(recipe(optimizer), &train);
        let outcomes: Vec<StepOutcome> = (0..66).map(|_| reference.step().unwrap()).collect();
        assert_eq!(reference.progress().epoch, 1, "the run crosses an epoch");
        for n in 1..=4 {
            let mut replicas: Vec<Session> = (0..n).map(|_| session(recipe(optimizer), &train)).collect();
            assert_eq!(replicas[0].shard_count(), 3);
            for expected in &outcomes {
                for outcome in parallel_step(&mut replicas) {
                    assert_eq!(&outcome, expected, "{optimizer:?}, {n} replicas");
                }
            }
            for (r, replica) in replicas.iter().enumerate() {
                assert!(
                    weights::to_safetensors(replica.model()).unwrap()
                        == weights::to_safetensors(reference.model()).unwrap(),
                    "{optimizer:?}: replica {r} of {n} has other weights than step()"
                );
                // The optimizer state and the data position too.
                assert!(replica.checkpoint().unwrap() == reference.checkpoint().unwrap(), "{optimizer:?}, {n}");
            }
        }
    }
}

#[test]
fn computing_shards_does_not_move_the_session() {
    let train = train_digits();
    let mut s = session(recipe(OptimizerKind::Sgd), &train);
    let before = s.checkpoint().unwrap();
    let first = s.compute_shard_gradients(0..3).unwrap();
    assert_eq!(s.checkpoint().unwrap(), before);
    // The same shards again, and a part of them alone, are the same bits.
    assert_eq!(s.compute_shard_gradients(0..3).unwrap(), first);
    assert_eq!(s.compute_shard_gradients(2..3).unwrap()[0], first[2]);
    assert_eq!(first.iter().map(|g| g.images).collect::<Vec<_>>(), [16, 16, 8]);
    assert_eq!(first[1].index, 1);
    assert_eq!(first[0].gradient.len(), s.model().num_parameters());
    assert!(first.iter().all(|g| g.loss > 1.5 && g.loss < 3.5), "an untrained network's loss is about ln 10");
    // A thread count other than one computes the same bits.
    s.set_threads(3).unwrap();
    assert_eq!(s.compute_shard_gradients(0..3).unwrap(), first);
}

#[test]
fn shards_that_are_not_the_next_steps_are_refused_and_change_nothing() {
    let train = train_digits();
    let mut s = session(recipe(OptimizerKind::Sgd), &train);
    let shards = s.compute_shard_gradients(0..3).unwrap();
    let before = s.checkpoint().unwrap();
    let refuse = |s: &mut Session, shards: &[ShardGradient], what: &str| {
        let err = s.apply_shard_gradients(shards).unwrap_err().to_string();
        assert!(err.contains(what), "{err}");
    };
    refuse(&mut s, &shards[..2], "the step has 3 shards, got 2");
    refuse(&mut s, &[shards[1].clone(), shards[0].clone(), shards[2].clone()], "shard 0 of step 0");
    let mut short = shards.clone();
    short[2].gradient.pop();
    refuse(&mut s, &short, "a gradient of 61706 values was expected, got 61705");
    let mut boastful = shards.clone();
    boastful[1].correct = 17;
    refuse(&mut s, &boastful, "shard 1: 17 of its 16 images cannot be correct");
    for loss in [-3.0, f32::NEG_INFINITY] {
        let mut gainful = shards.clone();
        gainful[0].loss = loss;
        refuse(&mut s, &gainful, "shard 0: a loss of -");
    }
    assert_eq!(s.checkpoint().unwrap(), before);
    let err = s.compute_shard_gradients(2..4).unwrap_err().to_string();
    assert!(err.contains("shards 2..4") && err.contains("3 shards"), "{err}");
    assert!(s.compute_shard_gradients(1..1).is_err());

    // Shards of a step already taken are stale.
    s.apply_shard_gradients(&shards).unwrap();
    refuse(&mut s, &shards, "of step 1");
    let empty = Session::new(recipe(OptimizerKind::Sgd)).unwrap().compute_shard_gradients(0..1).unwrap_err();
    assert!(empty.to_string().contains("no training data"), "{empty}");
}

#[test]
fn the_wire_form_round_trips_and_refuses_cut_records() {
    let train = train_digits();
    let mut s = session(recipe(OptimizerKind::Sgd), &train);
    let shards = s.compute_shard_gradients(1..3).unwrap();
    let mut wire = Vec::new();
    for shard in &shards {
        shard.to_bytes(&mut wire);
    }
    assert_eq!(wire.len(), 2 * ShardGradient::wire_bytes(61_706));
    assert_eq!(ShardGradient::list_from_bytes(&wire).unwrap(), shards);
    let err = ShardGradient::list_from_bytes(&wire[..wire.len() - 1]).unwrap_err().to_string();
    assert!(err.contains("record 1 is cut short"), "{err}");
    assert!(ShardGradient::list_from_bytes(&wire[..10]).is_err());
}

#[test]
fn a_diverging_run_diverges_alike_on_replicas() {
    let train = train_digits();
    let settings = Settings { learning_rate: 1e6, ..recipe(OptimizerKind::Sgd) };
    let mut reference = session(settings, &train);
    let mut replicas: Vec<Session> = (0..2).map(|_| session(settings, &train)).collect();
    let mut diverged = false;
    for _ in 0..10 {
        let expected = reference.step().unwrap();
        let outcomes = parallel_step(&mut replicas);
        assert!(outcomes.iter().all(|o| format!("{o:?}") == format!("{expected:?}")), "{outcomes:?} vs {expected:?}");
        if expected.diverged.is_some() {
            diverged = true;
            break;
        }
    }
    assert!(diverged, "learning rate 10⁶ diverges within 10 steps");
    for replica in &replicas {
        assert!(replica.checkpoint().unwrap() == reference.checkpoint().unwrap());
    }
}

#[test]
fn records_are_the_wire_form_and_apply_in_place_or_copied() {
    let train = train_digits();
    let [mut by_gradients, mut by_records, mut unaligned, mut stepping] =
        std::array::from_fn(|_| session(recipe(OptimizerKind::Sgd), &train));
    for _ in 0..3 {
        let shards = by_gradients.compute_shard_gradients(0..3).unwrap();
        let mut wire = Vec::new();
        for shard in &shards {
            shard.to_bytes(&mut wire);
        }
        // Two shares, appended one after the other: the same bytes as the records of to_bytes.
        let mut records = Vec::new();
        by_records.compute_shard_records(0..2, &mut records).unwrap();
        by_records.compute_shard_records(2..3, &mut records).unwrap();
        assert!(records == wire, "compute_shard_records wrote other bytes than to_bytes");
        // One byte on, the gradients are not aligned f32s and are copied out instead.
        let mut shifted = vec![0u8; wire.len() + 1];
        shifted[1..].copy_from_slice(&wire);
        let expected = stepping.step().unwrap();
        assert_eq!(by_gradients.apply_shard_gradients(&shards).unwrap(), expected);
        assert_eq!(by_records.apply_shard_records(&records).unwrap(), expected);
        assert_eq!(unaligned.apply_shard_records(&shifted[1..]).unwrap(), expected);
    }
    let weights = stepping.checkpoint().unwrap();
    for s in [&by_gradients, &by_records, &unaligned] {
        assert!(s.checkpoint().unwrap() == weights, "a replica's state differs from step()'s");
    }

    // Refusals change nothing: not the records, nor the session.
    let mut records = vec![7u8];
    let err = by_records.compute_shard_records(2..4, &mut records).unwrap_err().to_string();
    assert!(err.contains("shards 2..4"), "{err}");
    assert_eq!(records, [7]);
    by_records.compute_shard_records(0..3, &mut records).unwrap();
    let records = &records[1..];
    let err = by_records.apply_shard_records(&records[..records.len() - 1]).unwrap_err().to_string();
    assert!(err.contains("record 2 is cut short"), "{err}");
    let err = by_records.apply_shard_records(&records[ShardGradient::wire_bytes(61_706)..]).unwrap_err().to_string();
    assert!(err.contains("the step has 3 shards, got 2"), "{err}");
    assert!(by_records.checkpoint().unwrap() == weights);
}
