//! Softmax and the cross-entropy loss on logits.

use ndarray::{Array2, ArrayView2, ArrayViewMut1};

use crate::error::{fmt_shape, shape_error, Error, Result};
use crate::math::exp;

/// Softmax of every row of `logits` `(N, C)`, computed as `exp(x − max) / Σ exp(x − max)` so
/// that no exponential overflows: logits `[1000, 0, −1000]` give `[1, 0, 0]`.
/// A row holding NaN or ±∞ gives NaN probabilities (nothing is hidden).
pub fn softmax(logits: ArrayView2<f32>) -> Array2<f32> {
    let mut out = logits.to_owned();
    for row in out.rows_mut() {
        softmax_row(row);
    }
    out
}

fn softmax_row(mut row: ArrayViewMut1<f32>) {
    let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0.0f32;
    row.mapv_inplace(|v| {
        let e = exp(v - max);
        sum += e;
        e
    });
    row.mapv_inplace(|e| e / sum);
}

/// Log-sum-exp of a row, `max + ln Σ exp(x − max)`: exact for any finite logits.
fn log_sum_exp(row: ndarray::ArrayView1<f32>) -> f32 {
    let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let sum: f32 = row.iter().map(|&v| exp(v - max)).sum();
    max + sum.ln()
}

fn check(logits: &ArrayView2<f32>, labels: &[u8]) -> Result<()> {
    let (n, c) = logits.dim();
    if n == 0 || n != labels.len() {
        return Err(shape_error(
            "cross_entropy logits",
            format!("({}, C), one row per label", labels.len()),
            logits.shape(),
        ));
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| usize::from(l) >= c) {
        return Err(Error::InvalidInput(format!("label {l} at index {i} is outside 0..={}", c - 1)));
    }
    Ok(())
}

/// Softmax cross-entropy, the mean over the batch of `−ln softmax(logits[n])[labels[n]]`,
/// computed as `logsumexp(row) − row[label]` so that it stays finite for logits in the
/// hundreds: logits `[−249.873093, −424.126709, −460.292542, 378.097443, −292.614532]` give
/// 627.9705 for label 0 and 0 for label 3.
///
/// # Shapes
/// `logits`: `(N, C)`; `labels`: `N` classes in `0..C`. Returns a scalar, in nats.
///
/// # Errors
/// [`Error::Shape`] when the counts differ or `N = 0`; [`Error::InvalidInput`] for a label ≥ C.
pub fn cross_entropy(logits: ArrayView2<f32>, labels: &[u8]) -> Result<f32> {
    check(&logits, labels)?;
    let total: f64 =
        logits.rows().into_iter().zip(labels).map(|(row, &l)| f64::from(log_sum_exp(row) - row[usize::from(l)])).sum();
    Ok((total / labels.len() as f64) as f32)
}

/// [`cross_entropy`] and its gradient with respect to the logits, `(softmax(logits) −
/// one_hot(labels)) / N`, written into `grad` (reshaped to `(N, C)` if needed).
///
/// # Errors
/// As [`cross_entropy`].
pub fn cross_entropy_backward(logits: ArrayView2<f32>, labels: &[u8], grad: &mut Array2<f32>) -> Result<f32> {
    check(&logits, labels)?;
    let (n, c) = logits.dim();
    crate::layers::ensure_shape(grad, ndarray::Ix2(n, c));
    grad.assign(&logits);
    let scale = 1.0 / n as f32;
    let mut total = 0.0f64;
    for (row, &l) in grad.rows_mut().into_iter().zip(labels) {
        let l = usize::from(l);
        total += f64::from(log_sum_exp(row.view()) - row[l]);
        let mut row = row;
        softmax_row(row.view_mut());
        row[l] -= 1.0;
        row.mapv_inplace(|v| v * scale);
    }
    if grad.dim() != (n, c) {
        return Err(shape_error("cross_entropy grad", fmt_shape(&[n, c]), grad.shape()));
    }
    Ok((total / n as f64) as f32)
}
