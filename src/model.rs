//! LeNet-5: the network, its forward and backward passes over a whole batch.

use ndarray::{Array2, Array4, ArrayView2, ArrayView4, Ix4};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{fmt_shape, shape_error, Error, Num, Result};
use crate::layers::{
    ensure_shape, relu, relu_backward, Conv2d, Conv2dCache, Conv2dGrads, Linear, LinearGrads, MaxPool2d, MaxPool2dCache,
};
use crate::loss::{cross_entropy_backward, softmax};

/// Side of the model's square input image, in pixels.
pub const IMAGE_SIDE: usize = 28;
/// Pixels in one input image, 28 × 28.
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
/// Number of classes: the digits 0 to 9.
pub const NUM_CLASSES: usize = 10;
/// Mean pixel of MNIST's training set (pixels in `[0, 1]`): the default `input_mean`.
pub const MNIST_MEAN: f32 = 0.1307;
/// Standard deviation of MNIST's training pixels: the default `input_std`.
pub const MNIST_STD: f32 = 0.3081;
/// The parameter tensors, in the order of [`LeNet5::parameters`], named as PyTorch names the
/// `state_dict` of a module with attributes `conv1`, `conv2`, `fc1`, `fc2`, `fc3`.
pub const PARAMETER_NAMES: [&str; 10] = [
    "conv1.weight",
    "conv1.bias",
    "conv2.weight",
    "conv2.bias",
    "fc1.weight",
    "fc1.bias",
    "fc2.weight",
    "fc2.bias",
    "fc3.weight",
    "fc3.bias",
];

/// The ten parameter tensors of a [`LeNet5`] or [`Gradients`] (same field names), each passed
/// through the method `$get`, in the order of [`PARAMETER_NAMES`].
macro_rules! ten_tensors {
    ($s:expr, $get:ident) => {
        [
            $s.conv1.weight.$get(),
            $s.conv1.bias.$get(),
            $s.conv2.weight.$get(),
            $s.conv2.bias.$get(),
            $s.fc1.weight.$get(),
            $s.fc1.bias.$get(),
            $s.fc2.weight.$get(),
            $s.fc2.bias.$get(),
            $s.fc3.weight.$get(),
            $s.fc3.bias.$get(),
        ]
    };
}

/// LeNet-5 (LeCun, Bottou, Bengio and Haffner, "Gradient-based learning applied to document
/// recognition", Proc. IEEE, 1998) as modern re-implementations define it:
///
/// ```text
/// (N,1,28,28) → normalise → conv1 Conv2d(1, 6, 5, padding 2) → ReLU → MaxPool2d(2, 2)   (N,6,14,14)
///             → conv2 Conv2d(6, 16, 5) → ReLU → MaxPool2d(2, 2)                        (N,16,5,5)
///             → flatten (N,400) → fc1 Linear(400, 120) → ReLU → fc2 Linear(120, 84) → ReLU
///             → fc3 Linear(84, 10) → logits (N,10)
/// ```
/// 61,706 parameters. Inputs are always pixels in `[0, 1]`; the normalisation
/// `(x − input_mean) / input_std` belongs to the model (its constants travel in the weights
/// file), so no caller ever normalises.
#[derive(Clone, Debug, PartialEq)]
pub struct LeNet5 {
    /// `Conv2d(1, 6, 5, stride 1, padding 2)`.
    pub conv1: Conv2d,
    /// `Conv2d(6, 16, 5, stride 1, padding 0)`.
    pub conv2: Conv2d,
    /// `MaxPool2d(2, 2)`, used after both convolutions.
    pub pool: MaxPool2d,
    /// `Linear(400, 120)`.
    pub fc1: Linear,
    /// `Linear(120, 84)`.
    pub fc2: Linear,
    /// `Linear(84, 10)`.
    pub fc3: Linear,
    /// Subtracted from every pixel before the first layer.
    pub input_mean: f32,
    /// Every pixel is divided by this after subtracting `input_mean`; > 0.
    pub input_std: f32,
}

/// The largest magnitude a normalised pixel `(x − input_mean) / input_std` may reach for `x` in
/// `[0, 1]` (10,000; MNIST's constants give at most 2.82). With every weight within
/// [`crate::train::MAX_WEIGHT`] (10,000), each layer's sums then stay finite: the logits are at
/// most about 1.5e34 in magnitude. Constants far beyond it (`input_std` 1e-40) made every
/// output NaN.
pub const MAX_NORMALISED_PIXEL: f64 = 1e4;

