//! Training: one SGD step on a batch, divergence recovery, evaluation, schedules, shuffling.

use ndarray::{Array2, ArrayView4, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::idx::Dataset;
use crate::error::{Error, Result};
use crate::loss::cross_entropy;
use crate::model::{Gradients, LeNet5, Workspace, NUM_CLASSES};
use crate::optim::{sgd_update, SgdConfig};

/// Largest weight magnitude a step may leave. Trained LeNet-5 weights stay below 1; beyond 10⁴
/// the run has diverged, and five layers on, logits would overflow f32.
pub const MAX_WEIGHT: f32 = 1e4;

/// A model together with everything one SGD step needs: gradients, momentum buffers, a
/// workspace for the activations, and a copy of the last finite weights.
///
/// Divergence is caught in two places, and either way the step returns [`Error::Diverged`]:
/// - an update that would make any weight non-finite, or larger in magnitude than
///   [`MAX_WEIGHT`], is undone;
/// - a step whose loss is NaN or infinite means the *previous* update already broke the model
///   (finite weights can still overflow the logits), so the weights and momentum go back to
///   what they were before that update: the last weights known to give a finite loss.
///
/// So a diverging run always keeps good weights, and predictions keep working.
#[derive(Clone, Debug)]
pub struct Trainer {
    model: LeNet5,
    config: SgdConfig,
    grads: Gradients,
    velocity: Gradients,
    backup: Gradients,
    backup_velocity: Gradients,
    /// Whether `backup` holds the weights before the last successful update.
    backup_valid: bool,
    workspace: Workspace,
    steps: u64,
}

/// Accuracy and mean loss of a model over a set of labelled images.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Fraction of images whose most probable class is their label, in `[0, 1]`.
    pub accuracy: f32,
    /// Mean softmax cross-entropy, in nats.
    pub loss: f32,
    /// Number of images classified correctly.
    pub correct: usize,
    /// Number of images evaluated.
    pub count: usize,
}

