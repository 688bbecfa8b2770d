//! Exact cases, fast-versus-reference checks and gradient checks for every layer and the loss.
//!
//! Gradient checks compare each analytic gradient with central finite differences
//! `(L(θ + ε) − L(θ − ε)) / 2ε`, in f32. The layers are linear in their parameters and inputs
//! (Conv2d, Linear) or piecewise linear (ReLU, MaxPool2d), so with ε = 10⁻² the difference
//! is exact but for rounding, and the tolerance is 10⁻³ relative to the largest gradient of the
//! tensor. Inputs of the pooling checks are distinct values at least 10⁻² apart, so that no
//! perturbation changes a window's maximum.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use lenet::layers::{
    relu, relu_backward, Conv2d, Conv2dCache, Conv2dGrads, Linear, LinearGrads, MaxPool2d, MaxPool2dCache,
};
use lenet::loss::{cross_entropy, cross_entropy_backward, softmax};
use ndarray::{arr2, Array, Array1, Array2, Array4, Dimension};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random<D: Dimension, Sh: ndarray::ShapeBuilder<Dim = D>>(shape: Sh, rng: &mut ChaCha8Rng) -> Array<f32, D> {
    Array::from_shape_simple_fn(shape, || rng.random::<f32>() * 2.0 - 1.0)
}