/// Checks the normalisation constants of a [`LeNet5`]: `input_std` positive and `input_mean`
/// finite, with normalised pixels within ±[`MAX_NORMALISED_PIXEL`].
///
/// # Errors
/// A message naming the constants and what is wrong with them.
pub(crate) fn check_normalisation(input_mean: f32, input_std: f32) -> std::result::Result<(), String> {
    if !(input_std > 0.0 && input_std.is_finite() && input_mean.is_finite()) {
        return Err(format!(
            "input_std must be a positive finite number and input_mean finite, got {} and {}",
            Num(input_std),
            Num(input_mean)
        ));
    }
    let (mean, std) = (f64::from(input_mean), f64::from(input_std));
    let largest = mean.abs().max((1.0 - mean).abs()) / std;
    if largest > MAX_NORMALISED_PIXEL {
        return Err(format!(
            "input_mean {} and input_std {} would scale pixels in [0, 1] beyond ±{}",
            Num(input_mean),
            Num(input_std),
            Num(MAX_NORMALISED_PIXEL)
        ));
    }
    Ok(())
}

/// Gradients of a loss with respect to every parameter of a [`LeNet5`], same shapes; also
/// used for SGD's momentum buffers, so the optimiser is one loop over matching tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Gradients {
    /// For `conv1`.
    pub conv1: Conv2dGrads,
    /// For `conv2`.
    pub conv2: Conv2dGrads,
    /// For `fc1`.
    pub fc1: LinearGrads,
    /// For `fc2`.
    pub fc2: LinearGrads,
    /// For `fc3`.
    pub fc3: LinearGrads,
}

impl Gradients {
    /// Zeros shaped like `model`'s parameters.
    pub fn zeros_like(model: &LeNet5) -> Self {
        Gradients {
            conv1: Conv2dGrads::zeros_like(&model.conv1),
            conv2: Conv2dGrads::zeros_like(&model.conv2),
            fc1: LinearGrads::zeros_like(&model.fc1),
            fc2: LinearGrads::zeros_like(&model.fc2),
            fc3: LinearGrads::zeros_like(&model.fc3),
        }
    }

    /// The ten tensors, flattened, in the order of [`PARAMETER_NAMES`].
    pub fn tensors(&self) -> [&[f32]; 10] {
        ten_tensors!(self, as_slice).map(|t| t.expect("gradients are contiguous"))
    }

    /// The ten tensors, flattened and mutable, in the order of [`PARAMETER_NAMES`].
    pub fn tensors_mut(&mut self) -> [&mut [f32]; 10] {
        ten_tensors!(self, as_slice_mut).map(|t| t.expect("gradients are contiguous"))
    }
}

/// The activations of one batch and their gradients, kept between [`LeNet5::forward`] and
/// [`LeNet5::backward`] and reused from batch to batch: after the first batch of a given size
/// the passes allocate nothing. One workspace serves one batch at a time.
#[derive(Clone, Debug, Default)]
pub struct Workspace {
    input: Array4<f32>,
    conv1_cache: Conv2dCache,
    conv1_out: Array4<f32>,
    pool1_cache: MaxPool2dCache,
    pool1_out: Array4<f32>,
    conv2_cache: Conv2dCache,
    conv2_out: Array4<f32>,
    pool2_cache: MaxPool2dCache,
    pool2_out: Array4<f32>,
    fc1_out: Array2<f32>,
    fc2_out: Array2<f32>,
    logits: Array2<f32>,
    grad_logits: Array2<f32>,
    grad_fc2: Array2<f32>,
    grad_fc1: Array2<f32>,
    grad_flat: Array2<f32>,
    grad_conv2: Array4<f32>,
    grad_pool1: Array4<f32>,
    grad_conv1: Array4<f32>,
}

impl Workspace {
    /// The logits of the last forward pass, `(N, 10)` (empty before the first).
    pub fn logits(&self) -> ArrayView2<'_, f32> {
        self.logits.view()
    }

    /// The activations of the last forward pass, in the network's order: conv1 after ReLU
    /// `(N, 6, 28, 28)`, pool1 `(N, 6, 14, 14)`, conv2 after ReLU `(N, 16, 10, 10)`, pool2
    /// `(N, 16, 5, 5)`, fc1 after ReLU `(N, 120)`, fc2 after ReLU `(N, 84)`.
    pub(crate) fn activations(&self) -> [&[f32]; 6] {
        fn flat<D: ndarray::Dimension>(a: &ndarray::Array<f32, D>) -> &[f32] {
            a.as_slice().expect("activations are in standard layout")
        }
        [
            flat(&self.conv1_out),
            flat(&self.pool1_out),
            flat(&self.conv2_out),
            flat(&self.pool2_out),
            flat(&self.fc1_out),
            flat(&self.fc2_out),
        ]
    }

    /// Where [`LeNet5::backward_from_logits`] starts: the gradient of the logits, resized to
    /// `(N, 10)` for the last forward batch; its contents are for the caller to write.
    pub(crate) fn grad_logits_mut(&mut self) -> &mut Array2<f32> {
        ensure_shape(&mut self.grad_logits, self.logits.raw_dim());
        &mut self.grad_logits
    }
}

