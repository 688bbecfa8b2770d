//! The saliency map against finite differences of the logit, on real digits.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use lenet::explain::{describe_evidence, Explainer, REGION_NAMES};
use lenet::optim::OptimizerConfig;
use lenet::session::{Session, Settings};
use lenet::LeNet5;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `model`'s forward pass by plain loops in f64: the definition of the network, without the
/// f32 rounding that would swamp a finite difference.
struct Reference {
    mean: f64,
    std: f64,
    /// conv1, conv2, then fc1, fc2, fc3: (weights, biases, out, in) with in = c·k·k for a Conv2d.
    layers: Vec<(Vec<f64>, Vec<f64>, usize, usize)>,
}

impl Reference {
    fn new(model: &LeNet5) -> Self {
        let widen = |t: &[f32]| t.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
        let p = model.parameters();
        let shapes = [(6, 25), (16, 150), (120, 400), (84, 120), (10, 84)];
        let layers = (0..5).map(|l| (widen(p[2 * l]), widen(p[2 * l + 1]), shapes[l].0, shapes[l].1)).collect();
        Reference { mean: f64::from(model.input_mean), std: f64::from(model.input_std), layers }
    }

    fn logits(&self, image: &[f64]) -> Vec<f64> {
        // conv1 has padding 2: lay the normalised image into a zero-padded 32×32 plane.
        let mut x = vec![0.0; 32 * 32];
        for (i, &v) in image.iter().enumerate() {
            x[(i / 28 + 2) * 32 + i % 28 + 2] = (v - self.mean) / self.std;
        }
        let x = self.conv_relu_pool(0, &x, 32);
        let x = self.conv_relu_pool(1, &x, 14);
        let x = self.linear(2, &x, true);
        let x = self.linear(3, &x, true);
        self.linear(4, &x, false)
    }

    /// Conv2d with a 5×5 kernel, no padding, over square planes of `side`, then ReLU and 2×2
    /// max-pooling.
    fn conv_relu_pool(&self, layer: usize, x: &[f64], side: usize) -> Vec<f64> {
        let (weight, bias, channels, fan_in) = &self.layers[layer];
        let inputs = fan_in / 25;
        let out = side - 4;
        let mut y = vec![0.0; channels * out * out];
        for o in 0..*channels {
            for i in 0..out {
                for j in 0..out {
                    let mut sum = bias[o];
                    for c in 0..inputs {
                        for u in 0..5 {
                            let row = &x[(c * side + i + u) * side + j..][..5];
                            let w = &weight[((o * inputs + c) * 5 + u) * 5..][..5];
                            sum += row.iter().zip(w).map(|(a, b)| a * b).sum::<f64>();
                        }
                    }
                    y[(o * out + i) * out + j] = sum.max(0.0);
                }
            }
        }
        let half = out / 2;
        (0..channels * half * half)
            .map(|n| {
                let (o, i, j) = (n / (half * half), n / half % half, n % half);
                let at = |u: usize, v: usize| y[(o * out + 2 * i + u) * out + 2 * j + v];
                at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1))
            })
            .collect()
    }

    fn linear(&self, layer: usize, x: &[f64], relu: bool) -> Vec<f64> {
        let (weight, bias, _, fan_in) = &self.layers[layer];
        weight
            .chunks_exact(*fan_in)
            .zip(bias)
            .map(|(row, b)| {
                let z = b + row.iter().zip(x).map(|(w, v)| w * v).sum::<f64>();
                if relu {
                    z.max(0.0)
                } else {
                    z
                }
            })
            .collect()
    }
}