fn max_abs<D: Dimension>(a: &Array<f32, D>) -> f32 {
    a.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// Asserts `got` ≈ `want` to `rel` of want's largest magnitude, printing the worst element.
fn assert_close<D: Dimension>(what: &str, got: &Array<f32, D>, want: &Array<f32, D>, rel: f32) {
    assert_eq!(got.shape(), want.shape(), "{what}: shapes differ");
    let scale = max_abs(want).max(1e-6);
    let (i, worst) = got
        .iter()
        .zip(want.iter())
        .map(|(a, b)| (a - b).abs())
        .enumerate()
        .fold((0, 0.0f32), |(bi, bw), (i, d)| if d > bw { (i, d) } else { (bi, bw) });
    assert!(
        worst <= rel * scale,
        "{what}: largest difference {worst} at flat index {i} (got {}, want {}), tolerance {}",
        got.iter().nth(i).unwrap(),
        want.iter().nth(i).unwrap(),
        rel * scale
    );
}

/// Central differences of `loss` with respect to every element of `values`.
fn numeric_gradient<D: Dimension>(
    values: &mut Array<f32, D>,
    eps: f32,
    mut loss: impl FnMut(&Array<f32, D>) -> f64,
) -> Array<f32, D> {
    let mut grad = Array::zeros(values.raw_dim());
    for i in 0..values.len() {
        let original = values.as_slice().unwrap()[i];
        values.as_slice_mut().unwrap()[i] = original + eps;
        let plus = loss(values);
        values.as_slice_mut().unwrap()[i] = original - eps;
        let minus = loss(values);
        values.as_slice_mut().unwrap()[i] = original;
        grad.as_slice_mut().unwrap()[i] = ((plus - minus) / (2.0 * f64::from(eps))) as f32;
    }
    grad
}

/// `Σ output ⊙ r`, in f64: its gradient with respect to the output is exactly `r`.
fn dot<D: Dimension>(output: &Array<f32, D>, r: &Array<f32, D>) -> f64 {
    output.iter().zip(r.iter()).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum()
}

fn conv_forward(layer: &Conv2d, x: &Array4<f32>) -> Array4<f32> {
    let mut out = Array4::zeros((0, 0, 0, 0));
    layer.forward(x.view(), &mut Conv2dCache::default(), &mut out).unwrap();
    out
}

// ---------------------------------------------------------------- exact cases

#[test]
fn pooling_matches_its_definition_bit_for_bit() {
    common::check_pool_against_reference();
}

#[test]
fn pool_window_with_ties_sends_gradient_to_first_maximum() {
    let pool = MaxPool2d::new(2, 2).unwrap();
    let x = Array4::from_shape_vec((1, 1, 2, 2), vec![1.0, 2.0, 2.0, 2.0]).unwrap();
    let (mut cache, mut y, mut dx) =
        (MaxPool2dCache::default(), Array4::zeros((0, 0, 0, 0)), Array4::zeros((0, 0, 0, 0)));
    pool.forward(x.view(), &mut cache, &mut y).unwrap();
    assert_eq!(y.into_raw_vec_and_offset().0, vec![2.0]);
    pool.backward(&cache, Array4::ones((1, 1, 1, 1)).view(), &mut dx).unwrap();
    assert_eq!(dx.into_raw_vec_and_offset().0, vec![0.0, 1.0, 0.0, 0.0]);
}

#[test]
fn pooling_all_zero_4x4_puts_ones_at_window_corners() {
    let pool = MaxPool2d::new(2, 2).unwrap();
    let (mut cache, mut y, mut dx) =
        (MaxPool2dCache::default(), Array4::zeros((0, 0, 0, 0)), Array4::zeros((0, 0, 0, 0)));
    pool.forward(Array4::zeros((1, 1, 4, 4)).view(), &mut cache, &mut y).unwrap();
    pool.backward(&cache, Array4::ones((1, 1, 2, 2)).view(), &mut dx).unwrap();
    let ones: Vec<(usize, usize)> = dx
        .indexed_iter()
        .filter(|(_, &v)| v != 0.0)
        .map(|((_, _, i, j), &v)| {
            assert_eq!(v, 1.0);
            (i, j)
        })
        .collect();
    assert_eq!(ones, vec![(0, 0), (0, 2), (2, 0), (2, 2)]);
}

#[test]
fn overlapping_windows_add_their_gradients() {
    // 3×3 windows, stride 1, over a 4×4 input whose maximum (9) is in all four windows.
    let pool = MaxPool2d::new(3, 1).unwrap();
    let mut x = Array4::zeros((1, 1, 4, 4));
    x[[0, 0, 1, 2]] = 9.0;
    let (mut cache, mut y, mut dx) =
        (MaxPool2dCache::default(), Array4::zeros((0, 0, 0, 0)), Array4::zeros((0, 0, 0, 0)));
    pool.forward(x.view(), &mut cache, &mut y).unwrap();
    let grad = Array4::from_shape_vec((1, 1, 2, 2), vec![1.0, 2.0, 3.0, 4.0]).unwrap();
    pool.backward(&cache, grad.view(), &mut dx).unwrap();
    assert_eq!(dx[[0, 0, 1, 2]], 10.0);
    assert_eq!(dx.sum(), 10.0);
}

#[test]
fn delta_convolved_with_ones_kernel_gives_nine_ones_in_the_corner() {
    let mut conv = Conv2d::new(1, 1, 5, 1, 2).unwrap();
    conv.weight.fill(1.0);
    let mut x = Array4::zeros((1, 1, 28, 28));
    x[[0, 0, 0, 0]] = 1.0;
    let y = conv_forward(&conv, &x);
    assert_eq!(y.dim(), (1, 1, 28, 28));
    for ((_, _, i, j), &v) in y.indexed_iter() {
        let expected = if i <= 2 && j <= 2 { 1.0 } else { 0.0 };
        assert_eq!(v, expected, "output ({i}, {j})");
    }
}

#[test]
fn top_left_kernel_tap_shifts_a_delta_by_the_padding() {
    let mut conv = Conv2d::new(1, 1, 5, 1, 2).unwrap();
    conv.weight[[0, 0, 0, 0]] = 1.0;
    let mut x = Array4::zeros((1, 1, 28, 28));
    x[[0, 0, 5, 5]] = 1.0;
    let y = conv_forward(&conv, &x);
    let hits: Vec<_> = y.indexed_iter().filter(|(_, &v)| v != 0.0).map(|((_, _, i, j), &v)| (i, j, v)).collect();
    assert_eq!(hits, vec![(7, 7, 1.0)]);
}

#[test]
fn softmax_of_huge_logits_is_exact() {
    let p = softmax(arr2(&[[1000.0f32, 0.0, -1000.0]]).view());
    assert_eq!(p, arr2(&[[1.0f32, 0.0, 0.0]]));
}

#[test]
#[allow(clippy::excessive_precision)] // the logits as PyTorch printed them
fn cross_entropy_of_huge_logits_is_finite_and_right() {
    let logits = arr2(&[[-249.873093f32, -424.126709, -460.292542, 378.097443, -292.614532]]);
    let loss0 = cross_entropy(logits.view(), &[0]).unwrap();
    assert!((loss0 - 627.9705).abs() < 1e-3, "{loss0}");
    assert_eq!(cross_entropy(logits.view(), &[3]).unwrap(), 0.0);
}

#[test]
fn cross_entropy_value_and_gradient_for_1_2_3() {
    let logits = arr2(&[[1.0f32, 2.0, 3.0]]);
    let mut grad = Array2::zeros((0, 0));
    let loss = cross_entropy_backward(logits.view(), &[0], &mut grad).unwrap();
    assert!((loss - 2.407_606).abs() < 1e-6, "{loss}");
    for (g, want) in grad.iter().zip([-0.9099694f32, 0.2447285, 0.665_241]) {
        assert!((g - want).abs() < 1e-6, "{grad}");
    }
}

#[test]
fn cross_entropy_rejects_bad_labels_and_counts() {
    let logits = Array2::<f32>::zeros((2, 10));
    let err = cross_entropy(logits.view(), &[1, 10]).unwrap_err().to_string();
    assert!(err.contains("label 10 at index 1"), "{err}");
    let err = cross_entropy(logits.view(), &[1]).unwrap_err().to_string();
    assert!(err.contains("(1, C)") && err.contains("(2, 10)"), "{err}");
}

// ---------------------------------------------------------------- shapes

#[test]
fn wrong_shapes_name_expected_and_given() {
    let conv = Conv2d::new(6, 16, 5, 1, 0).unwrap();
    let mut out = Array4::zeros((0, 0, 0, 0));
    let err = conv.forward(Array4::zeros((2, 3, 14, 14)).view(), &mut Conv2dCache::default(), &mut out).unwrap_err();
    assert_eq!(err.to_string(), "Conv2d input: expected shape (N ≥ 1, 6, H, W), got (2, 3, 14, 14)");
    let err = conv.forward(Array4::zeros((2, 6, 3, 3)).view(), &mut Conv2dCache::default(), &mut out).unwrap_err();
    assert!(err.to_string().contains("smaller than the 5×5 kernel"), "{err}");

    let fc = Linear::new(400, 120).unwrap();
    let err = fc.forward(Array2::zeros((4, 399)).view(), &mut Array2::zeros((0, 0))).unwrap_err();
    assert_eq!(err.to_string(), "Linear input: expected shape (N ≥ 1, 400), got (4, 399)");

    let pool = MaxPool2d::new(2, 2).unwrap();
    let err = pool.forward(Array4::zeros((1, 1, 1, 5)).view(), &mut MaxPool2dCache::default(), &mut out).unwrap_err();
    assert!(err.to_string().contains("smaller than the 2×2 window"), "{err}");
    let mut cache = MaxPool2dCache::default();
    pool.forward(Array4::zeros((1, 2, 4, 4)).view(), &mut cache, &mut out).unwrap();
    let err = pool.backward(&cache, Array4::zeros((1, 2, 3, 3)).view(), &mut Array4::zeros((0, 0, 0, 0))).unwrap_err();
    assert_eq!(err.to_string(), "MaxPool2d grad_output: expected shape (1, 2, 2, 2), got (1, 2, 3, 3)");
}

// ---------------------------------------------------------------- fast versus reference

/// (in_channels, out_channels, kernel_size, stride, padding, height, width)
const CONV_CASES: [(usize, usize, usize, usize, usize, usize, usize); 10] = [
    (1, 6, 5, 1, 2, 28, 28),  // LeNet-5's conv1
    (6, 16, 5, 1, 0, 14, 14), // LeNet-5's conv2
    (3, 4, 3, 2, 1, 9, 9),    // stride 2 with padding
    (2, 3, 4, 2, 1, 8, 7),    // even kernel, non-square input
    (2, 2, 4, 1, 3, 5, 6),    // padding wider than half the kernel
    (3, 5, 1, 1, 0, 4, 4),    // 1×1 kernel
    (2, 3, 3, 3, 2, 10, 11),  // stride larger than the overlap
    // One input channel at stride 1 convolves directly: widths out that are not whole vectors.
    (1, 4, 3, 1, 0, 9, 7),
    (1, 1, 1, 1, 0, 3, 3),
    (1, 5, 5, 1, 4, 6, 5),
];

#[test]
fn conv_fast_path_matches_plain_loops() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (ci, co, k, s, p, h, w) in CONV_CASES {
        let mut conv = Conv2d::new(ci, co, k, s, p).unwrap();
        conv.weight = random(conv.weight.raw_dim(), &mut rng);
        conv.bias = random(conv.bias.raw_dim(), &mut rng);
        // 7 images: LeNet-5's layers go through the batch in chunks of 3 to 10, so the last is partial.
        let x = random((7, ci, h, w), &mut rng);
        let what = format!("Conv2d({ci}, {co}, {k}, stride {s}, padding {p}) on {h}×{w}");
        let y = conv_passes_match_reference(&what, &conv, &x, &mut Conv2dCache::default(), &mut rng);
        assert_close(&format!("{what} forward"), &y, &conv.forward_reference(x.view()).unwrap(), 1e-5);
    }
}