/// Checks that `images` is `(N ≥ 1, 1, 28, 28)` with every pixel finite and in `[0, 1]`.
///
/// # Errors
/// [`Error::Shape`] naming the expected and the given shape; [`Error::InvalidInput`] naming the
/// first bad pixel (image, row, column) and its value.
pub fn check_images(images: &ArrayView4<f32>) -> Result<()> {
    let (n, c, h, w) = images.dim();
    if n == 0 || c != 1 || h != IMAGE_SIDE || w != IMAGE_SIDE {
        return Err(shape_error("LeNet5 input images", "(N ≥ 1, 1, 28, 28)", images.shape()));
    }
    // The common case, every pixel fine, in one tight pass; the position only on failure. A
    // fold without an early exit, which the compiler turns into SIMD compares, where `all`
    // tested one pixel at a time (2 % of a training step in wasm).
    let in_range = |v: &f32| (0.0..=1.0).contains(v);
    let all_in_range = |s: &[f32]| s.iter().fold(true, |ok, v| ok & in_range(v));
    if images.as_slice().map_or_else(|| images.iter().all(in_range), all_in_range) {
        return Ok(());
    }
    if let Some(((i, _, y, x), v)) = images.indexed_iter().find(|(_, v)| !in_range(v)) {
        return Err(Error::InvalidInput(format!(
            "pixel (row {y}, column {x}) of image {i} is {}; pixels must be finite numbers in [0, 1]",
            Num(*v)
        )));
    }
    Ok(())
}

