//! The rectified linear unit.

use ndarray::{ArrayView, ArrayViewMut, Dimension};

use crate::error::{shape_error, Result};

/// `x ← max(x, 0)` in place, for a tensor of any shape (Nair and Hinton, ICML 2010).
/// NaN stays NaN, so a diverging network is seen, not hidden.
pub fn relu<D: Dimension>(mut x: ArrayViewMut<f32, D>) {
    x.mapv_inplace(|v| if v < 0.0 { 0.0 } else { v });
}

/// Backward pass of [`relu`], in place: zeroes the gradient wherever the forward *output* was
/// not positive (the derivative at 0 is taken as 0, as PyTorch does). `output` and `grad` have
/// the same shape, any.
///
/// # Errors
/// [`crate::Error::Shape`] when the shapes differ.
pub fn relu_backward<D: Dimension>(output: ArrayView<f32, D>, mut grad: ArrayViewMut<f32, D>) -> Result<()> {
    if output.shape() != grad.shape() {
        return Err(shape_error("relu grad", format!("{:?} (the output's shape)", output.shape()), grad.shape()));
    }
    // A store on every element, not only where y ≤ 0: a select the compiler vectorises, where a
    // branch on the sign is mispredicted about half the time.
    ndarray::Zip::from(&mut grad).and(&output).for_each(|g, &y| *g = if y <= 0.0 { 0.0 } else { *g });
    Ok(())
}