/// Central differences of `logits[class]` with respect to every pixel, against the saliency's
/// gradient, for three real digits and two classes each.
///
/// The differences are taken of the f64 forward pass [`Reference`] (itself held to the crate's
/// f32 logits first), with ε = 10⁻⁴: in f32 the rounding of a logit, a few 10⁻⁶, would be as
/// large as the tolerance. Between the kinks of ReLU and max-pooling the network is linear in
/// its input; a kink within ε of a pixel shows as left and right slopes that disagree, and the
/// pixel is left out (at most a tenth may be). Every other pixel must agree with the backward
/// pass to 10⁻³ of its own value plus 10⁻⁵ of the map's largest gradient (the f32 rounding of
/// a tiny gradient).
///
/// The digits are moved to `[0.05, 0.95]` so that every step stays inside `[0, 1]`, and get a
/// little noise: on a flat background every 2×2 pooling window is a tie, a kink at the very
/// point where the gradient is taken.
#[test]
fn saliency_matches_central_differences_of_the_logit() {
    let test = common::small_test();
    let images = test.images.as_slice().unwrap();
    // Trained briefly, so that the gradients have a digit's structure rather than noise's.
    let train = common::small_train();
    let mut trainer = Session::with_model(LeNet5::new(8), Settings::manual(OptimizerConfig::default())).unwrap();
    for start in (0..640).step_by(32) {
        let batch = train.images.slice(ndarray::s![start..start + 32, .., .., ..]);
        trainer.train_batch(batch, &train.labels[start..start + 32]).unwrap();
    }
    let model = trainer.model();
    let reference = Reference::new(model);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let eps = 1e-4;

    let mut explainer = Explainer::new();
    let (mut checked, mut kinks) = (0usize, 0usize);
    for i in [0usize, 1, 7] {
        let image: Vec<f32> =
            images[i * 784..(i + 1) * 784].iter().map(|&x| 0.05 + 0.85 * x + 0.05 * rng.random::<f32>()).collect();
        let activations = explainer.activations(model, &image).unwrap();
        let predicted = activations.predicted();
        let classes = [predicted, (predicted + 3) % 10];
        let mut wide: Vec<f64> = image.iter().map(|&v| f64::from(v)).collect();
        let centre = reference.logits(&wide);
        for (a, b) in activations.logits.iter().zip(&centre) {
            assert!((f64::from(*a) - b).abs() <= 1e-4 * (1.0 + b.abs()), "image {i}: f32 {a}, f64 {b}");
        }
        let gradients = classes.map(|class| explainer.saliency(model, &image, class).unwrap().gradient.clone());
        let scales = gradients.clone().map(|g| g.iter().fold(0.0f32, |m, g| m.max(g.abs())));
        let mut worst = [0.0f32; 2];
        for p in 0..784 {
            let original = wide[p];
            wide[p] = original + eps;
            let plus = reference.logits(&wide);
            wide[p] = original - eps;
            let minus = reference.logits(&wide);
            wide[p] = original;
            for (k, &class) in classes.iter().enumerate() {
                let (right, left) = ((plus[class] - centre[class]) / eps, (centre[class] - minus[class]) / eps);
                if (right - left).abs() > 1e-6 * f64::from(scales[k]) {
                    kinks += 1;
                    continue;
                }
                checked += 1;
                let (analytic, central) = (gradients[k][p], ((right + left) / 2.0) as f32);
                let error = (analytic - central).abs();
                worst[k] = worst[k].max(error / scales[k]);
                assert!(
                    error <= 1e-3 * analytic.abs() + 1e-5 * scales[k],
                    "image {i}, class {class}, pixel (row {}, column {}): backward {analytic}, finite differences {central}",
                    p / 28,
                    p % 28,
                );
            }
        }
        for (k, class) in classes.iter().enumerate() {
            eprintln!(
                "image {i}, class {class}: largest gradient {:.4}, worst error {:.2e} of it",
                scales[k], worst[k]
            );
        }
    }
    eprintln!("checked {checked} pixels, left out {kinks} near kinks");
    assert!(kinks * 10 <= checked + kinks, "{kinks} of {} pixels sat on kinks", checked + kinks);
}

/// The region named holds ink that raises the class's score; a blank image has a gradient but
/// no evidence anywhere.
#[test]
fn evidence_is_named_where_ink_raises_the_score() {
    let test = common::small_test();
    let images = test.images.as_slice().unwrap();
    let model = LeNet5::new(0);
    let mut explainer = Explainer::new();
    let bands = [0..9, 9..19, 19..28];
    for i in 0..5 {
        let image = &images[i * 784..(i + 1) * 784];
        let (_, saliency) = explainer.explain(&model, image, None).unwrap();
        let words = describe_evidence(saliency);
        let cell = REGION_NAMES.iter().position(|&n| n == words).unwrap_or_else(|| panic!("image {i}: {words}"));
        let (rows, columns) = (bands[cell / 3].clone(), bands[cell % 3].clone());
        let inked = rows
            .flat_map(|y| columns.clone().map(move |x| y * 28 + x))
            .any(|p| image[p] > 0.0 && saliency.gradient[p] > 0.0);
        assert!(inked, "image {i}: {words} holds no ink that raises the score");
        let shares = lenet::explain::evidence_by_region(saliency).unwrap();
        assert!((shares.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{shares:?}");
    }
    let (_, blank) = explainer.explain(&model, &[0.0; 784], Some(4)).unwrap();
    assert!(blank.gradient.iter().any(|&g| g != 0.0), "the gradient exists on a blank image");
    assert_eq!(describe_evidence(blank), "nowhere", "but no ink carries evidence");
}