impl Trainer {
    /// A trainer for `model` with SGD settings `config`; momentum starts at zero.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when a setting is out of range (see [`SgdConfig::validate`]).
    pub fn new(model: LeNet5, config: SgdConfig) -> Result<Self> {
        config.validate()?;
        let zeros = Gradients::zeros_like(&model);
        Ok(Trainer {
            grads: zeros.clone(),
            velocity: zeros.clone(),
            backup: zeros.clone(),
            backup_velocity: zeros,
            backup_valid: false,
            model,
            config,
            workspace: Workspace::default(),
            steps: 0,
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &LeNet5 {
        &self.model
    }

    /// Replaces the model (for instance with weights loaded from a file) and clears momentum.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the new model has non-finite weights; nothing changes then.
    pub fn set_model(&mut self, model: LeNet5) -> Result<()> {
        if !model.is_finite() {
            return Err(Error::InvalidInput("the new model has non-finite weights".into()));
        }
        self.model = model;
        for v in self.velocity.tensors_mut() {
            v.fill(0.0);
        }
        self.backup_valid = false;
        Ok(())
    }

    /// Consumes the trainer, giving back its model.
    pub fn into_model(self) -> LeNet5 {
        self.model
    }

    /// The SGD settings.
    pub fn config(&self) -> SgdConfig {
        self.config
    }

    /// Changes the SGD settings; takes effect at the next step; momentum is kept.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the bad setting; the settings stay as they were.
    pub fn set_config(&mut self, config: SgdConfig) -> Result<()> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// Number of successful steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The workspace of the last step or evaluation, e.g. to read its logits.
    pub fn workspace(&self) -> &Workspace {
        &self.workspace
    }

    /// One SGD step on a batch: forward, backward, update. Returns the batch's mean
    /// cross-entropy computed *before* the update, in nats.
    ///
    /// # Shapes
    /// `images`: `(N, 1, 28, 28)`, pixels in `[0, 1]`; `labels`: `N` digits.
    ///
    /// # Errors
    /// [`Error::Shape`] / [`Error::InvalidInput`] for bad images or labels (nothing changes);
    /// [`Error::Diverged`] when the loss or the updated weights are not finite (the weights and
    /// momentum are restored to what they were before the step).
    pub fn train_step(&mut self, images: ArrayView4<f32>, labels: &[u8]) -> Result<f32> {
        if labels.len() != images.dim().0 {
            return Err(Error::InvalidInput(format!(
                "{} images but {} labels: there must be one label per image",
                images.dim().0,
                labels.len()
            )));
        }
        self.model.forward(images, &mut self.workspace)?;
        let loss = self.model.backward(&mut self.workspace, labels, &mut self.grads)?;
        if !loss.is_finite() {
            let restored = if self.backup_valid {
                self.restore_backup();
                self.backup_valid = false;
                "the weights before the previous update were restored"
            } else {
                "the weights were left as they were"
            };
            return Err(Error::Diverged(format!("the loss is {loss} at step {}; {restored}", self.steps + 1)));
        }
        for (dst, src) in self.backup.tensors_mut().into_iter().zip(self.model.parameters()) {
            dst.copy_from_slice(src);
        }
        for (dst, src) in self.backup_velocity.tensors_mut().into_iter().zip(self.velocity.tensors()) {
            dst.copy_from_slice(src);
        }
        let mut finite = true;
        for ((param, grad), velocity) in
            self.model.parameters_mut().into_iter().zip(self.grads.tensors()).zip(self.velocity.tensors_mut())
        {
            sgd_update(&self.config, param, grad, velocity);
            // NaN fails the comparison too.
            finite &= param.iter().all(|v| v.abs() <= MAX_WEIGHT);
        }
        if !finite {
            self.restore_backup();
            self.backup_valid = false;
            return Err(Error::Diverged(format!(
                "step {} would make weights non-finite or larger than {MAX_WEIGHT} (learning rate {}); the last good weights were restored",
                self.steps + 1,
                self.config.learning_rate
            )));
        }
        self.backup_valid = true;
        self.steps += 1;
        Ok(loss)
    }

    fn restore_backup(&mut self) {
        for (dst, src) in self.model.parameters_mut().into_iter().zip(self.backup.tensors()) {
            dst.copy_from_slice(src);
        }
        for (dst, src) in self.velocity.tensors_mut().into_iter().zip(self.backup_velocity.tensors()) {
            dst.copy_from_slice(src);
        }
    }

    /// Accuracy and mean loss of the model over `images` `(N, 1, 28, 28)` and `labels`,
    /// in batches of `batch_size`; changes no weight.
    ///
    /// # Errors
    /// As [`evaluate`].
    pub fn evaluate(&mut self, images: ArrayView4<f32>, labels: &[u8], batch_size: usize) -> Result<Evaluation> {
        evaluate(&self.model, &mut self.workspace, images, labels, batch_size, None)
    }
}

/// Accuracy and mean loss of `model` over `images` `(N, 1, 28, 28)` and `labels`, in batches
/// of `batch_size` (memory grows with it; 1,000 is a good size). When `confusion` is given it
/// must be `(10, 10)` and receives, added, the count of each (label, prediction) pair.
///
/// # Errors
/// [`Error::InvalidInput`] when `batch_size` is 0, or the counts of images and labels differ,
/// or a label is above 9; [`Error::Shape`] for images of the wrong shape or a confusion matrix
/// that is not `(10, 10)`.
pub fn evaluate(
    model: &LeNet5,
    workspace: &mut Workspace,
    images: ArrayView4<f32>,
    labels: &[u8],
    batch_size: usize,
    mut confusion: Option<&mut Array2<u64>>,
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
    if let Some(c) = confusion.as_deref() {
        if c.dim() != (NUM_CLASSES, NUM_CLASSES) {
            return Err(crate::error::shape_error("confusion matrix", "(10, 10)", c.shape()));
        }
    }
    let (mut correct, mut total_loss) = (0usize, 0.0f64);
    for start in (0..n).step_by(batch_size) {
        let end = (start + batch_size).min(n);
        let batch_labels = &labels[start..end];
        let logits = model.forward(images.slice_axis(Axis(0), (start..end).into()), workspace)?;
        total_loss += f64::from(cross_entropy(logits, batch_labels)?) * (end - start) as f64;
        for (row, &label) in logits.rows().into_iter().zip(batch_labels) {
            let predicted = argmax(row.iter().copied());
            correct += usize::from(predicted == usize::from(label));
            if let Some(c) = confusion.as_deref_mut() {
                c[[usize::from(label), predicted]] += 1;
            }
        }
    }
    Ok(Evaluation { accuracy: correct as f32 / n as f32, loss: (total_loss / n as f64) as f32, correct, count: n })
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// The base rate throughout.
    Constant,
    /// Cosine decay from the base rate to 0 over the run, after a linear warm-up over the first
    /// 2 % of steps (Loshchilov and Hutter, "SGDR", ICLR 2017, without restarts).
    #[default]
    Cosine,
    /// The base rate divided by 10 after 50 % and again after 75 % of the run.
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
                if t < warmup {
                    (step as f64 + 1.0) / (warmup * total).max(1.0)
                } else {
                    0.5 * (1.0 + (std::f64::consts::PI * (t - warmup) / (1.0 - warmup)).cos())
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

/// A training recipe: everything that decides a run besides the data.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per SGD step.
    pub batch_size: usize,
    /// SGD settings; `learning_rate` is the schedule's base rate.
    pub sgd: SgdConfig,
    /// How the learning rate changes over the run.
    pub schedule: LrSchedule,
    /// Seed of the initial weights and of the shuffling.
    pub seed: u64,
}

impl Default for Recipe {
    /// The default recipe: 10 epochs of batches of 32, SGD with learning rate 0.02 under a
    /// cosine schedule, momentum 0.9, weight decay 5·10⁻⁴, seed 0. On MNIST it reaches
    /// 98.5 % test accuracy after one epoch and 99 % within ten (README).
    fn default() -> Self {
        Recipe { epochs: 10, batch_size: 32, sgd: SgdConfig::default(), schedule: LrSchedule::Cosine, seed: 0 }
    }
}

/// Copies the images and labels of `data` at `indices` into a batch: `images` must be
/// `(indices.len(), 1, 28, 28)`; `labels` is replaced.
///
/// # Panics
/// If an index is out of range or `images` has another number of rows: callers draw both from
/// the same data set.
pub fn gather(data: &Dataset, indices: &[usize], images: &mut ndarray::Array4<f32>, labels: &mut Vec<u8>) {
    assert_eq!(images.dim().0, indices.len(), "gather: one image slot per index");
    labels.clear();
    for (slot, &index) in indices.iter().enumerate() {
        images.index_axis_mut(Axis(0), slot).assign(&data.images.index_axis(Axis(0), index));
        labels.push(data.labels[index]);
    }
}

/// What [`train_epoch`] reports after each step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// Step number within the whole run, from 0.
    pub step: u64,
    /// Images of the epoch seen so far, this step's included.
    pub seen: usize,
    /// The batch's loss before the update, in nats.
    pub loss: f32,
    /// The learning rate used.
    pub learning_rate: f32,
}

/// One epoch of `recipe` over `data`: shuffles it (the order depends on the seed and the
/// epoch only), sets each step's learning rate from the schedule and calls `on_step` after each
/// step. `epoch` counts from 0.
///
/// # Errors
/// [`Error::InvalidInput`] for a batch size or epoch count of 0 or an empty data set;
/// [`Error::Diverged`] as [`Trainer::train_step`], which ends the epoch with the trainer holding
/// the last good weights.
pub fn train_epoch(
    trainer: &mut Trainer,
    data: &Dataset,
    recipe: &Recipe,
    epoch: usize,
    mut on_step: impl FnMut(&StepReport),
) -> Result<()> {
    if recipe.batch_size == 0 || recipe.epochs == 0 || data.is_empty() {
        return Err(Error::InvalidInput(format!(
            "training needs a batch size and epoch count of at least 1 and some data, got {}, {} and {} images",
            recipe.batch_size,
            recipe.epochs,
            data.len()
        )));
    }
    let n = data.len();
    let steps_per_epoch = n.div_ceil(recipe.batch_size);
    let total_steps = (recipe.epochs * steps_per_epoch) as u64;
    let order = shuffled_indices(n, recipe.seed, epoch as u64);
    let mut images = ndarray::Array4::zeros((recipe.batch_size, 1, 28, 28));
    let mut labels = Vec::with_capacity(recipe.batch_size);
    let mut seen = 0;
    for (i, chunk) in order.chunks(recipe.batch_size).enumerate() {
        let step = (epoch * steps_per_epoch + i) as u64;
        let learning_rate = recipe.schedule.rate(recipe.sgd.learning_rate, step, total_steps);
        trainer.set_config(SgdConfig { learning_rate, ..recipe.sgd })?;
        if chunk.len() != images.dim().0 {
            images = ndarray::Array4::zeros((chunk.len(), 1, 28, 28));
        }
        gather(data, chunk, &mut images, &mut labels);
        let loss = trainer.train_step(images.view(), &labels)?;
        seen += chunk.len();
        on_step(&StepReport { step, seen, loss, learning_rate });
    }
    Ok(())
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
