//! The pieces of a training run that are not the session itself: evaluation, the learning-rate
//! schedules, the seeded data order, `argmax`. The run is [`crate::session::Session`].

use ndarray::{ArrayView4, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::loss::cross_entropy;
use crate::model::{LeNet5, Workspace, NUM_CLASSES};

/// Largest weight magnitude a step may leave. Trained LeNet-5 weights stay below 1; beyond 10⁴
/// the run has diverged, and five layers on, logits would overflow f32.
pub const MAX_WEIGHT: f32 = 1e4;

/// Accuracy, mean loss, per-class accuracy and confusion matrix of a model over labelled images.
#[derive(Clone, Copy, Debug, PartialEq, miniserde::Serialize, miniserde::Deserialize)]
pub struct Evaluation {
    /// The training step of the weights evaluated (0 outside a session).
    pub step: u64,
    /// Fraction of images whose most probable class is their label, in `[0, 1]`.
    pub accuracy: f32,
    /// Mean softmax cross-entropy, in nats.
    pub loss: f32,
    /// Number of images classified correctly.
    pub correct: usize,
    /// Number of images evaluated.
    pub count: usize,
    /// Accuracy on the images of each digit, in `[0, 1]` (0 for a digit with no image).
    pub per_class: [f32; NUM_CLASSES],
    /// `confusion[label][predicted]`: how many images of digit `label` were read as `predicted`.
    pub confusion: [[u64; NUM_CLASSES]; NUM_CLASSES],
}

impl Evaluation {
    /// An evaluation from its counts: `correct` of `count` right, mean loss `loss` (nats) and
    /// the confusion matrix, from which the per-class accuracies are derived.
    pub fn from_counts(
        step: u64,
        correct: usize,
        count: usize,
        loss: f32,
        confusion: [[u64; NUM_CLASSES]; NUM_CLASSES],
    ) -> Self {
        let per_class = std::array::from_fn(|d| {
            let row: u64 = confusion[d].iter().sum();
            if row == 0 {
                0.0
            } else {
                confusion[d][d] as f32 / row as f32
            }
        });
        Evaluation { step, accuracy: correct as f32 / count.max(1) as f32, loss, correct, count, per_class, confusion }
    }
}

/// Accuracy, mean loss and confusion matrix of `model` over `images` `(N, 1, 28, 28)` and
/// `labels`, in batches of `batch_size` (memory grows with it; 1,000 is a good size).
///
/// # Errors
/// [`Error::InvalidInput`] when `batch_size` is 0, or the counts of images and labels differ,
/// or a label is above 9; [`Error::Shape`] for images of the wrong shape.
pub fn evaluate(
    model: &LeNet5,
    workspace: &mut Workspace,
    images: ArrayView4<f32>,
    labels: &[u8],
    batch_size: usize,
) -> Result<Evaluation> {
    let n = images.dim().0;
    if batch_size == 0 {
        return Err(Error::InvalidInput("batch_size must be at least 1".into()));
    }
    if n != labels.len() || n == 0 {
        return Err(Error::InvalidInput(format!(
            "{n} images and {} labels: there must be one label per image, and at least one",
            labels.len()
        )));
    }
    let (mut correct, mut total_loss) = (0usize, 0.0f64);
    let mut confusion = [[0u64; NUM_CLASSES]; NUM_CLASSES];
    for start in (0..n).step_by(batch_size) {
        let end = (start + batch_size).min(n);
        let batch_labels = &labels[start..end];
        let logits = model.forward(images.slice_axis(Axis(0), (start..end).into()), workspace)?;
        total_loss += f64::from(cross_entropy(logits, batch_labels)?) * (end - start) as f64;
        for (row, &label) in logits.rows().into_iter().zip(batch_labels) {
            let predicted = argmax(row.iter().copied());
            correct += usize::from(predicted == usize::from(label));
            confusion[usize::from(label)][predicted] += 1;
        }
    }
    Ok(Evaluation::from_counts(0, correct, n, (total_loss / n as f64) as f32, confusion))
}

/// Index of the largest value; the first on ties; 0 when there are none. NaN never wins
/// over a number.
pub fn argmax(values: impl IntoIterator<Item = f32>) -> usize {
    let (mut best, mut best_value) = (0, f32::NAN);
    for (i, v) in values.into_iter().enumerate() {
        if v > best_value || best_value.is_nan() && !v.is_nan() {
            (best, best_value) = (i, v);
        }
    }
    best
}

/// How the learning rate changes over a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, miniserde::Serialize, miniserde::Deserialize, Default)]
pub enum LrSchedule {
    /// The base rate throughout.
    #[serde(rename = "constant")]
    Constant,
    /// Cosine decay from the base rate to 0 over the run, after a linear warm-up over the first
    /// 2 % of steps (Loshchilov and Hutter, "SGDR", ICLR 2017, without restarts); past the end of
    /// the run, 1 % of the base rate.
    #[default]
    #[serde(rename = "cosine")]
    Cosine,
    /// The base rate divided by 10 after 50 % and again after 75 % of the run.
    #[serde(rename = "step")]
    Step,
}

impl LrSchedule {
    /// The learning rate at `step` (0-based) of a run of `total_steps`, for base rate `base`.
    pub fn rate(self, base: f32, step: u64, total_steps: u64) -> f32 {
        let total = total_steps.max(1) as f64;
        let t = (step as f64 / total).min(1.0);
        let factor = match self {
            LrSchedule::Constant => 1.0,
            LrSchedule::Cosine => {
                let warmup = 0.02;
                if step >= total_steps {
                    // A run that goes on past its schedule (the page trains until stopped)
                    // keeps learning slowly, as the step schedule's last stage does.
                    0.01
                } else if t < warmup {
                    (step as f64 + 1.0) / (warmup * total).max(1.0)
                } else {
                    let x = std::f64::consts::PI * (t - warmup) / (1.0 - warmup);
                    0.5 * (1.0 + crate::math::cos(x))
                }
            }
            LrSchedule::Step => {
                if t < 0.5 {
                    1.0
                } else if t < 0.75 {
                    0.1
                } else {
                    0.01
                }
            }
        };
        (f64::from(base) * factor.min(1.0)) as f32
    }
}

/// A permutation of `0..n` drawn by Fisher–Yates from a ChaCha8 generator: the same `seed` and
/// `epoch` give the same order on every platform.
pub fn shuffled_indices(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        // u32 draws, not usize: usize is 32 bits in wasm and 64 natively.
        let j = rng.random_range(0..=i as u32) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum_and_never_nan() {
        assert_eq!(argmax([0.1, 0.7, 0.7, 0.2]), 1);
        assert_eq!(argmax([f32::NAN, 0.3, 0.5]), 2);
        assert_eq!(argmax([0.3, f32::NAN, 0.2]), 0);
        assert_eq!(argmax([f32::NAN, f32::NAN]), 0);
        assert_eq!(argmax(std::iter::empty()), 0);
    }

    #[test]
    fn schedules_start_at_the_base_rate_and_end_low() {
        let total = 1000;
        assert_eq!(LrSchedule::Constant.rate(0.1, 999, total), 0.1);
        assert!((LrSchedule::Cosine.rate(0.1, 20, total) - 0.1).abs() < 1e-3);
        assert!(LrSchedule::Cosine.rate(0.1, 0, total) < 0.01, "warm-up starts low");
        assert!(LrSchedule::Cosine.rate(0.1, 999, total) < 1e-5);
        assert!((LrSchedule::Cosine.rate(0.1, 1000, total) - 1e-3).abs() < 1e-9, "past the end: 1 %");
        assert!((LrSchedule::Step.rate(0.1, 600, total) - 0.01).abs() < 1e-7);
        assert!((LrSchedule::Step.rate(0.1, 800, total) - 0.001).abs() < 1e-8);
    }

    #[test]
    fn shuffles_are_permutations_that_depend_on_seed_and_epoch() {
        let a = shuffled_indices(1000, 0, 0);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_eq!(a, shuffled_indices(1000, 0, 0));
        assert_ne!(a, shuffled_indices(1000, 0, 1));
        assert_ne!(a, shuffled_indices(1000, 1, 0));
    }
}