/// Forward, then backward with a random output gradient, on `cache`: the gradients equal the
/// plain-loop reference's (to 10⁻⁵). Returns the forward output.
fn conv_passes_match_reference(
    what: &str,
    conv: &Conv2d,
    x: &Array4<f32>,
    cache: &mut Conv2dCache,
    rng: &mut ChaCha8Rng,
) -> Array4<f32> {
    let mut y = Array4::zeros((0, 0, 0, 0));
    conv.forward(x.view(), cache, &mut y).unwrap();
    let dy = random(y.raw_dim(), rng);
    let mut grads = Conv2dGrads::zeros_like(conv);
    let mut dx = Array4::zeros((0, 0, 0, 0));
    conv.backward(x.view(), cache, dy.view(), &mut grads, Some(&mut dx)).unwrap();
    let (ref_dx, ref_grads) = conv.backward_reference(x.view(), dy.view()).unwrap();
    assert_close(&format!("{what} grad_input"), &dx, &ref_dx, 1e-5);
    assert_close(&format!("{what} grad_weight"), &grads.weight, &ref_grads.weight, 1e-5);
    assert_close(&format!("{what} grad_bias"), &grads.bias, &ref_grads.bias, 1e-5);
    y
}

#[test]
fn conv_backward_is_the_same_whether_forward_kept_its_columns_or_not() {
    // LeNet-5's conv2 (conv1 convolves directly, without im2col): a batch whose im2col matrices
    // fit in KEEP_BYTES keeps them for backward; a larger one has backward rebuild them. One
    // cache goes small, large, small.
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut conv = Conv2d::new(6, 16, 5, 1, 0).unwrap();
    conv.weight = random(conv.weight.raw_dim(), &mut rng);
    conv.bias = random(conv.bias.raw_dim(), &mut rng);
    let large = Conv2dCache::KEEP_BYTES / (150 * 10 * 10 * 4) + 2;
    let mut cache = Conv2dCache::default();
    for n in [5, large, 5] {
        let x = random((n, 6, 14, 14), &mut rng);
        conv_passes_match_reference(&format!("{n} images:"), &conv, &x, &mut cache, &mut rng);
    }
}