impl LeNet5 {
    /// A freshly initialised network: uniform He initialisation of every weight that feeds a
    /// ReLU, LeCun's uniform initialisation (bound 1/√fan_in) for the output layer, which feeds
    /// the softmax (so the first predictions are near-uniform and the first loss near ln 10),
    /// zero biases,
    /// drawn in the order conv1, conv2, fc1, fc2, fc3 from ChaCha8 seeded with `seed`
    /// (no OS entropy), so the same seed gives bit-identical weights on every platform,
    /// wasm included. Normalisation constants are MNIST's ([`MNIST_MEAN`], [`MNIST_STD`]).
    pub fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let built = (|| -> Result<LeNet5> {
            Ok(LeNet5 {
                conv1: Conv2d::kaiming(1, 6, 5, 1, 2, &mut rng)?,
                conv2: Conv2d::kaiming(6, 16, 5, 1, 0, &mut rng)?,
                pool: MaxPool2d::new(2, 2)?,
                fc1: Linear::kaiming(400, 120, &mut rng)?,
                fc2: Linear::kaiming(120, 84, &mut rng)?,
                fc3: Linear::lecun(84, 10, &mut rng)?,
                input_mean: MNIST_MEAN,
                input_std: MNIST_STD,
            })
        })();
        built.expect("LeNet-5's sizes are valid")
    }

    /// Total number of trainable parameters: 61,706.
    pub fn num_parameters(&self) -> usize {
        self.parameters().iter().map(|t| t.len()).sum()
    }

    /// The shapes of the ten parameter tensors, in the order of [`PARAMETER_NAMES`]
    /// (PyTorch's layouts).
    pub fn parameter_shapes(&self) -> [Vec<usize>; 10] {
        ten_tensors!(self, shape).map(|shape| shape.to_vec())
    }

    /// The ten parameter tensors, flattened row-major, in the order of [`PARAMETER_NAMES`].
    ///
    /// # Panics
    /// If a parameter array was replaced by one that is not in standard layout.
    pub fn parameters(&self) -> [&[f32]; 10] {
        ten_tensors!(self, as_slice).map(|t| t.expect("parameters are in standard layout"))
    }

    /// The ten parameter tensors, flattened and mutable, in the order of [`PARAMETER_NAMES`].
    ///
    /// # Panics
    /// As [`LeNet5::parameters`].
    pub fn parameters_mut(&mut self) -> [&mut [f32]; 10] {
        ten_tensors!(self, as_slice_mut).map(|t| t.expect("parameters are in standard layout"))
    }

    /// Whether every parameter and both normalisation constants are finite.
    pub fn is_finite(&self) -> bool {
        self.input_mean.is_finite()
            && self.input_std.is_finite()
            && self.parameters().iter().all(|t| t.iter().all(|v| v.is_finite()))
    }

    /// Forward pass over a batch: returns the logits `(N, 10)`, kept in `workspace` with
    /// everything [`LeNet5::backward`] needs.
    ///
    /// # Errors
    /// As [`check_images`]: images must be `(N ≥ 1, 1, 28, 28)`, pixels finite in `[0, 1]`.
    pub fn forward<'w>(&self, images: ArrayView4<f32>, workspace: &'w mut Workspace) -> Result<ArrayView2<'w, f32>> {
        check_images(&images)?;
        check_normalisation(self.input_mean, self.input_std).map_err(Error::InvalidInput)?;
        let n = images.dim().0;
        let ws = workspace;
        ensure_shape(&mut ws.input, Ix4(n, 1, IMAGE_SIDE, IMAGE_SIDE));
        let (mean, inv_std) = (self.input_mean, 1.0 / self.input_std);
        ndarray::Zip::from(&mut ws.input).and(&images).for_each(|d, &x| *d = (x - mean) * inv_std);

        self.conv1.forward_relu(ws.input.view(), &mut ws.conv1_cache, &mut ws.conv1_out)?;
        self.pool.forward(ws.conv1_out.view(), &mut ws.pool1_cache, &mut ws.pool1_out)?;
        self.conv2.forward_relu(ws.pool1_out.view(), &mut ws.conv2_cache, &mut ws.conv2_out)?;
        self.pool.forward(ws.conv2_out.view(), &mut ws.pool2_cache, &mut ws.pool2_out)?;
        let flat = flatten(&ws.pool2_out)?;
        self.fc1.forward(flat, &mut ws.fc1_out)?;
        relu(ws.fc1_out.view_mut());
        self.fc2.forward(ws.fc1_out.view(), &mut ws.fc2_out)?;
        relu(ws.fc2_out.view_mut());
        self.fc3.forward(ws.fc2_out.view(), &mut ws.logits)?;
        Ok(ws.logits.view())
    }

    /// Backward pass after [`LeNet5::forward`] on the same `workspace`: computes the mean
    /// softmax cross-entropy of the batch against `labels` (returned, in nats) and writes the
    /// gradient of that loss with respect to every parameter into `grads`.
    ///
    /// # Errors
    /// [`Error::Shape`] when `labels` does not hold one label per image of the forward batch,
    /// [`Error::InvalidInput`] for a label above 9.
    pub fn backward(&self, workspace: &mut Workspace, labels: &[u8], grads: &mut Gradients) -> Result<f32> {
        let loss = cross_entropy_backward(workspace.logits.view(), labels, &mut workspace.grad_logits)?;
        self.backward_from_logits(workspace, grads, None)?;
        Ok(loss)
    }

    /// The backward pass below the loss: from the gradient of some scalar with respect to the
    /// logits, already in `workspace.grad_logits` `(N, 10)`, to every parameter's gradient
    /// and, when `grad_pixels` is given, to the input pixels `(N, 1, 28, 28)` (through the
    /// normalisation, so in units of the `[0, 1]` pixels the caller gave).
    pub(crate) fn backward_from_logits(
        &self,
        workspace: &mut Workspace,
        grads: &mut Gradients,
        mut grad_pixels: Option<&mut Array4<f32>>,
    ) -> Result<()> {
        let ws = workspace;
        if ws.grad_logits.dim() != ws.logits.dim() {
            return Err(shape_error("LeNet5 logits gradient", fmt_shape(ws.logits.shape()), ws.grad_logits.shape()));
        }
        self.fc3.backward(ws.fc2_out.view(), ws.grad_logits.view(), &mut grads.fc3, Some(&mut ws.grad_fc2))?;
        relu_backward(ws.fc2_out.view(), ws.grad_fc2.view_mut())?;
        self.fc2.backward(ws.fc1_out.view(), ws.grad_fc2.view(), &mut grads.fc2, Some(&mut ws.grad_fc1))?;
        relu_backward(ws.fc1_out.view(), ws.grad_fc1.view_mut())?;
        self.fc1.backward(flatten(&ws.pool2_out)?, ws.grad_fc1.view(), &mut grads.fc1, Some(&mut ws.grad_flat))?;
        let grad_pool2 = ws
            .grad_flat
            .view()
            .into_shape_with_order(ws.pool2_out.raw_dim())
            .map_err(|_| shape_error("LeNet5 fc1 input gradient", "(N, 400)", ws.grad_flat.shape()))?;
        self.pool.backward(&ws.pool2_cache, grad_pool2, &mut ws.grad_conv2)?;
        relu_backward(ws.conv2_out.view(), ws.grad_conv2.view_mut())?;
        self.conv2.backward(
            ws.pool1_out.view(),
            &mut ws.conv2_cache,
            ws.grad_conv2.view(),
            &mut grads.conv2,
            Some(&mut ws.grad_pool1),
        )?;
        self.pool.backward(&ws.pool1_cache, ws.grad_pool1.view(), &mut ws.grad_conv1)?;
        relu_backward(ws.conv1_out.view(), ws.grad_conv1.view_mut())?;
        self.conv1.backward(
            ws.input.view(),
            &mut ws.conv1_cache,
            ws.grad_conv1.view(),
            &mut grads.conv1,
            grad_pixels.as_deref_mut(),
        )?;
        if let Some(grad) = grad_pixels {
            // The input was (x − mean) / std: its pixels' gradient is the normalised one / std.
            let inv_std = 1.0 / self.input_std;
            grad.mapv_inplace(|g| g * inv_std);
        }
        Ok(())
    }

    /// The logits `(N, 10)` of a batch of images `(N, 1, 28, 28)`; allocates a workspace.
    ///
    /// # Errors
    /// As [`LeNet5::forward`].
    pub fn logits(&self, images: ArrayView4<f32>) -> Result<Array2<f32>> {
        let mut workspace = Workspace::default();
        Ok(self.forward(images, &mut workspace)?.to_owned())
    }

    /// The probabilities `(N, 10)` (softmax of the logits, each row sums to 1) of a batch of
    /// images `(N, 1, 28, 28)`; allocates a workspace.
    ///
    /// # Errors
    /// As [`LeNet5::forward`].
    pub fn predict(&self, images: ArrayView4<f32>) -> Result<Array2<f32>> {
        let mut workspace = Workspace::default();
        Ok(softmax(self.forward(images, &mut workspace)?))
    }
}

