//! Fully-connected layer.

use ndarray::{Array1, Array2, ArrayView2, Ix2};

use super::{ensure_shape, kaiming_uniform};
use crate::error::{fmt_shape, shape_error, Error, Result};
use crate::gemm::gemm;

/// A fully-connected layer: `y = x · weightᵀ + bias`, as PyTorch's `nn.Linear`.
///
/// # Shapes
/// - `weight`: `(out_features, in_features)`, PyTorch's layout;
/// - `bias`: `(out_features)`;
/// - input: `(N, in_features)`; output: `(N, out_features)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    /// `(out_features, in_features)`.
    pub weight: Array2<f32>,
    /// `(out_features)`.
    pub bias: Array1<f32>,
}

/// Gradients of a loss with respect to a [`Linear`]'s parameters; same shapes as the layer's.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearGrads {
    /// `(out_features, in_features)`.
    pub weight: Array2<f32>,
    /// `(out_features)`.
    pub bias: Array1<f32>,
}

impl LinearGrads {
    /// Zero gradients shaped like `layer`'s parameters.
    pub fn zeros_like(layer: &Linear) -> Self {
        LinearGrads { weight: Array2::zeros(layer.weight.raw_dim()), bias: Array1::zeros(layer.bias.raw_dim()) }
    }
}

impl Linear {
    /// A layer with all weights and biases zero.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when a size is zero.
    pub fn new(in_features: usize, out_features: usize) -> Result<Self> {
        if in_features == 0 || out_features == 0 {
            return Err(Error::InvalidInput(format!(
                "Linear needs in_features and out_features ≥ 1, got {in_features} and {out_features}"
            )));
        }
        Ok(Linear { weight: Array2::zeros((out_features, in_features)), bias: Array1::zeros(out_features) })
    }

    /// Like [`Linear::new`], with weights drawn by uniform He initialisation (fan_in =
    /// in_features) and zero biases.
    ///
    /// # Errors
    /// As [`Linear::new`].
    pub fn kaiming(in_features: usize, out_features: usize, rng: &mut impl rand::Rng) -> Result<Self> {
        let mut layer = Self::new(in_features, out_features)?;
        kaiming_uniform(layer.weight.as_slice_mut().expect("fresh array is contiguous"), in_features, rng);
        Ok(layer)
    }

    /// Like [`Linear::new`], with weights drawn from U(−b, b), b = 1/√in_features (LeCun,
    /// Bottou, Orr and Müller, "Efficient BackProp", 1998; PyTorch's default for `nn.Linear`),
    /// and zero biases: for a layer that no ReLU follows, such as the one giving the logits.
    ///
    /// # Errors
    /// As [`Linear::new`].
    pub fn lecun(in_features: usize, out_features: usize, rng: &mut impl rand::Rng) -> Result<Self> {
        let mut layer = Self::new(in_features, out_features)?;
        // kaiming_uniform's bound is √(6 / fan_in); a fan_in six times larger gives 1/√fan_in.
        kaiming_uniform(layer.weight.as_slice_mut().expect("fresh array is contiguous"), 6 * in_features, rng);
        Ok(layer)
    }

    /// Number of input features.
    pub fn in_features(&self) -> usize {
        self.weight.dim().1
    }

    /// Number of output features.
    pub fn out_features(&self) -> usize {
        self.weight.dim().0
    }

    fn check(&self, input: &ArrayView2<f32>) -> Result<()> {
        let (n, d) = input.dim();
        if n == 0 || d != self.in_features() {
            return Err(shape_error("Linear input", format!("(N ≥ 1, {})", self.in_features()), input.shape()));
        }
        if self.bias.len() != self.out_features() {
            return Err(shape_error("Linear bias", fmt_shape(&[self.out_features()]), self.bias.shape()));
        }
        Ok(())
    }

    /// Forward pass: writes `input · weightᵀ + bias` into `output` (reshaped to
    /// `(N, out_features)` if needed). Backward needs `input` again: keep it.
    ///
    /// # Errors
    /// [`Error::Shape`] when the input is not `(N ≥ 1, in_features)`.
    pub fn forward(&self, input: ArrayView2<f32>, output: &mut Array2<f32>) -> Result<()> {
        self.check(&input)?;
        ensure_shape(output, Ix2(input.nrows(), self.out_features()));
        for mut row in output.rows_mut() {
            row.assign(&self.bias);
        }
        gemm(input, self.weight.t(), true, output.view_mut());
        Ok(())
    }

    /// Backward pass, given the `input` of the forward pass and the loss's gradient with respect
    /// to the output: writes the parameter gradients into `grads` (overwriting them) and, when
    /// asked, the input gradient `grad_output · weight` into `grad_input`.
    ///
    /// # Errors
    /// [`Error::Shape`] when a shape disagrees with the layer's or with each other.
    pub fn backward(
        &self,
        input: ArrayView2<f32>,
        grad_output: ArrayView2<f32>,
        grads: &mut LinearGrads,
        grad_input: Option<&mut Array2<f32>>,
    ) -> Result<()> {
        self.check(&input)?;
        let expected = (input.nrows(), self.out_features());
        if grad_output.dim() != expected {
            return Err(shape_error("Linear grad_output", fmt_shape(&[expected.0, expected.1]), grad_output.shape()));
        }
        if grads.weight.dim() != self.weight.dim() || grads.bias.dim() != self.bias.dim() {
            return Err(shape_error("Linear grads.weight", fmt_shape(self.weight.shape()), grads.weight.shape()));
        }
        gemm(grad_output.t(), input, false, grads.weight.view_mut());
        for (b, column) in grads.bias.iter_mut().zip(grad_output.columns()) {
            *b = column.iter().map(|&v| f64::from(v)).sum::<f64>() as f32;
        }
        if let Some(grad_input) = grad_input {
            ensure_shape(grad_input, Ix2(input.nrows(), self.in_features()));
            gemm(grad_output, self.weight.view(), false, grad_input.view_mut());
        }
        Ok(())
    }
}