// ---------------------------------------------------------------- gradient checks

#[test]
fn conv_gradients_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for (ci, co, k, s, p, h, w) in CONV_CASES.into_iter().skip(2) {
        let mut conv = Conv2d::new(ci, co, k, s, p).unwrap();
        conv.weight = random(conv.weight.raw_dim(), &mut rng);
        conv.bias = random(conv.bias.raw_dim(), &mut rng);
        let mut x = random((2, ci, h, w), &mut rng);
        let mut cache = Conv2dCache::default();
        let mut y = Array4::zeros((0, 0, 0, 0));
        conv.forward(x.view(), &mut cache, &mut y).unwrap();
        let r = random(y.raw_dim(), &mut rng);
        let mut grads = Conv2dGrads::zeros_like(&conv);
        let mut dx = Array4::zeros((0, 0, 0, 0));
        conv.backward(x.view(), &mut cache, r.view(), &mut grads, Some(&mut dx)).unwrap();
        let what = format!("Conv2d({ci}, {co}, {k}, stride {s}, padding {p})");

        let num_dx = numeric_gradient(&mut x, 1e-2, |x| dot(&conv_forward(&conv, x), &r));
        assert_close(&format!("{what} d/dx"), &dx, &num_dx, 1e-3);
        let mut weight = conv.weight.clone();
        let num_dw = numeric_gradient(&mut weight, 1e-2, |w| {
            let mut c = conv.clone();
            c.weight = w.clone();
            dot(&conv_forward(&c, &x), &r)
        });
        assert_close(&format!("{what} d/dweight"), &grads.weight, &num_dw, 1e-3);
        let mut bias = conv.bias.clone();
        let num_db = numeric_gradient(&mut bias, 1e-2, |b| {
            let mut c = conv.clone();
            c.bias = b.clone();
            dot(&conv_forward(&c, &x), &r)
        });
        assert_close(&format!("{what} d/dbias"), &grads.bias, &num_db, 1e-3);
    }
}

