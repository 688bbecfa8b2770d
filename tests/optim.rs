//! The optimisers against PyTorch: three steps of `torch.optim.SGD`, `Adam` and `AdamW` on
//! LeNet-5's parameters from `tests/fixtures/optim_reference.safetensors`, which
//! `tests/pytorch/make_optim_reference.py` wrote (float32 arithmetic in PyTorch, see
//! tests/pytorch/README.md); PyTorch's momentum form on one parameter; and the settings'
//! validation.
//!
//! Tolerance: every parameter after every step agrees to 10⁻⁵ (absolute).
#![cfg(not(target_arch = "wasm32"))]

use std::collections::HashMap;

use lenet::model::PARAMETER_NAMES;
use lenet::optim::{step, OptimizerConfig, OptimizerKind, OptimizerState};
use lenet::Error;
use safetensors::tensor::{Dtype, SafeTensors};

const FIXTURE: &[u8] = include_bytes!("fixtures/optim_reference.safetensors");
const TOLERANCE: f32 = 1e-5;

fn tensor(file: &SafeTensors, name: &str) -> Vec<f32> {
    let t = file.tensor(name).unwrap_or_else(|_| panic!("fixture lacks {name}"));
    assert_eq!(t.dtype(), Dtype::F32, "{name}");
    t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn metadata() -> HashMap<String, String> {
    let (_, header) = SafeTensors::read_metadata(FIXTURE).unwrap();
    header.metadata().clone().expect("fixture has metadata")
}

/// Replays the fixture's three steps of `name` with [`step`]; returns the largest absolute
/// difference from PyTorch over every parameter and step.
fn replay(name: &str) -> f32 {
    let file = SafeTensors::deserialize(FIXTURE).unwrap();
    let meta = metadata();
    let mut config = OptimizerConfig::from_json(&meta[&format!("{name}.config")]).unwrap();
    config.validate().unwrap();
    let learning_rates: Vec<f32> = serde_json::from_str(&meta[&format!("{name}.learning_rates")]).unwrap();
    assert_eq!(learning_rates.len(), 3);
    assert_eq!(learning_rates[2], learning_rates[0] / 10.0, "{name}: lr, lr, lr/10");

    let init: Vec<Vec<f32>> = PARAMETER_NAMES.iter().map(|p| tensor(&file, p)).collect();
    let mut params = init.clone();
    let lengths: Vec<usize> = params.iter().map(Vec::len).collect();
    assert_eq!(lengths.iter().sum::<usize>(), 61_706);
    let mut state = OptimizerState::new(&lengths);
    let (mut worst, mut moved, mut inexact, mut total) = (0.0f32, 0.0f32, 0usize, 0usize);
    for (k, &lr) in (1..=3).zip(&learning_rates) {
        config.learning_rate = lr;
        let grads: Vec<Vec<f32>> = PARAMETER_NAMES.iter().map(|p| tensor(&file, &format!("grad{k}.{p}"))).collect();
        let grad_refs: Vec<&[f32]> = grads.iter().map(Vec::as_slice).collect();
        let mut param_refs: Vec<&mut [f32]> = params.iter_mut().map(Vec::as_mut_slice).collect();
        step(&config, &mut state, &mut param_refs, &grad_refs);
        assert_eq!(state.steps, k);

        for ((p, got), start) in PARAMETER_NAMES.iter().zip(&params).zip(&init) {
            let want = tensor(&file, &format!("{name}.step{k}.{p}"));
            assert_eq!(got.len(), want.len());
            for (i, (&a, &b)) in got.iter().zip(&want).enumerate() {
                let d = (a - b).abs();
                assert!(d <= TOLERANCE, "{name} step {k} {p}[{i}]: ours {a}, PyTorch {b}, difference {d:e}");
                worst = worst.max(d);
                inexact += usize::from(a != b);
                total += 1;
            }
            moved = moved.max(want.iter().zip(start).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max));
        }
    }
    // The steps must be large against the tolerance, or agreeing would prove nothing.
    assert!(moved > 100.0 * TOLERANCE, "{name}: parameters moved only {moved:e}");
    eprintln!(
        "{name}: 3 steps, largest difference from PyTorch {worst:e}, {inexact} of {total} values not bit-identical \
         (largest move {moved:e})"
    );
    worst
}

#[test]
fn sgd_matches_torch_optim_sgd() {
    assert!(metadata()["sgd.config"].contains("\"kind\": \"sgd\""));
    replay("sgd");
}

#[test]
fn adam_matches_torch_optim_adam() {
    assert!(metadata()["adam.config"].contains("\"kind\": \"adam\""));
    replay("adam");
}

#[test]
fn adamw_matches_torch_optim_adamw() {
    assert!(metadata()["adamw.config"].contains("\"kind\": \"adamw\""));
    replay("adamw");
}