fn flatten(pooled: &Array4<f32>) -> Result<ArrayView2<'_, f32>> {
    let (n, c, h, w) = pooled.dim();
    pooled
        .view()
        .into_shape_with_order((n, c * h * w))
        .map_err(|_| shape_error("LeNet5 flatten", "a contiguous (N, 16, 5, 5)", pooled.shape()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_61706_parameters_with_pytorch_shapes() {
        let model = LeNet5::new(0);
        assert_eq!(model.num_parameters(), 61_706);
        assert_eq!(model.parameter_shapes()[0], vec![6, 1, 5, 5]);
        assert_eq!(model.parameter_shapes()[4], vec![120, 400]);
    }

    #[test]
    fn same_seed_same_weights_other_seed_other_weights() {
        assert_eq!(LeNet5::new(7), LeNet5::new(7));
        assert_ne!(LeNet5::new(7).conv1.weight, LeNet5::new(8).conv1.weight);
    }

    #[test]
    fn kaiming_bounds_hold() {
        let model = LeNet5::new(1);
        let bound = (6.0f32 / 400.0).sqrt();
        let w = &model.fc1.weight;
        assert!(w.iter().all(|v| v.abs() <= bound));
        // 48,000 uniform draws: the largest is within 1 % of the bound.
        assert!(w.iter().fold(0.0f32, |m, v| m.max(v.abs())) > 0.99 * bound);
        assert!(model.fc1.bias.iter().all(|&b| b == 0.0));
    }

    #[test]
    fn wrong_input_shape_names_expected_and_given() {
        let model = LeNet5::new(0);
        let err = model.logits(Array4::zeros((2, 3, 28, 28)).view()).unwrap_err().to_string();
        assert!(err.contains("(N ≥ 1, 1, 28, 28)") && err.contains("(2, 3, 28, 28)"), "{err}");
    }

    #[test]
    fn out_of_range_pixel_is_named() {
        let model = LeNet5::new(0);
        let mut x = Array4::zeros((1, 1, 28, 28));
        x[[0, 0, 3, 4]] = f32::NAN;
        let err = model.logits(x.view()).unwrap_err().to_string();
        assert!(err.contains("row 3, column 4") && err.contains("NaN"), "{err}");
    }
}