/// Distinct values spaced 10⁻² apart, in random order.
fn distinct(shape: (usize, usize, usize, usize), rng: &mut ChaCha8Rng) -> Array4<f32> {
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    let mut values: Vec<f32> = (0..n).map(|i| i as f32 * 0.01 - 1.0).collect();
    for i in (1..n).rev() {
        values.swap(i, rng.random_range(0..=i));
    }
    Array4::from_shape_vec(shape, values).unwrap()
}

#[test]
fn pool_gradients_match_finite_differences_with_overlapping_windows() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for (k, s, h, w) in [(2, 2, 6, 6), (3, 2, 9, 9), (3, 1, 5, 6), (2, 1, 4, 4)] {
        let pool = MaxPool2d::new(k, s).unwrap();
        let mut x = distinct((2, 3, h, w), &mut rng);
        let forward = |x: &Array4<f32>| {
            let mut y = Array4::zeros((0, 0, 0, 0));
            pool.forward(x.view(), &mut MaxPool2dCache::default(), &mut y).unwrap();
            y
        };
        let mut cache = MaxPool2dCache::default();
        let mut y = Array4::zeros((0, 0, 0, 0));
        pool.forward(x.view(), &mut cache, &mut y).unwrap();
        let r = random(y.raw_dim(), &mut rng);
        let mut dx = Array4::zeros((0, 0, 0, 0));
        pool.backward(&cache, r.view(), &mut dx).unwrap();
        let num = numeric_gradient(&mut x, 2e-3, |x| dot(&forward(x), &r));
        assert_close(&format!("MaxPool2d({k}, {s}) on {h}×{w}"), &dx, &num, 1e-3);
    }
}

#[test]
fn linear_gradients_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut fc = Linear::new(7, 5).unwrap();
    fc.weight = random(fc.weight.raw_dim(), &mut rng);
    fc.bias = random(fc.bias.raw_dim(), &mut rng);
    let mut x = random((3, 7), &mut rng);
    let forward = |fc: &Linear, x: &Array2<f32>| {
        let mut y = Array2::zeros((0, 0));
        fc.forward(x.view(), &mut y).unwrap();
        y
    };
    let r = random((3, 5), &mut rng);
    let mut grads = LinearGrads::zeros_like(&fc);
    let mut dx = Array2::zeros((0, 0));
    fc.backward(x.view(), r.view(), &mut grads, Some(&mut dx)).unwrap();
    assert_close("Linear d/dx", &dx, &numeric_gradient(&mut x.clone(), 1e-2, |x| dot(&forward(&fc, x), &r)), 1e-3);
    let mut w = fc.weight.clone();
    let num_dw =
        numeric_gradient(&mut w, 1e-2, |w| dot(&forward(&Linear { weight: w.clone(), bias: fc.bias.clone() }, &x), &r));
    assert_close("Linear d/dweight", &grads.weight, &num_dw, 1e-3);
    let mut b = fc.bias.clone();
    let num_db = numeric_gradient(&mut b, 1e-2, |b| {
        dot(&forward(&Linear { weight: fc.weight.clone(), bias: b.clone() }, &x), &r)
    });
    assert_close("Linear d/dbias", &grads.bias, &num_db, 1e-3);
    x[[0, 0]] += 0.0;
}

#[test]
fn relu_gradient_matches_finite_differences_away_from_zero() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    // Keep every input at least 0.05 from the kink.
    let mut x: Array1<f32> = random(ndarray::Ix1(50), &mut rng).mapv(|v| if v.abs() < 0.05 { v + 0.1 } else { v });
    let r = random(ndarray::Ix1(50), &mut rng);
    let mut y = x.clone();
    relu(y.view_mut());
    let mut grad = r.clone();
    relu_backward(y.view(), grad.view_mut()).unwrap();
    let num = numeric_gradient(&mut x, 1e-2, |x| {
        let mut y = x.clone();
        relu(y.view_mut());
        dot(&y, &r)
    });
    assert_close("relu", &grad, &num, 1e-3);
}

#[test]
fn cross_entropy_gradient_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let mut logits = random((4, 10), &mut rng).mapv(|v| 3.0 * v);
    let labels = [3u8, 0, 9, 3];
    let mut grad = Array2::zeros((0, 0));
    cross_entropy_backward(logits.view(), &labels, &mut grad).unwrap();
    let num = numeric_gradient(&mut logits, 1e-2, |l| f64::from(cross_entropy(l.view(), &labels).unwrap()));
    assert_close("cross_entropy", &grad, &num, 2e-3);
}

#[test]
fn matrix_kernels_match_the_reference_for_every_layout() {
    common::check_gemm_against_reference();
}