/// PyTorch's momentum form `v ← μv + g; w ← w − lr·v`, one parameter, gradient 1, learning
/// rates 0.1, 0.1, 0.01: 0.9, 0.71, 0.6829. Folding the learning rate into the velocity
/// (`v ← μv + lr·g; w ← w − v`) would end at 0.529 instead.
#[test]
fn sgd_one_parameter_follows_pytorch_momentum_form() {
    let mut config = OptimizerConfig { momentum: 0.9, weight_decay: 0.0, ..OptimizerConfig::default() };
    let mut state = OptimizerState::new(&[1]);
    let mut p = [1.0f32];
    let mut got = Vec::new();
    for lr in [0.1, 0.1, 0.01] {
        config.learning_rate = lr;
        step(&config, &mut state, &mut [&mut p[..]], &[&[1.0]]);
        got.push(p[0]);
    }
    for (g, want) in got.iter().zip([0.9, 0.71, 0.6829]) {
        assert!((g - want).abs() < 1e-6, "got {got:?}, want 0.9, 0.71, 0.6829");
    }
    assert!((state.first[0][0] - 2.71).abs() < 1e-6, "velocity {}", state.first[0][0]);
}

#[test]
fn default_config_is_the_sgd_recipe_and_valid() {
    let c = OptimizerConfig::default();
    assert_eq!(
        (c.kind, c.learning_rate, c.momentum, c.weight_decay, c.beta1, c.beta2, c.eps),
        (OptimizerKind::Sgd, 0.02, 0.9, 5e-4, 0.9, 0.999, 1e-8)
    );
    c.validate().unwrap();
}

#[test]
fn every_bad_setting_is_named_with_its_value() {
    let d = OptimizerConfig::default();
    let cases = [
        (OptimizerConfig { learning_rate: 0.0, ..d }, "learning_rate", "0"),
        (OptimizerConfig { learning_rate: -0.5, ..d }, "learning_rate", "-0.5"),
        (OptimizerConfig { learning_rate: f32::INFINITY, ..d }, "learning_rate", "inf"),
        (OptimizerConfig { learning_rate: f32::NAN, ..d }, "learning_rate", "NaN"),
        (OptimizerConfig { momentum: 1.0, ..d }, "momentum", "1"),
        (OptimizerConfig { momentum: -0.1, ..d }, "momentum", "-0.1"),
        (OptimizerConfig { weight_decay: -1e-4, ..d }, "weight_decay", "-0.0001"),
        (OptimizerConfig { weight_decay: f32::NAN, ..d }, "weight_decay", "NaN"),
        (OptimizerConfig { kind: OptimizerKind::Adam, beta1: 1.0, ..d }, "beta1", "1"),
        (OptimizerConfig { kind: OptimizerKind::Adam, beta1: f32::NAN, ..d }, "beta1", "NaN"),
        (OptimizerConfig { kind: OptimizerKind::AdamW, beta2: 1.5, ..d }, "beta2", "1.5"),
        (OptimizerConfig { kind: OptimizerKind::AdamW, beta2: -0.25, ..d }, "beta2", "-0.25"),
        (OptimizerConfig { kind: OptimizerKind::Adam, eps: 0.0, ..d }, "eps", "0"),
        (OptimizerConfig { kind: OptimizerKind::Adam, eps: f32::INFINITY, ..d }, "eps", "inf"),
    ];
    for (config, field, value) in cases {
        match config.validate() {
            Err(Error::Setting { name, message }) => {
                assert!(name == field && message.ends_with(&format!("got {value}")), "{field}: {name} {message}")
            }
            other => panic!("{field} = {value}: expected Error::Setting, got {other:?}"),
        }
    }
}

#[test]
fn config_deserialises_with_defaults_and_rejects_unknown_fields() {
    let c = OptimizerConfig::from_json(r#"{"kind": "adamw", "learning_rate": 0.001}"#).unwrap();
    assert_eq!(c, OptimizerConfig { kind: OptimizerKind::AdamW, learning_rate: 0.001, ..OptimizerConfig::default() });
    let json = miniserde::json::to_string(&c);
    assert!(json.contains(r#""kind":"adamw""#), "{json}");
    assert_eq!(OptimizerConfig::from_json(&json).unwrap(), c);
    let err = OptimizerConfig::from_json(r#"{"kind": "adam", "lr": 0.1}"#).unwrap_err().to_string();
    assert!(err.contains("unknown optimizer setting `lr`"), "{err}");
    let err = OptimizerConfig::from_json(r#"{"kind": "rmsprop"}"#).unwrap_err().to_string();
    assert!(err.contains("`kind` cannot be \"rmsprop\""), "{err}");
}
