//! LeNet-5 against PyTorch: logits, loss, every parameter gradient, two SGD steps, a strided
//! padded convolution and an overlapping max-pool, all from
//! `tests/fixtures/pytorch_reference.safetensors`, which `tests/pytorch/make_reference.py`
//! wrote with PyTorch (float64 truth stored as float32; see tests/pytorch/README.md).
//!
//! Tolerance: each tensor agrees to 10⁻⁵ of its largest magnitude (relative, tensor-wise).
#![cfg(not(target_arch = "wasm32"))]

use lenet::layers::{Conv2d, Conv2dCache, Conv2dGrads, MaxPool2d, MaxPool2dCache};
use lenet::model::{Gradients, Workspace, PARAMETER_NAMES};
use lenet::optim::OptimizerConfig;
use lenet::session::{Session, Settings};
use lenet::LeNet5;
use ndarray::{Array4, ArrayD, IxDyn};
use safetensors::tensor::{Dtype, SafeTensors};

const FIXTURE: &[u8] = include_bytes!("fixtures/pytorch_reference.safetensors");

fn tensor(file: &SafeTensors, name: &str) -> ArrayD<f32> {
    let t = file.tensor(name).unwrap_or_else(|_| panic!("fixture lacks {name}"));
    assert_eq!(t.dtype(), Dtype::F32, "{name}");
    let values = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    ArrayD::from_shape_vec(IxDyn(t.shape()), values).unwrap()
}

fn tensor4(file: &SafeTensors, name: &str) -> Array4<f32> {
    tensor(file, name).into_dimensionality().unwrap()
}

/// Asserts that `got` equals PyTorch's `want` to `1e-5` of want's largest magnitude, printing
/// the first values and the largest difference otherwise.
fn assert_matches(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let (worst_i, worst) = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .enumerate()
        .fold((0, 0.0f32), |(bi, bw), (i, d)| if d > bw { (i, d) } else { (bi, bw) });
    assert!(
        worst <= 1e-5 * scale,
        "{what}: largest difference {worst:e} at {worst_i} (ours {}, PyTorch {}), {:e} of the largest value {scale}; first values ours {:?} PyTorch {:?}",
        got[worst_i],
        want[worst_i],
        worst / scale,
        &got[..4.min(got.len())],
        &want[..4.min(want.len())]
    );
}

fn model_and_batch(file: &SafeTensors) -> (LeNet5, Array4<f32>, Vec<u8>) {
    let mut model = LeNet5::new(0);
    for (name, dst) in PARAMETER_NAMES.iter().zip(model.parameters_mut()) {
        let t = tensor(file, name);
        assert_eq!(t.len(), dst.len(), "{name}");
        dst.copy_from_slice(t.as_slice().unwrap());
    }
    let labels_view = file.tensor("labels").unwrap();
    assert_eq!(labels_view.dtype(), Dtype::I64);
    let labels = labels_view.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u8).collect();
    (model, tensor4(file, "input"), labels)
}

#[test]
fn logits_loss_and_every_gradient_match_pytorch() {
    let file = SafeTensors::deserialize(FIXTURE).unwrap();
    let (model, images, labels) = model_and_batch(&file);
    assert_eq!(labels, vec![7, 2, 1, 0]);
    let mut ws = Workspace::default();
    let logits = model.forward(images.view(), &mut ws).unwrap().to_owned();
    assert_matches("logits", logits.as_slice().unwrap(), tensor(&file, "logits").as_slice().unwrap());
    let probs = model.predict(images.view()).unwrap();
    assert_matches("probs", probs.as_slice().unwrap(), tensor(&file, "probs").as_slice().unwrap());

    let mut grads = Gradients::zeros_like(&model);
    let loss = model.backward(&mut ws, &labels, &mut grads).unwrap();
    assert_matches("loss", &[loss], tensor(&file, "loss").as_slice().unwrap());
    for (name, got) in PARAMETER_NAMES.iter().zip(grads.tensors()) {
        assert_matches(&format!("grad.{name}"), got, tensor(&file, &format!("grad.{name}")).as_slice().unwrap());
    }
}

#[test]
fn two_sgd_steps_match_torch_optim_sgd() {
    let file = SafeTensors::deserialize(FIXTURE).unwrap();
    let (model, images, labels) = model_and_batch(&file);
    let config =
        OptimizerConfig { learning_rate: 0.1, momentum: 0.9, weight_decay: 5e-4, ..OptimizerConfig::default() };
    let mut trainer = Session::with_model(model, Settings::manual(config)).unwrap();
    let losses = [
        trainer.train_batch(images.view(), &labels).unwrap().loss,
        trainer.train_batch(images.view(), &labels).unwrap().loss,
    ];
    assert_matches("step_losses", &losses, tensor(&file, "step_losses").as_slice().unwrap());
    for (name, got) in PARAMETER_NAMES.iter().zip(trainer.model().parameters()) {
        assert_matches(&format!("step2.{name}"), got, tensor(&file, &format!("step2.{name}")).as_slice().unwrap());
    }
}

#[test]
fn strided_padded_conv_matches_pytorch() {
    let file = SafeTensors::deserialize(FIXTURE).unwrap();
    let mut conv = Conv2d::new(3, 4, 3, 2, 1).unwrap();
    conv.weight = tensor4(&file, "conv_s2.weight");
    conv.bias = tensor(&file, "conv_s2.bias").into_dimensionality().unwrap();
    let x = tensor4(&file, "conv_s2.input");
    let (mut cache, mut y) = (Conv2dCache::default(), Array4::zeros((0, 0, 0, 0)));
    conv.forward(x.view(), &mut cache, &mut y).unwrap();
    assert_matches("conv_s2.output", y.as_slice().unwrap(), tensor(&file, "conv_s2.output").as_slice().unwrap());
    let mut grads = Conv2dGrads::zeros_like(&conv);
    let mut dx = Array4::zeros((0, 0, 0, 0));
    conv.backward(x.view(), &mut cache, tensor4(&file, "conv_s2.grad_output").view(), &mut grads, Some(&mut dx))
        .unwrap();
    assert_matches(
        "conv_s2.grad_input",
        dx.as_slice().unwrap(),
        tensor(&file, "conv_s2.grad_input").as_slice().unwrap(),
    );
    assert_matches(
        "conv_s2.grad_weight",
        grads.weight.as_slice().unwrap(),
        tensor(&file, "conv_s2.grad_weight").as_slice().unwrap(),
    );
    assert_matches(
        "conv_s2.grad_bias",
        grads.bias.as_slice().unwrap(),
        tensor(&file, "conv_s2.grad_bias").as_slice().unwrap(),
    );
}

#[test]
fn overlapping_max_pool_matches_pytorch() {
    let file = SafeTensors::deserialize(FIXTURE).unwrap();
    let pool = MaxPool2d::new(3, 2).unwrap();
    let (mut cache, mut y, mut dx) =
        (MaxPool2dCache::default(), Array4::zeros((0, 0, 0, 0)), Array4::zeros((0, 0, 0, 0)));
    pool.forward(tensor4(&file, "pool_ov.input").view(), &mut cache, &mut y).unwrap();
    assert_matches("pool_ov.output", y.as_slice().unwrap(), tensor(&file, "pool_ov.output").as_slice().unwrap());
    pool.backward(&cache, tensor4(&file, "pool_ov.grad_output").view(), &mut dx).unwrap();
    assert_matches(
        "pool_ov.grad_input",
        dx.as_slice().unwrap(),
        tensor(&file, "pool_ov.grad_input").as_slice().unwrap(),
    );
}
