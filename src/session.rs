//! A training session: the one training loop of the crate, behind the `lenet` command and the
//! page's worker alike.
//!
//! A [`Session`] owns everything a run is made of: the network, the optimizer and its state,
//! the training and held-out digits (as bytes), the seeded data order with its cursor, epoch
//! and step counters, on-the-fly augmentation, the learning-rate schedule, held-out
//! evaluation, divergence recovery, and a checkpoint of all of it as bytes.
//!
//! # Determinism
//! Every random choice is a function of the seed and of where the run is, never of a hidden
//! generator state: the data order of epoch `e` is [`shuffled_indices`]`(n, seed, e)` and the
//! augmentation of the image in batch position `p` of step `s` draws from ChaCha8 keyed by
//! `(seed, s)` on stream `p`. So a checkpoint needs no generator state, and a run resumed from
//! one is the run it would have been.
//!
//! # Shards
//! A batch's gradient is the weighted sum of the gradients of its *shards* — consecutive runs of
//! [`Settings::shard_size`] images — added in shard order. Shards can be computed on any number
//! of threads (or workers) and the sum is the same bits, so the weights after `k` steps do not
//! depend on the thread count. A batch of one shard gives exactly the unsharded gradient.

use std::borrow::Cow;
use std::ops::Range;

use ndarray::{Array4, ArrayView4, Axis, Ix4};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::augment::Augment;
use crate::data::digits::Digits;
use crate::error::{setting_error, Error, Num, Result};
use crate::layers::ensure_shape;
use crate::loss::softmax;
use crate::model::{Gradients, LeNet5, Workspace, IMAGE_PIXELS, IMAGE_SIDE, NUM_CLASSES};
use crate::optim::{OptimizerConfig, OptimizerKind, OptimizerState};
use crate::train::{argmax, shuffled_indices, Evaluation, LrSchedule, MAX_WEIGHT};

/// Largest batch a session accepts: far above what LeNet-5 trains well with, small enough that
/// a batch's activations (about 40 KB an image) stay within memory in a browser tab.
pub const MAX_BATCH_SIZE: usize = 4096;

/// Held-out digits evaluated per forward pass: big enough for the matrix kernels, small enough
/// that a slice of evaluation stays short.
const EVAL_CHUNK: usize = 250;

/// Everything that decides a run besides the data: the recipe.
///
/// `Default` is the crate's recipe: batches of 32 (two shards of 16), SGD with learning rate
/// 0.02 under a cosine schedule (2 % warm-up), momentum 0.9, weight decay 5·10⁻⁴, seed 0,
/// augmentation on. The
/// `lenet train` command sets `schedule_steps` from its epoch count; the page uses
/// [`Settings::browser`].
#[derive(Clone, Copy, Debug, PartialEq, miniserde::Serialize, miniserde::Deserialize)]
pub struct Settings {
    /// Seed of the initial weights, the data order and the augmentation.
    pub seed: u64,
    /// SGD, Adam or AdamW.
    pub optimizer: OptimizerKind,
    /// The schedule's base learning rate, > 0.
    pub learning_rate: f32,
    /// SGD's momentum, in `[0, 1)`.
    pub momentum: f32,
    /// L2 penalty (SGD, Adam) or decoupled decay (AdamW), ≥ 0.
    pub weight_decay: f32,
    /// Adam's β₁, in `[0, 1)`.
    pub beta1: f32,
    /// Adam's β₂, in `[0, 1)`.
    pub beta2: f32,
    /// Adam's ε, > 0.
    pub eps: f32,
    /// Images per optimizer step, 1 to [`MAX_BATCH_SIZE`].
    pub batch_size: usize,
    /// Images per gradient shard (see the module's docs), ≥ 1. It changes the rounding of the
    /// gradient sum, so it is part of the recipe; the thread count is not.
    pub shard_size: usize,
    /// How the learning rate changes over the run.
    pub schedule: LrSchedule,
    /// Steps the schedule spans (cosine reaches 0 there); ignored by `constant`; ≥ 1.
    pub schedule_steps: u64,
    /// Random distortions of each training image, or `None` for the images as they are.
    pub augment: Option<Augment>,
    /// At most this many held-out digits per evaluation, spread evenly over the held-out set;
    /// 0 for all of them.
    pub eval_limit: usize,
}

impl Default for Settings {
    fn default() -> Self {
        let optimizer = OptimizerConfig::default();
        Settings {
            seed: 0,
            optimizer: optimizer.kind,
            learning_rate: optimizer.learning_rate,
            momentum: optimizer.momentum,
            weight_decay: optimizer.weight_decay,
            beta1: optimizer.beta1,
            beta2: optimizer.beta2,
            eps: optimizer.eps,
            batch_size: 32,
            shard_size: 16,
            schedule: LrSchedule::Cosine,
            schedule_steps: 18_750,
            augment: Some(Augment::default()),
            eval_limit: 0,
        }
    }
}

impl Settings {
    /// The recipe of the page: training in a tab, on whatever data it has, until the person
    /// stops it. The crate's recipe at batch 64 (4 shards of 16, so that two workers share a
    /// step's compute) with the base rate 0.03, its cosine schedule over 3,000 steps (192,000
    /// images: about 20 s in one worker), after which the rate stays at 1 % of the base rate;
    /// held-out accuracy on at most 1,000 digits. On full MNIST it first reads 99.0 % on the
    /// 10,000 test digits after about 140,000 to 165,000 images, where batch 32 at 0.02 took
    /// about 170,000; on 9,000 MNIST digits it passes 98.5 % on the 1,000 held out by the end
    /// of the schedule.
    pub fn browser() -> Self {
        Settings {
            batch_size: 64,
            learning_rate: 0.03,
            schedule_steps: 3_000,
            eval_limit: 1_000,
            ..Settings::default()
        }
    }

    /// Settings for stepping on batches the caller makes ([`Session::train_batch`]): `optimizer`'s
    /// rule at a constant rate, no augmentation, and one shard however large the batch, so the
    /// gradient is the plain mean over the batch.
    pub fn manual(optimizer: OptimizerConfig) -> Self {
        Settings { schedule: LrSchedule::Constant, augment: None, shard_size: MAX_BATCH_SIZE, ..Settings::default() }
            .with_optimizer(optimizer)
    }

    /// These settings with the optimizer's part replaced by `optimizer`.
    pub fn with_optimizer(self, optimizer: OptimizerConfig) -> Self {
        Settings {
            optimizer: optimizer.kind,
            learning_rate: optimizer.learning_rate,
            momentum: optimizer.momentum,
            weight_decay: optimizer.weight_decay,
            beta1: optimizer.beta1,
            beta2: optimizer.beta2,
            eps: optimizer.eps,
            ..self
        }
    }

    /// The optimizer's part of the settings.
    pub fn optimizer_config(&self) -> OptimizerConfig {
        OptimizerConfig {
            kind: self.optimizer,
            learning_rate: self.learning_rate,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
        }
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// [`Error::Setting`] naming the first setting out of its range and its value;
    /// [`Error::InvalidInput`] for an augmentation out of range.
    pub fn validate(&self) -> Result<()> {
        self.optimizer_config().validate()?;
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(setting_error(
                "batch_size",
                format!("must be a whole number from 1 to {MAX_BATCH_SIZE}, got {}", self.batch_size),
            ));
        }
        if self.shard_size == 0 {
            return Err(setting_error("shard_size", "must be at least 1, got 0"));
        }
        if self.schedule_steps == 0 {
            return Err(setting_error("schedule_steps", "must be at least 1, got 0"));
        }
        if let Some(augment) = &self.augment {
            augment.validate()?;
        }
        Ok(())
    }

    /// The learning rate of step `step` (0-based).
    pub fn learning_rate_at(&self, step: u64) -> f32 {
        self.schedule.rate(self.learning_rate, step, self.schedule_steps)
    }
}

/// What one call of [`Session::step`] did.
#[derive(Clone, Debug, PartialEq, miniserde::Serialize)]
pub struct StepOutcome {
    /// The step's number, from 1: the session's step count after it (or, when it diverged, the
    /// number it would have had).
    pub step: u64,
    /// The batch's mean cross-entropy before the update, in nats (NaN or ∞ when it diverged).
    pub loss: f32,
    /// Fraction of the batch the network classified correctly before the update.
    pub batch_accuracy: f32,
    /// The learning rate the schedule gave this step.
    pub learning_rate: f32,
    /// Epochs completed plus the fraction of the current one, e.g. 2.25.
    pub epoch: f64,
    /// Training images drawn so far.
    pub seen: u64,
    /// `None` when the step was taken. Otherwise the step was not taken: the weights and the
    /// optimizer state are the last finite ones, and this says why; the caller should stop and
    /// lower the learning rate.
    pub diverged: Option<String>,
}

/// Where a session is in its data.
#[derive(Clone, Copy, Debug, PartialEq, miniserde::Serialize)]
pub struct Progress {
    /// Optimizer steps taken.
    pub step: u64,
    /// Epochs started, from 0.
    pub epoch: u64,
    /// Fraction of the current epoch drawn, in `[0, 1)`.
    pub epoch_progress: f64,
    /// Training images drawn so far.
    pub seen: u64,
    /// Training digits.
    pub train_count: usize,
    /// Held-out digits an evaluation uses (at most `eval_limit`).
    pub test_count: usize,
}

/// The batch a shard works on, and what it needs to compute its gradient.
#[derive(Clone, Debug, Default)]
struct Shard {
    images: Array4<f32>,
    labels: Vec<u8>,
    grads: Option<Gradients>,
    loss: f32,
    correct: usize,
}

/// What computing a step's shards works in: the shards, and one workspace per computing thread
/// (a shard's activations are needed only until its backward pass, so each thread reuses one for
/// all of its shards: a few MB that stay in its cache, where one per shard made every shard start
/// cold).
#[derive(Clone, Debug, Default)]
struct Scratch {
    shards: Vec<Shard>,
    workspaces: Vec<Workspace>,
}

/// One shard's share of a step, as [`Session::compute_shard_gradients`] returns it and
/// [`Session::apply_shard_gradients`] takes it; [`ShardGradient::to_bytes`] is its form on the
/// wire between replicas.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardGradient {
    /// The session's step count when it was computed: the step it belongs to, from 0.
    pub step: u64,
    /// Its place in the step's shards, from 0.
    pub index: usize,
    /// Its images (`shard_size`, or fewer in the batch's last shard).
    pub images: usize,
    /// The shard's mean cross-entropy, in nats.
    pub loss: f32,
    /// Its images classified correctly (before the update).
    pub correct: usize,
    /// ∂ loss / ∂ parameters: the mean over the shard's images, every parameter tensor flat in
    /// the order of [`LeNet5::parameters`] (61,706 values).
    pub gradient: Vec<f32>,
}

/// Bytes of a [`ShardGradient`]'s header on the wire: step (u64), index, images, loss (f32),
/// correct, gradient length (u32 each), little-endian.
pub const SHARD_HEADER_BYTES: usize = 28;

impl ShardGradient {
    /// Bytes of one shard of a LeNet-5 on the wire: the header and 4 bytes a parameter.
    pub fn wire_bytes(num_parameters: usize) -> usize {
        SHARD_HEADER_BYTES + 4 * num_parameters
    }

    /// Appends the shard's bytes ([`ShardGradient::wire_bytes`] of them) to `out`; shards are
    /// sent as such records back to back.
    pub fn to_bytes(&self, out: &mut Vec<u8>) {
        write_record(out, self.step, self.index, self.images, self.loss, self.correct, &[&self.gradient]);
    }

    /// The shards in `bytes`, records of [`ShardGradient::to_bytes`] back to back.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the bytes end inside a record.
    pub fn list_from_bytes(bytes: &[u8]) -> Result<Vec<ShardGradient>> {
        Ok(parse_records(bytes)?
            .into_iter()
            .map(|r| ShardGradient {
                step: r.step,
                index: r.index,
                images: r.images,
                loss: r.loss,
                correct: r.correct,
                gradient: r.gradient.into_owned(),
            })
            .collect())
    }
}

/// A shard's record, its gradient borrowed where it can be: from a [`ShardGradient`], or from
/// wire bytes that are little-endian f32s aligned for reading in place.
struct ShardRecord<'a> {
    step: u64,
    index: usize,
    images: usize,
    loss: f32,
    correct: usize,
    gradient: Cow<'a, [f32]>,
}

/// Appends one shard's record ([`ShardGradient::wire_bytes`] of them) to `out`, its gradient
/// being `tensors` one after another.
fn write_record(
    out: &mut Vec<u8>,
    step: u64,
    index: usize,
    images: usize,
    loss: f32,
    correct: usize,
    tensors: &[&[f32]],
) {
    let len: usize = tensors.iter().map(|t| t.len()).sum();
    out.reserve(ShardGradient::wire_bytes(len));
    out.extend_from_slice(&step.to_le_bytes());
    // Shard indices and counts are bounded by MAX_BATCH_SIZE and gradients by the model's
    // 61,706 parameters: far inside u32.
    let word = |n: usize| u32::try_from(n).expect("shard counts fit in 32 bits");
    for v in [word(index), word(images), loss.to_bits(), word(correct), word(len)] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for tensor in tensors {
        // One copy on little-endian machines (wasm among them): a call per value cost about
        // 13 % of the share of a step that a gradient worker computes.
        #[cfg(target_endian = "little")]
        out.extend_from_slice(bytemuck::cast_slice(tensor));
        #[cfg(target_endian = "big")]
        for v in tensor.iter() {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// The records in `bytes`, back to back; gradients are read in place where the bytes allow.
///
/// # Errors
/// [`Error::InvalidInput`] when the bytes end inside a record.
fn parse_records(mut bytes: &[u8]) -> Result<Vec<ShardRecord<'_>>> {
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let at = records.len();
        let truncated =
            || Error::InvalidInput(format!("shard gradients: record {at} is cut short ({} bytes)", bytes.len()));
        if bytes.len() < SHARD_HEADER_BYTES {
            return Err(truncated());
        }
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let len = u32_at(24) as usize;
        let end = len.checked_mul(4).and_then(|n| n.checked_add(SHARD_HEADER_BYTES)).ok_or_else(truncated)?;
        if bytes.len() < end {
            return Err(truncated());
        }
        let raw = &bytes[SHARD_HEADER_BYTES..end];
        let gradient = match bytemuck::try_cast_slice::<u8, f32>(raw) {
            Ok(values) if cfg!(target_endian = "little") => Cow::Borrowed(values),
            _ => Cow::Owned(f32s_from_le_bytes(raw)),
        };
        records.push(ShardRecord {
            step: u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")),
            index: u32_at(8) as usize,
            images: u32_at(12) as usize,
            loss: f32::from_bits(u32_at(16)),
            correct: u32_at(20) as usize,
            gradient,
        });
        bytes = &bytes[end..];
    }
    Ok(records)
}

/// The little-endian f32s in `bytes` (a multiple of 4 long): one copy where the machine is
/// little-endian.
fn f32s_from_le_bytes(bytes: &[u8]) -> Vec<f32> {
    let mut values = vec![0f32; bytes.len() / 4];
    bytemuck::cast_slice_mut::<f32, u8>(&mut values).copy_from_slice(bytes);
    if cfg!(target_endian = "big") {
        for v in &mut values {
            *v = f32::from_bits(u32::from_le(v.to_bits()));
        }
    }
    values
}

/// Elements of a tensor updated together by [`Session::apply_update`]: 8 KiB of each of the
/// arrays it touches, which fit the L1 cache together.
const UPDATE_PIECE: usize = 2048;

/// A part of one parameter tensor (elements `start..`), with the same part of its optimizer
/// state and of the backups of the weights and momentum (or Adam's first moments).
struct UpdatePart<'a> {
    tensor: usize,
    start: usize,
    param: &'a mut [f32],
    backup_param: &'a mut [f32],
    first: &'a mut [f32],
    backup_first: &'a mut [f32],
    second: &'a mut [f32],
}

impl<'a> UpdatePart<'a> {
    /// The part's first `at` elements and the rest.
    #[cfg(not(target_arch = "wasm32"))]
    fn split_at(self, at: usize) -> (Self, Self) {
        fn cut(v: &mut [f32], at: usize) -> (&mut [f32], &mut [f32]) {
            // SGD's empty second moments stay empty on both sides.
            v.split_at_mut(at.min(v.len()))
        }
        let (param, param_tail) = cut(self.param, at);
        let (backup_param, backup_param_tail) = cut(self.backup_param, at);
        let (first, first_tail) = cut(self.first, at);
        let (backup_first, backup_first_tail) = cut(self.backup_first, at);
        let (second, second_tail) = cut(self.second, at);
        let (tensor, start) = (self.tensor, self.start);
        (
            UpdatePart { tensor, start, param, backup_param, first, backup_first, second },
            UpdatePart {
                tensor,
                start: start + at,
                param: param_tail,
                backup_param: backup_param_tail,
                first: first_tail,
                backup_first: backup_first_tail,
                second: second_tail,
            },
        )
    }

    /// Piece by piece: sums the shards' gradients in shard order, backs the piece's weights and
    /// first moments up, updates it; returns whether the part's weights are finite and at most
    /// [`MAX_WEIGHT`] after.
    fn apply(self, rule: &crate::optim::StepRule, shards: &[ShardPart<'_>], weights: &[f32]) -> bool {
        let mut sum = [0.0f32; UPDATE_PIECE];
        let mut ok = true;
        for from in (0..self.param.len()).step_by(UPDATE_PIECE) {
            let to = (from + UPDATE_PIECE).min(self.param.len());
            let sum = &mut sum[..to - from];
            sum.fill(0.0);
            let tensor = self.start + from..self.start + to;
            for (shard, &weight) in shards.iter().zip(weights) {
                for (s, &g) in sum.iter_mut().zip(&shard.tensors[self.tensor][tensor.clone()]) {
                    *s += weight * g;
                }
            }
            let param = &mut self.param[from..to];
            let first = &mut self.first[from..to];
            let second = self.second.get_mut(from..to).unwrap_or_default();
            self.backup_param[from..to].copy_from_slice(param);
            self.backup_first[from..to].copy_from_slice(first);
            rule.apply(param, sum, first, second);
            // NaN fails the comparison too. A fold, not `all`, which stops at the first and
            // cannot be vectorised.
            ok &= param.iter().fold(true, |ok, v| ok & (v.abs() <= MAX_WEIGHT));
        }
        ok
    }
}

/// A shard's part in an update: its size, loss, correct answers and gradient tensors.
struct ShardPart<'a> {
    images: usize,
    loss: f32,
    correct: usize,
    tensors: Vec<&'a [f32]>,
}

/// An evaluation pass in progress over the held-out digits.
#[derive(Clone, Debug)]
struct EvalPass {
    step: u64,
    next: usize,
    correct: usize,
    loss: f64,
    confusion: [[u64; NUM_CLASSES]; NUM_CLASSES],
}

/// A training session; see the module's documentation.
#[derive(Clone, Debug)]
pub struct Session {
    settings: Settings,
    model: LeNet5,
    optimizer: OptimizerState,
    train: Digits,
    /// `train.fingerprint()`, computed at the first checkpoint or restore after the data changes:
    /// a checkpoint every few seconds would otherwise hash all of the training digits (47 MB for
    /// MNIST) each time, and a session that never checkpoints (a gradient worker's) never hashes.
    train_fingerprint: std::sync::OnceLock<u64>,
    test: Digits,
    /// Indices of the held-out digits an evaluation uses.
    test_subset: Vec<usize>,
    step: u64,
    epoch: u64,
    cursor: usize,
    seen: u64,
    /// The training digits' count when the current epoch's order was drawn: digits added later
    /// join at the next epoch.
    order: Vec<usize>,
    /// The shards of the step in hand, and the threads' workspaces, kept from step to step.
    scratch: Scratch,
    /// The weights and optimizer state before the last update, for divergence recovery; kept
    /// allocated from step to step, and meaningful only while `backup_valid`.
    backup: (LeNet5, OptimizerState),
    backup_valid: bool,
    eval: Option<EvalPass>,
    eval_workspace: Workspace,
    eval_images: Array4<f32>,
    threads: usize,
    /// The `threads − 1` helper threads, kept from step to step: a thread started for every
    /// step ran its shards about 15 % slower than the calling thread ran its own.
    #[cfg(not(target_arch = "wasm32"))]
    pool: Option<std::sync::Arc<rayon::ThreadPool>>,
}

impl Session {
    /// A session with fresh weights, He-initialised from `settings.seed`, and no data yet.
    ///
    /// # Errors
    /// As [`Settings::validate`].
    pub fn new(settings: Settings) -> Result<Self> {
        Session::with_model(LeNet5::new(settings.seed), settings)
    }

    /// A session that starts from `model`'s weights (for instance pretrained ones).
    ///
    /// # Errors
    /// As [`Settings::validate`]; [`Error::InvalidInput`] for non-finite weights.
    pub fn with_model(model: LeNet5, settings: Settings) -> Result<Self> {
        settings.validate()?;
        if !model.is_finite() {
            return Err(Error::InvalidInput("the model has non-finite weights".into()));
        }
        let lengths: Vec<usize> = model.parameters().iter().map(|t| t.len()).collect();
        let optimizer = OptimizerState::new(&lengths);
        Ok(Session {
            backup: (model.clone(), optimizer.clone()),
            optimizer,
            model,
            settings,
            train: Digits::default(),
            train_fingerprint: std::sync::OnceLock::new(),
            test: Digits::default(),
            test_subset: Vec::new(),
            step: 0,
            epoch: 0,
            cursor: 0,
            seen: 0,
            order: Vec::new(),
            scratch: Scratch::default(),
            backup_valid: false,
            eval: None,
            eval_workspace: Workspace::default(),
            eval_images: Array4::zeros((0, 1, IMAGE_SIDE, IMAGE_SIDE)),
            threads: 1,
            #[cfg(not(target_arch = "wasm32"))]
            pool: None,
        })
    }

    /// The most threads [`Session::set_threads`] takes. The helper threads are kept, each
    /// with its own stack, so a mistyped count must not start thousands of them.
    pub const MAX_THREADS: usize = 256;

    /// The network.
    pub fn model(&self) -> &LeNet5 {
        &self.model
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Replaces the settings; they apply from the next step. A new seed or new augmentation
    /// settings change what comes next, never what was.
    ///
    /// # Errors
    /// As [`Settings::validate`]; nothing changes then.
    pub fn set_settings(&mut self, settings: Settings) -> Result<()> {
        settings.validate()?;
        if settings.optimizer != self.settings.optimizer {
            // Momentum buffers and Adam moments mean different things: start them afresh.
            self.optimizer.reset();
            self.backup_valid = false;
        }
        let eval_changed = settings.eval_limit != self.settings.eval_limit;
        self.settings = settings;
        if eval_changed {
            self.select_test_subset();
        }
        Ok(())
    }

    /// How many threads compute the shards of a batch and the update (natively; always 1 in
    /// wasm), from 1 to [`Session::MAX_THREADS`] (0 counts as 1): the calling thread and
    /// `threads − 1` helper threads, started here and kept. The weights do not depend on it.
    ///
    /// # Errors
    /// [`Error::Setting`] for more than [`Session::MAX_THREADS`]; [`Error::InvalidInput`] when the operating
    /// system refuses to start the helper threads; the previous threads are kept then.
    pub fn set_threads(&mut self, threads: usize) -> Result<()> {
        let threads = threads.max(1);
        if threads > Self::MAX_THREADS {
            return Err(setting_error("threads", format!("must be from 1 to {}, got {threads}", Self::MAX_THREADS)));
        }
        #[cfg(not(target_arch = "wasm32"))]
        if threads != self.threads {
            self.pool = if threads > 1 {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads - 1)
                    .thread_name(|i| format!("lenet-shards-{}", i + 1))
                    .build()
                    .map_err(|e| Error::InvalidInput(format!("could not start {} threads: {e}", threads - 1)))?;
                Some(std::sync::Arc::new(pool))
            } else {
                None
            };
        }
        self.threads = threads;
        Ok(())
    }

    /// Replaces the training digits; the data order starts again at epoch 0 of the new data.
    /// The step count and the weights are kept.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty set.
    pub fn set_train_data(&mut self, train: Digits) -> Result<()> {
        if train.is_empty() {
            return Err(Error::InvalidInput("the training data holds no digit".into()));
        }
        self.train = train;
        self.train_fingerprint = std::sync::OnceLock::new();
        self.epoch = 0;
        self.cursor = 0;
        self.order = shuffled_indices(self.train.len(), self.settings.seed, 0);
        Ok(())
    }

    /// Appends training digits (for instance a person's own); they join the data order at the
    /// next epoch.
    pub fn add_train_data(&mut self, more: &Digits) {
        self.train.extend(more);
        self.train_fingerprint = std::sync::OnceLock::new();
        if self.order.is_empty() {
            self.order = shuffled_indices(self.train.len(), self.settings.seed, self.epoch);
        }
    }

    /// The training digits' fingerprint ([`Digits::fingerprint`]), hashed once per data set.
    fn train_fingerprint(&self) -> u64 {
        *self.train_fingerprint.get_or_init(|| self.train.fingerprint())
    }

    /// The training digits.
    pub fn train_data(&self) -> &Digits {
        &self.train
    }

    /// Replaces the held-out digits; an evaluation in progress is dropped.
    pub fn set_test_data(&mut self, test: Digits) {
        self.test = test;
        self.eval = None;
        self.select_test_subset();
    }

    fn select_test_subset(&mut self) {
        let n = self.test.len();
        let limit = self.settings.eval_limit;
        self.test_subset = if limit == 0 || limit >= n {
            (0..n).collect()
        } else {
            // Evenly spread: held-out sets are often sorted or grouped by class or writer.
            spread_indices(n, limit)
        };
        self.eval = None;
    }

    /// Where the session is in its data.
    pub fn progress(&self) -> Progress {
        let n = self.order.len().max(1);
        Progress {
            step: self.step,
            epoch: self.epoch,
            epoch_progress: self.cursor as f64 / n as f64,
            seen: self.seen,
            train_count: self.train.len(),
            test_count: self.test_subset.len(),
        }
    }

    /// The indices of the next batch's training digits, drawing a new epoch's order as the
    /// current one runs out (a batch may span two epochs).
    fn next_batch_indices(&mut self) -> Vec<usize> {
        let mut indices = Vec::with_capacity(self.settings.batch_size);
        while indices.len() < self.settings.batch_size {
            if self.cursor >= self.order.len() {
                self.epoch += 1;
                self.cursor = 0;
                self.order = shuffled_indices(self.train.len(), self.settings.seed, self.epoch);
            }
            indices.push(self.order[self.cursor]);
            self.cursor += 1;
        }
        indices
    }

    /// The indices [`Session::next_batch_indices`] will return, without moving: the next
    /// epoch's order is drawn here too when the batch spans two epochs.
    fn peek_batch_indices(&self) -> Vec<usize> {
        let mut indices = Vec::with_capacity(self.settings.batch_size);
        let (mut epoch, mut cursor) = (self.epoch, self.cursor);
        let mut next_order: Option<Vec<usize>> = None;
        while indices.len() < self.settings.batch_size {
            let order = next_order.as_deref().unwrap_or(&self.order);
            if cursor >= order.len() {
                epoch += 1;
                cursor = 0;
                next_order = Some(shuffled_indices(self.train.len(), self.settings.seed, epoch));
                continue;
            }
            indices.push(order[cursor]);
            cursor += 1;
        }
        indices
    }

    /// The 784 f32 pixels of training digit `index` as batch position `position` of step `step`
    /// sees them: augmented when augmentation is on.
    fn fill_image(&self, index: usize, position: usize, step: u64, dst: &mut [f32]) {
        let src = self.train.image(index);
        match &self.settings.augment {
            Some(augment) if !augment.is_none() => {
                let mut rng = augmentation_rng(self.settings.seed, step, position);
                augment.apply(src, dst, &mut rng);
            }
            _ => {
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = f32::from(s) / 255.0;
                }
            }
        }
    }

    /// One optimizer step on the next batch of the training digits.
    ///
    /// Divergence is an outcome, not an error: see [`StepOutcome::diverged`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the session has no training data.
    pub fn step(&mut self) -> Result<StepOutcome> {
        self.require_train_data()?;
        let indices = self.next_batch_indices();
        let count = indices.len().div_ceil(self.settings.shard_size);
        let mut scratch = std::mem::take(&mut self.scratch);
        let computed = self.compute_shards(&mut scratch, count, &|k, shard| self.fill_shard(&indices, k, shard));
        self.seen += indices.len() as u64;
        let outcome = computed.and_then(|()| self.update_from(&scratch.shards[..count]));
        self.scratch = scratch;
        outcome
    }

    fn require_train_data(&self) -> Result<()> {
        if self.train.is_empty() {
            return Err(Error::InvalidInput("no training data: set the training digits first".into()));
        }
        Ok(())
    }

    /// Fills `shard` with the images and labels of shard `s` of the batch `indices` of the
    /// current step.
    fn fill_shard(&self, indices: &[usize], s: usize, shard: &mut Shard) {
        let shard_size = self.settings.shard_size;
        let chunk = &indices[s * shard_size..((s + 1) * shard_size).min(indices.len())];
        ensure_shape(&mut shard.images, Ix4(chunk.len(), 1, IMAGE_SIDE, IMAGE_SIDE));
        shard.labels.clear();
        let pixels = shard.images.as_slice_mut().expect("a fresh array is contiguous");
        for (i, &index) in chunk.iter().enumerate() {
            let position = s * shard_size + i;
            self.fill_image(index, position, self.step, &mut pixels[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS]);
            shard.labels.push(self.train.labels()[index]);
        }
    }

    /// The shards of the next step's batch: `batch_size / shard_size`, rounded up. Each is
    /// computed by [`Session::compute_shard_gradients`], anywhere, and all of them, in order,
    /// are applied by [`Session::apply_shard_gradients`].
    pub fn shard_count(&self) -> usize {
        self.settings.batch_size.div_ceil(self.settings.shard_size)
    }

    /// The gradients of shards `range` (a part of `0..shard_count()`) of the next step's batch,
    /// without taking the step: the batch is the one [`Session::step`] would draw (same data
    /// order, same `(seed, step)`-keyed augmentation), so every replica of a session — the same
    /// digits, settings, weights and position — computes the same bits for a shard, whichever
    /// replica it is. Only scratch buffers change.
    ///
    /// This is data parallelism as in Dean et al., "Large Scale Distributed Deep Networks"
    /// (NeurIPS 2012) in its synchronous form: the replicas split the batch, and the update waits
    /// for every shard.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty range, a range past `shard_count()`, or a session
    /// without training data.
    pub fn compute_shard_gradients(&mut self, range: Range<usize>) -> Result<Vec<ShardGradient>> {
        let step = self.step;
        self.with_computed_shards(range, |index, shard, grads| ShardGradient {
            step,
            index,
            images: shard.labels.len(),
            loss: shard.loss,
            correct: shard.correct,
            gradient: grads.tensors().concat(),
        })
    }

    /// As [`Session::compute_shard_gradients`], the shards appended to `out` as the records
    /// [`ShardGradient::to_bytes`] writes (the same bytes), straight from the gradients: no
    /// [`ShardGradient`] in between, so a replica's share of a step is copied once.
    ///
    /// # Errors
    /// As [`Session::compute_shard_gradients`]; `out` is unchanged then.
    pub fn compute_shard_records(&mut self, range: Range<usize>, out: &mut Vec<u8>) -> Result<()> {
        let step = self.step;
        self.with_computed_shards(range, |index, shard, grads| {
            write_record(out, step, index, shard.labels.len(), shard.loss, shard.correct, &grads.tensors());
        })
        .map(drop)
    }

    /// Computes shards `range` of the next step and calls `each(index, shard, gradients)` for
    /// each, in order.
    fn with_computed_shards<T>(
        &mut self,
        range: Range<usize>,
        mut each: impl FnMut(usize, &Shard, &Gradients) -> T,
    ) -> Result<Vec<T>> {
        self.require_train_data()?;
        let count = self.shard_count();
        if range.is_empty() || range.end > count {
            return Err(Error::InvalidInput(format!(
                "shards {}..{} are not a non-empty part of the step's {count} shards (0..{count})",
                range.start, range.end
            )));
        }
        let indices = self.peek_batch_indices();
        let mut scratch = std::mem::take(&mut self.scratch);
        let first = range.start;
        let computed =
            self.compute_shards(&mut scratch, range.len(), &|k, shard| self.fill_shard(&indices, first + k, shard));
        let result = computed.map(|()| {
            range
                .zip(&scratch.shards)
                .map(|(index, shard)| each(index, shard, shard.grads.as_ref().expect("computed above")))
                .collect()
        });
        self.scratch = scratch;
        result
    }

    /// Takes the next step from its shards' gradients, `shards[i]` being shard `i` of
    /// `0..shard_count()` as [`Session::compute_shard_gradients`] made it (on this session or
    /// on a replica): sums them in shard order and does everything else [`Session::step`] does
    /// (the optimizer, the schedule, divergence recovery, the data position and the counters).
    /// The weights are then the same bits as after `step()`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the shards are not those of this session's next step: a
    /// wrong count, a shard out of order, of another step, of the wrong number of images, with
    /// more correct answers than images, or with a gradient of the wrong length. Nothing changes
    /// then.
    pub fn apply_shard_gradients(&mut self, shards: &[ShardGradient]) -> Result<StepOutcome> {
        let records: Vec<ShardRecord<'_>> = shards
            .iter()
            .map(|s| ShardRecord {
                step: s.step,
                index: s.index,
                images: s.images,
                loss: s.loss,
                correct: s.correct,
                gradient: Cow::Borrowed(&s.gradient),
            })
            .collect();
        self.apply_records(&records)
    }

    /// As [`ShardGradient::list_from_bytes`] then [`Session::apply_shard_gradients`], reading
    /// the gradients in `bytes` in place where they are aligned f32s (a copy of 1 MB a step at
    /// batch 64 saved).
    ///
    /// # Errors
    /// As those two; nothing changes then.
    pub fn apply_shard_records(&mut self, bytes: &[u8]) -> Result<StepOutcome> {
        let records = parse_records(bytes)?;
        self.apply_records(&records)
    }

    fn apply_records(&mut self, shards: &[ShardRecord<'_>]) -> Result<StepOutcome> {
        self.require_train_data()?;
        let count = self.shard_count();
        if shards.len() != count {
            return Err(Error::InvalidInput(format!("the step has {count} shards, got {}", shards.len())));
        }
        let (batch, shard_size) = (self.settings.batch_size, self.settings.shard_size);
        let parameters = self.model.num_parameters();
        for (i, shard) in shards.iter().enumerate() {
            let images = shard_size.min(batch - i * shard_size);
            if shard.index != i || shard.step != self.step || shard.images != images {
                return Err(Error::InvalidInput(format!(
                    "shard {i} of step {} (of {images} images) was expected, got shard {} of step {} (of {} images)",
                    self.step, shard.index, shard.step, shard.images
                )));
            }
            if shard.correct > shard.images {
                return Err(Error::InvalidInput(format!(
                    "shard {i}: {} of its {} images cannot be correct",
                    shard.correct, shard.images
                )));
            }
            // A NaN or infinite loss is a replica's network diverging, which the update reports
            // as such; a negative one cannot come from a cross-entropy at all.
            if shard.loss < 0.0 {
                return Err(Error::InvalidInput(format!(
                    "shard {i}: a loss of {} cannot be a cross-entropy, which is never negative",
                    Num(shard.loss)
                )));
            }
            if shard.gradient.len() != parameters {
                return Err(Error::InvalidInput(format!(
                    "shard {i}: a gradient of {parameters} values was expected, got {}",
                    shard.gradient.len()
                )));
            }
        }
        let indices = self.next_batch_indices();
        self.seen += indices.len() as u64;
        let lengths: Vec<usize> = self.model.parameters().iter().map(|t| t.len()).collect();
        let parts = shards.iter().map(|shard| {
            let mut rest = &shard.gradient[..];
            let tensors = lengths
                .iter()
                .map(|&n| {
                    let (head, tail) = rest.split_at(n);
                    rest = tail;
                    head
                })
                .collect();
            ShardPart { images: shard.images, loss: shard.loss, correct: shard.correct, tensors }
        });
        self.update(parts.collect())
    }

    /// One optimizer step on an explicit batch: `images` `(N, 1, 28, 28)` in `[0, 1]`, `labels`
    /// `N` digits. The training digits, their order and the augmentation are not involved.
    ///
    /// # Errors
    /// [`Error::Shape`] / [`Error::InvalidInput`] for bad images or labels; nothing changes.
    pub fn train_batch(&mut self, images: ArrayView4<f32>, labels: &[u8]) -> Result<StepOutcome> {
        let n = images.dim().0;
        if labels.len() != n {
            return Err(Error::InvalidInput(format!(
                "{n} images but {} labels: there must be one label per image",
                labels.len()
            )));
        }
        crate::model::check_images(&images)?;
        if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| usize::from(l) >= NUM_CLASSES) {
            return Err(Error::InvalidInput(format!("label {l} at index {i} is not a digit 0–9")));
        }
        let shard_size = self.settings.shard_size;
        let count = n.div_ceil(shard_size);
        let mut scratch = std::mem::take(&mut self.scratch);
        let computed = self.compute_shards(&mut scratch, count, &|s, shard| {
            let range = s * shard_size..((s + 1) * shard_size).min(n);
            ensure_shape(&mut shard.images, Ix4(range.len(), 1, IMAGE_SIDE, IMAGE_SIDE));
            shard.images.assign(&images.slice_axis(Axis(0), range.clone().into()));
            shard.labels.clear();
            shard.labels.extend_from_slice(&labels[range]);
        });
        self.seen += n as u64;
        let outcome = computed.and_then(|()| self.update_from(&scratch.shards[..count]));
        self.scratch = scratch;
        outcome
    }

    /// Fills (`fill(k, shard)` for `scratch.shards[k]`) and computes the first `count` shards:
    /// forward and backward passes, giving each its loss, its count of correct answers and its
    /// gradient. With `threads` > 1 (natively) the calling thread and the helper threads each
    /// take the next shard left until none is, filling it too (augmentation included); what a
    /// shard holds does not depend on which thread computes it.
    fn compute_shards(
        &self,
        scratch: &mut Scratch,
        count: usize,
        fill: &(dyn Fn(usize, &mut Shard) + Sync),
    ) -> Result<()> {
        if scratch.shards.len() < count {
            scratch.shards.resize_with(count, Shard::default);
        }
        let (shards, workspaces) = (&mut scratch.shards[..count], &mut scratch.workspaces);
        let model = &self.model;
        let run = |(k, shard): (usize, &mut Shard), workspace: &mut Workspace| -> Result<()> {
            fill(k, shard);
            let grads = shard.grads.get_or_insert_with(|| Gradients::zeros_like(model));
            let logits = model.forward(shard.images.view(), workspace)?;
            shard.correct = logits
                .rows()
                .into_iter()
                .zip(&shard.labels)
                .filter(|(row, &l)| argmax(row.iter().copied()) == usize::from(l))
                .count();
            shard.loss = model.backward(workspace, &shard.labels, grads)?;
            Ok(())
        };
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(pool) = self.pool.as_ref().filter(|_| shards.len() > 1) {
            // Each thread takes the next shard not yet taken, until none is left: a thread that
            // a busy machine slows down takes fewer, where a fixed share would make the others
            // wait for it. A shard's result does not depend on which thread computes it.
            let threads = self.threads.min(shards.len());
            if workspaces.len() < threads {
                workspaces.resize_with(threads, Workspace::default);
            }
            let next = std::sync::atomic::AtomicUsize::new(0);
            let arrived = std::sync::atomic::AtomicUsize::new(0);
            let shards: Vec<std::sync::Mutex<&mut Shard>> = shards.iter_mut().map(std::sync::Mutex::new).collect();
            // A thread's first failure, with its shard, so that the error of the lowest shard is
            // the one returned, whichever thread met it.
            let work = |workspace: &mut Workspace| -> std::result::Result<(), (usize, Error)> {
                let _meet = Meeting { arrived: &arrived, parties: threads };
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(shard) = shards.get(k) else { return Ok(()) };
                    // Each shard is taken once, so its lock is never contended.
                    let mut shard = shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    run((k, &mut **shard), workspace).map_err(|e| (k, e))?;
                }
            };
            let mut results: Vec<std::result::Result<(), (usize, Error)>> = Vec::new();
            results.resize_with(threads, || Ok(()));
            let (mine, theirs) = results.split_first_mut().expect("at least one thread");
            let (my_workspace, their_workspaces) = workspaces.split_first_mut().expect("at least one workspace");
            pool.in_place_scope(|scope| {
                for (result, workspace) in theirs.iter_mut().zip(their_workspaces.iter_mut()) {
                    scope.spawn(|_| *result = work(workspace));
                }
                // The calling thread computes shards too rather than waiting idle.
                *mine = work(my_workspace);
            });
            return match results.into_iter().filter_map(std::result::Result::err).min_by_key(|(k, _)| *k) {
                Some((_, error)) => Err(error),
                None => Ok(()),
            };
        }
        if workspaces.is_empty() {
            workspaces.push(Workspace::default());
        }
        let workspace = &mut workspaces[0];
        shards.iter_mut().enumerate().try_for_each(|shard| run(shard, workspace))
    }

    /// The update from shards computed here.
    fn update_from(&mut self, shards: &[Shard]) -> Result<StepOutcome> {
        let parts = shards
            .iter()
            .map(|shard| ShardPart {
                images: shard.labels.len(),
                loss: shard.loss,
                correct: shard.correct,
                tensors: shard.grads.as_ref().expect("computed above").tensors().to_vec(),
            })
            .collect();
        self.update(parts)
    }

    /// The update from the shards' gradients of the current step: their weighted sum, in
    /// shard order, then the optimizer step and divergence recovery.
    fn update(&mut self, shards: Vec<ShardPart<'_>>) -> Result<StepOutcome> {
        let step = self.step;
        let learning_rate = self.settings.learning_rate_at(step);
        let total: usize = shards.iter().map(|s| s.images).sum();
        let weights: Vec<f32> = shards.iter().map(|shard| shard.images as f32 / total as f32).collect();
        let mut loss = 0.0f32;
        let mut correct = 0;
        for (shard, &weight) in shards.iter().zip(&weights) {
            loss += weight * shard.loss;
            correct += shard.correct;
        }
        let batch_accuracy = correct as f32 / total as f32;
        let mut outcome = StepOutcome {
            step: step + 1,
            loss,
            batch_accuracy,
            learning_rate,
            epoch: self.epoch as f64 + self.progress().epoch_progress,
            seen: self.seen,
            diverged: None,
        };
        if !loss.is_finite() {
            // Finite weights can still overflow the logits: the update before this one broke
            // the model, so go back to the weights before it.
            let restored = if self.backup_valid {
                self.restore_backup();
                "the weights before the previous update were restored"
            } else {
                "the weights were left as they were"
            };
            outcome.diverged = Some(format!("the loss is {} at step {}; {restored}", Num(loss), step + 1));
            return Ok(outcome);
        }
        let config = OptimizerConfig { learning_rate, ..self.settings.optimizer_config() };
        let finite = self.apply_update(&config, &shards, &weights);
        if !finite {
            self.restore_backup();
            outcome.diverged = Some(format!(
                "step {} would make weights non-finite or larger than {} (learning rate {}); the last good weights were restored",
                step + 1,
                Num(MAX_WEIGHT),
                Num(learning_rate)
            ));
            return Ok(outcome);
        }
        self.step += 1;
        Ok(outcome)
    }

    /// The update itself: the shards' gradients summed with `weights` in shard order, the
    /// weights and optimizer state copied into the backup (reusing its buffers), and the
    /// optimizer's step; returns whether every weight is finite and at most [`MAX_WEIGHT`] after.
    ///
    /// It runs piece by piece, [`UPDATE_PIECE`] elements of a tensor at a time, doing all four
    /// for one piece before the next: every element's arithmetic is what one whole-tensor pass
    /// after another would do, so the bits are the same, but a piece stays in the L1 cache
    /// where whole passes went through memory again and again (the update took 5 % of a step on
    /// one thread, 11 % on two). Natively the pieces are spread over the session's threads.
    fn apply_update(&mut self, config: &OptimizerConfig, shards: &[ShardPart<'_>], weights: &[f32]) -> bool {
        let (backup_model, backup_optimizer) = &mut self.backup;
        backup_optimizer.steps = self.optimizer.steps;
        // Adam's second moments (SGD keeps none) are backed up whole, as they are before the
        // step, which allocates them on Adam's first.
        backup_optimizer.second.clone_from(&self.optimizer.second);
        let lengths = self.model.parameters().map(|t| t.len());
        let rule = crate::optim::begin_step(config, &mut self.optimizer, &lengths);
        (backup_model.input_mean, backup_model.input_std) = (self.model.input_mean, self.model.input_std);
        backup_optimizer.first.resize_with(lengths.len(), Vec::new);
        for (b, &n) in backup_optimizer.first.iter_mut().zip(&lengths) {
            b.resize(n, 0.0);
        }
        let mut second = self.optimizer.second.iter_mut().map(Vec::as_mut_slice);
        let parts: Vec<UpdatePart<'_>> = self
            .model
            .parameters_mut()
            .into_iter()
            .zip(backup_model.parameters_mut())
            .zip(self.optimizer.first.iter_mut().zip(backup_optimizer.first.iter_mut()))
            .enumerate()
            .map(|(tensor, ((param, backup_param), (first, backup_first)))| UpdatePart {
                tensor,
                start: 0,
                param,
                backup_param,
                first,
                backup_first,
                // SGD keeps no second moments: its parts of them are empty.
                second: second.next().unwrap_or_default(),
            })
            .collect();
        self.backup_valid = true;
        let run =
            |parts: Vec<UpdatePart<'_>>| parts.into_iter().fold(true, |ok, p| p.apply(&rule, shards, weights) & ok);
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(pool) = self.pool.as_ref() {
            // Each thread takes the same share of every tensor.
            let threads = self.threads;
            let arrived = std::sync::atomic::AtomicUsize::new(0);
            let run = |parts: Vec<UpdatePart<'_>>| {
                let _meet = Meeting { arrived: &arrived, parties: threads };
                run(parts)
            };
            let mut groups: Vec<Vec<UpdatePart<'_>>> = (0..threads).map(|_| Vec::new()).collect();
            for mut part in parts {
                for (g, group) in groups.iter_mut().enumerate().rev() {
                    let at = part.param.len() * g / threads;
                    let (head, tail) = part.split_at(at);
                    group.push(tail);
                    part = head;
                }
            }
            let mut results = vec![true; threads];
            let (mine, theirs) = results.split_first_mut().expect("at least one thread");
            let mut groups = groups.into_iter();
            let first = groups.next().expect("at least one thread");
            pool.in_place_scope(|scope| {
                for (group, result) in groups.zip(theirs.iter_mut()) {
                    scope.spawn(|_| *result = run(group));
                }
                *mine = run(first);
            });
            return results.into_iter().all(|ok| ok);
        }
        run(parts)
    }

    /// Puts the backup in place of the weights and optimizer state; the backup is then spent.
    fn restore_backup(&mut self) {
        std::mem::swap(&mut self.model, &mut self.backup.0);
        std::mem::swap(&mut self.optimizer, &mut self.backup.1);
        self.backup_valid = false;
    }

    /// Begins a pass over the held-out digits (dropping one in progress).
    pub fn start_evaluation(&mut self) {
        self.eval = Some(EvalPass {
            step: self.step,
            next: 0,
            correct: 0,
            loss: 0.0,
            confusion: [[0; NUM_CLASSES]; NUM_CLASSES],
        });
    }

    /// Advances the evaluation pass by at most `max_images` held-out digits (starting one if
    /// none is in progress); returns its result when the pass is complete, else `None`. The
    /// result describes the weights as they were when the pass started only if no step was
    /// taken meanwhile; callers that interleave steps evaluate in short passes.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when there are no held-out digits or `max_images` is 0.
    pub fn evaluate(&mut self, max_images: usize) -> Result<Option<Evaluation>> {
        if self.test_subset.is_empty() {
            return Err(Error::InvalidInput("no held-out data: set the held-out digits first".into()));
        }
        if max_images == 0 {
            return Err(Error::InvalidInput("evaluate needs max_images ≥ 1".into()));
        }
        if self.eval.is_none() {
            self.start_evaluation();
        }
        let mut pass = self.eval.take().expect("started above");
        // Saturating: `usize::MAX` (or a wrapped -1 from a caller) means the rest of the pass.
        let end = pass.next.saturating_add(max_images).min(self.test_subset.len());
        while pass.next < end {
            let chunk_end = (pass.next + EVAL_CHUNK).min(end);
            let indices = &self.test_subset[pass.next..chunk_end];
            ensure_shape(&mut self.eval_images, Ix4(indices.len(), 1, IMAGE_SIDE, IMAGE_SIDE));
            let pixels = self.eval_images.as_slice_mut().expect("contiguous");
            for (slot, &k) in indices.iter().enumerate() {
                for (d, &s) in pixels[slot * IMAGE_PIXELS..(slot + 1) * IMAGE_PIXELS].iter_mut().zip(self.test.image(k))
                {
                    *d = f32::from(s) / 255.0;
                }
            }
            let labels: Vec<u8> = indices.iter().map(|&k| self.test.labels()[k]).collect();
            let logits = self.model.forward(self.eval_images.view(), &mut self.eval_workspace)?;
            pass.loss += f64::from(crate::loss::cross_entropy(logits, &labels)?) * labels.len() as f64;
            for (row, &label) in logits.rows().into_iter().zip(&labels) {
                let predicted = argmax(row.iter().copied());
                pass.correct += usize::from(predicted == usize::from(label));
                pass.confusion[usize::from(label)][predicted] += 1;
            }
            pass.next = chunk_end;
        }
        if pass.next < self.test_subset.len() {
            self.eval = Some(pass);
            return Ok(None);
        }
        let n = self.test_subset.len();
        Ok(Some(Evaluation::from_counts(pass.step, pass.correct, n, (pass.loss / n as f64) as f32, pass.confusion)))
    }

    /// A whole evaluation pass at once (see [`Session::evaluate`]).
    ///
    /// # Errors
    /// As [`Session::evaluate`].
    pub fn evaluate_all(&mut self) -> Result<Evaluation> {
        self.start_evaluation();
        Ok(self.evaluate(usize::MAX)?.expect("a pass over everything completes"))
    }

    /// The ten probabilities of each of `images` `(N, 1, 28, 28)`: `(N, 10)`, rows summing to 1.
    ///
    /// # Errors
    /// As [`LeNet5::forward`]; [`Error::Diverged`] if an output is not finite.
    pub fn predict(&mut self, images: ArrayView4<f32>) -> Result<ndarray::Array2<f32>> {
        let probabilities = softmax(self.model.forward(images, &mut self.eval_workspace)?);
        if let Some(i) = probabilities.iter().position(|p| !p.is_finite()) {
            return Err(Error::Diverged(format!(
                "the model's output for image {} is not finite: its weights have diverged",
                i / NUM_CLASSES
            )));
        }
        Ok(probabilities)
    }

    /// Replaces the weights (for instance with a loaded file); the optimizer state starts afresh.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for non-finite weights; nothing changes then.
    pub fn set_model(&mut self, model: LeNet5) -> Result<()> {
        if !model.is_finite() {
            return Err(Error::InvalidInput("the new model has non-finite weights".into()));
        }
        self.model = model;
        self.optimizer.reset();
        self.backup_valid = false;
        self.eval = None;
        Ok(())
    }

    /// The whole state of the session as bytes: weights, optimizer state, settings, step, epoch,
    /// cursor, images seen, and a fingerprint of the training digits (which are not included).
    /// See [`Session::restore`].
    ///
    /// # Errors
    /// [`Error::Weights`] if serialisation fails (it does not for a well-formed session).
    pub fn checkpoint(&self) -> Result<Vec<u8>> {
        let header = CheckpointHeader {
            format: CHECKPOINT_FORMAT.to_string(),
            settings: self.settings,
            step: self.step,
            epoch: self.epoch,
            cursor: self.cursor as u64,
            order_len: self.order.len() as u64,
            seen: self.seen,
            optimizer_steps: self.optimizer.steps,
            train_count: self.train.len() as u64,
            train_fingerprint: self.train_fingerprint(),
        };
        crate::weights::checkpoint_to_bytes(
            &self.model,
            &miniserde::json::to_string(&header),
            &self.optimizer.first,
            &self.optimizer.second,
        )
    }

    /// Whether `bytes`, a checkpoint from [`Session::checkpoint`], was made on this session's
    /// training digits (the same count and fingerprint), as [`Session::restore`] requires:
    /// `Ok(true)` exactly when `restore` would take it, `Ok(false)` for a sound checkpoint of
    /// other training data. The session is not changed.
    ///
    /// # Errors
    /// [`Error::Checkpoint`], as from [`Session::restore`], for bytes that are not a checkpoint this
    /// version can restore (a weights file is named as such).
    pub fn checkpoint_fits(&self, bytes: &[u8]) -> Result<bool> {
        let checkpoint = Checkpoint::from_bytes(bytes)?;
        Ok(self.other_data(&checkpoint.header).is_none())
    }

    /// Why a checkpoint with `header` was made on other training digits than this session's,
    /// or `None` when it was made on these: the one comparison behind both
    /// [`Session::checkpoint_fits`] and [`Session::restore`], so that they never disagree.
    fn other_data(&self, header: &CheckpointHeader) -> Option<String> {
        let (count, fingerprint) = (self.train.len() as u64, self.train_fingerprint());
        (header.train_count != count || header.train_fingerprint != fingerprint).then(|| {
            format!(
                "the checkpoint was made on other training data ({} digits, fingerprint {:016x}); this session has {count} digits (fingerprint {fingerprint:016x})",
                header.train_count, header.train_fingerprint,
            )
        })
    }

    /// Restores the state saved by [`Session::checkpoint`]. The session must already hold the
    /// same training digits (checked by count and fingerprint, see [`Session::checkpoint_fits`]);
    /// its held-out digits are kept. From here, steps give the same weights, bit for bit, as the
    /// run that was checkpointed.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] for bytes that are not a checkpoint (a weights file is named as such);
    /// [`Error::InvalidInput`] when the training digits differ. Nothing changes on error.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let Checkpoint { model, header, first, second } = Checkpoint::from_bytes(bytes)?;
        if let Some(why) = self.other_data(&header) {
            return Err(Error::InvalidInput(why));
        }
        let lengths: Vec<usize> = model.parameters().iter().map(|t| t.len()).collect();
        let mut optimizer = OptimizerState::new(&lengths);
        if !first.is_empty() {
            optimizer.first = first;
        }
        if !second.is_empty() {
            optimizer.second = second;
        }
        optimizer.steps = header.optimizer_steps;
        let settings = header.settings;
        self.settings = settings;
        self.model = model;
        self.optimizer = optimizer;
        self.step = header.step;
        self.epoch = header.epoch;
        self.seen = header.seen;
        self.order = shuffled_indices(header.order_len as usize, settings.seed, header.epoch);
        self.cursor = header.cursor as usize;
        self.backup_valid = false;
        self.select_test_subset();
        Ok(())
    }
}

/// Names the checkpoint format and its version; a checkpoint of another is refused.
const CHECKPOINT_FORMAT: &str = "lenet-session/1";

/// The largest step, epoch or image count a checkpoint may hold: 2⁵³, the largest integer a
/// JavaScript number holds exactly.
const MAX_COUNTER: u64 = 1 << 53;

#[derive(miniserde::Serialize, miniserde::Deserialize)]
struct CheckpointHeader {
    format: String,
    settings: Settings,
    step: u64,
    epoch: u64,
    cursor: u64,
    order_len: u64,
    seen: u64,
    optimizer_steps: u64,
    train_count: u64,
    train_fingerprint: u64,
}

impl CheckpointHeader {
    const FIELDS: [&'static str; 10] = [
        "format",
        "settings",
        "step",
        "epoch",
        "cursor",
        "order_len",
        "seen",
        "optimizer_steps",
        "train_count",
        "train_fingerprint",
    ];
}

/// A checkpoint read and checked on its own, before it is compared with a session's data.
struct Checkpoint {
    model: LeNet5,
    header: CheckpointHeader,
    /// The optimizer's first and second moment buffers, one per parameter tensor, or empty
    /// where the optimizer had not allocated them.
    first: Vec<Vec<f32>>,
    second: Vec<Vec<f32>>,
}

impl Checkpoint {
    /// Reads what [`Session::checkpoint`] wrote and checks everything that does not depend on
    /// the session it goes to: the format, the fields, the settings, the counters, and that the
    /// optimizer state and the data position agree with the weights and the digit count.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] naming what is wrong.
    fn from_bytes(bytes: &[u8]) -> Result<Checkpoint> {
        let (model, header, first, second) = crate::weights::checkpoint_from_bytes(bytes)?;
        // The format first: another version's state may not parse as this one's.
        let format = match miniserde::json::from_str::<miniserde::json::Value>(&header) {
            Ok(miniserde::json::Value::Object(state)) => match state.get("format") {
                Some(miniserde::json::Value::String(format)) => format.clone(),
                _ => String::new(),
            },
            _ => return Err(Error::Checkpoint("its state is not a JSON object".into())),
        };
        if format != CHECKPOINT_FORMAT {
            return Err(Error::Checkpoint(format!("format {format:?}, this version reads {CHECKPOINT_FORMAT:?}")));
        }
        let header: CheckpointHeader = miniserde::json::from_str(&header).map_err(|_| {
            Error::Checkpoint(format!(
                "its state lacks a field or has one of the wrong type (it needs {})",
                CheckpointHeader::FIELDS.join(", ")
            ))
        })?;
        header.settings.validate().map_err(|e| Error::Checkpoint(format!("its settings: {e}")))?;
        // Counters beyond 2⁵³ are no run's: they would overflow as steps go on, and JavaScript
        // could not show them exactly.
        let largest = [header.step, header.epoch, header.seen, header.optimizer_steps];
        if largest.iter().any(|&n| n > MAX_COUNTER) {
            return Err(Error::Checkpoint(format!(
                "its counters (step {}, epoch {}, seen {}, optimizer steps {}) must be at most 2^53",
                header.step, header.epoch, header.seen, header.optimizer_steps
            )));
        }
        let lengths: Vec<usize> = model.parameters().iter().map(|t| t.len()).collect();
        let fits =
            |buffers: &Vec<Vec<f32>>| buffers.is_empty() || buffers.iter().map(Vec::len).eq(lengths.iter().copied());
        // The order covers the training digits the checkpoint records; restoring it needs the
        // same digits, so this bounds it by the session's too.
        if !fits(&first) || !fits(&second) || header.order_len > header.train_count || header.cursor > header.order_len
        {
            return Err(Error::Checkpoint("its optimizer state or data position is inconsistent".into()));
        }
        Ok(Checkpoint { model, header, first, second })
    }
}

/// Where the threads of one parallel part of a step wait for each other before leaving it,
/// without sleeping: each arrives when its work is done (or it unwinds from a panic: the guard's
/// `drop`), then spins and yields until every one has, for at most [`Meeting::AWAKE`]. A thread
/// that sleeps the moment it is idle, as rayon's do, is slow to wake on a virtual machine: two
/// independent sessions on two threads ran 27 % slower when they met asleep after every step,
/// 17 % when they met awake (README, "Speed"). Yielding rather than only spinning hands the core
/// to any thread the system has ready, such as the one being waited for; the time limit leaves
/// the rest of a long wait to rayon, asleep, so that threads whose partners cannot run (more
/// threads than cores, or clones of a session sharing its pool) never wait on each other for ever.
#[cfg(not(target_arch = "wasm32"))]
struct Meeting<'a> {
    arrived: &'a std::sync::atomic::AtomicUsize,
    parties: usize,
}

#[cfg(not(target_arch = "wasm32"))]
impl Meeting<'_> {
    /// The longest a thread waits awake: a step's shards take a few milliseconds, and a thread
    /// that is further behind than this is waited for asleep.
    const AWAKE: std::time::Duration = std::time::Duration::from_millis(5);
}

#[cfg(not(target_arch = "wasm32"))]
impl Drop for Meeting<'_> {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        self.arrived.fetch_add(1, Ordering::AcqRel);
        let backoff = crossbeam_utils::Backoff::new();
        let since = std::time::Instant::now();
        while self.arrived.load(Ordering::Acquire) < self.parties && since.elapsed() < Self::AWAKE {
            backoff.snooze();
        }
    }
}

/// The generator for the augmentation of batch position `position` of step `step`: keyed by
/// the seed and the step, one stream per position, so no state needs saving and an image's
/// distortion does not depend on which thread or worker draws it.
fn augmentation_rng(seed: u64, step: u64, position: usize) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&step.to_le_bytes());
    key[16..24].copy_from_slice(b"augment\0");
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(position as u64);
    rng
}

impl Settings {
    /// The names of the settings, as they appear in JSON and JavaScript.
    pub const NAMES: [&'static str; 14] = [
        "seed",
        "optimizer",
        "learning_rate",
        "momentum",
        "weight_decay",
        "beta1",
        "beta2",
        "eps",
        "batch_size",
        "shard_size",
        "schedule",
        "schedule_steps",
        "augment",
        "eval_limit",
    ];

    /// These settings with the fields of `patch` (JSON text of an object holding any of
    /// [`Settings::NAMES`]) replaced; the rest are kept.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first unknown setting, or the setting whose value has
    /// the wrong type or is out of range.
    pub fn merged(&self, patch: &str) -> Result<Settings> {
        // A non-finite base could not be written as JSON and read back.
        self.validate()?;
        // Switching augmentation on with some of its fields: the others start from the default.
        let mut base = *self;
        if base.augment.is_none() {
            if let Ok(miniserde::json::Value::Object(patch)) = miniserde::json::from_str(patch) {
                if matches!(patch.get("augment"), Some(miniserde::json::Value::Object(_))) {
                    base.augment = Some(Augment::default());
                }
            }
        }
        let settings: Settings = crate::json::merged(&base, patch, "setting")?;
        settings.validate()?;
        Ok(settings)
    }
}

/// `limit` indices spread evenly over `0..n`, ascending: `⌊i · n / limit⌋` for `i` in
/// `0..limit` (all distinct when `limit ≤ n`). A session evaluates on these when its
/// `eval_limit` is below the count of held-out digits, which are often sorted by class or
/// writer. Computed in u64: on wasm32, `i · n` passes 2³² for sets of about 65,536 digits.
pub fn spread_indices(n: usize, limit: usize) -> Vec<usize> {
    (0..limit as u64).map(|i| (i * n as u64 / limit as u64) as usize).collect()
}

/// Checks the share of the person's digits in a fine-tuning mix ([`fine_tune_data`]).
///
/// # Errors
/// [`Error::Setting`] when `mine_share` is not in (0, 1).
pub(crate) fn check_mine_share(mine_share: f64) -> Result<()> {
    if mine_share > 0.0 && mine_share < 1.0 {
        Ok(())
    } else {
        Err(setting_error("mine_share", format!("must be in (0, 1), got {}", Num(mine_share))))
    }
}

/// The most digits a fine-tuning mix ([`fine_tune_data`]) may hold: 250,000, 196 MB of pixels
/// (four times MNIST's training set).
pub const MAX_FINE_TUNE_DIGITS: usize = 250_000;

/// The copies of `mine_len` digits that make up `mine_share` of a fine-tuning mix with
/// `replay_count` replayed digits ([`fine_tune_data`]).
///
/// # Errors
/// [`Error::Setting`] when the mix would hold more than [`MAX_FINE_TUNE_DIGITS`] (a share near 1
/// asks for a great many copies).
pub(crate) fn fine_tune_copies(mine_len: usize, replay_count: usize, mine_share: f64) -> Result<usize> {
    let wanted = replay_count as f64 * mine_share / (1.0 - mine_share);
    // In f64 first: the count of copies has no bound as the share nears 1.
    let copies = (wanted / mine_len.max(1) as f64).round().max(1.0);
    let total = copies * mine_len as f64 + replay_count as f64;
    if total > MAX_FINE_TUNE_DIGITS as f64 {
        return Err(setting_error(
            "mine_share",
            format!(
                "{} with {replay_count} replayed digits would make a mix of about {} digits, more than the \
                 {MAX_FINE_TUNE_DIGITS} allowed: lower mine_share or the replayed digits",
                Num(mine_share),
                Num(total.round())
            ),
        ));
    }
    Ok(copies as usize)
}

/// The training digits for fine-tuning a network on a person's own digits without forgetting
/// the rest: `mine` repeated (whole copies, in order) until it makes up about `mine_share` of the
/// result, followed by `replay_count` digits sampled without replacement from `replay`
/// (rehearsal, as in Robins 1995, "Catastrophic forgetting, rehearsal and pseudorehearsal").
/// A batch drawn from the result (the session shuffles it) then holds about `mine_share` of the
/// person's digits whatever the sizes: 0.5 balances the two; less forgets less.
///
/// `mine` is repeated `max(1, round(replay_count · mine_share / (1 − mine_share) / mine.len()))`
/// times. The replay sample is the first `replay_count` of
/// [`shuffled_indices`]`(replay.len(), seed, 0)`, so it is a function of the seed only;
/// `replay_count` above `replay.len()` takes all of `replay`. With `replay_count == 0` the result
/// is `mine` alone.
///
/// # Errors
/// [`Error::InvalidInput`] when `mine` is empty (there is nothing to fine-tune on);
/// [`Error::Setting`] when `mine_share` is not in (0, 1), or when the result would hold more
/// than [`MAX_FINE_TUNE_DIGITS`] (a share near 1 asks for a great many copies of `mine`).
pub fn fine_tune_data(
    mine: &Digits,
    replay: &Digits,
    replay_count: usize,
    mine_share: f64,
    seed: u64,
) -> Result<Digits> {
    if mine.is_empty() {
        return Err(Error::InvalidInput("fine-tuning needs at least one of the person's digits".into()));
    }
    check_mine_share(mine_share)?;
    let replay_count = replay_count.min(replay.len());
    let copies = fine_tune_copies(mine.len(), replay_count, mine_share)?;
    let total = copies * mine.len() + replay_count;
    let mut images = Vec::with_capacity(total * IMAGE_PIXELS);
    let mut labels = Vec::with_capacity(total);
    for _ in 0..copies {
        images.extend_from_slice(mine.images());
        labels.extend_from_slice(mine.labels());
    }
    for &i in shuffled_indices(replay.len(), seed, 0).iter().take(replay_count) {
        images.extend_from_slice(replay.image(i));
        labels.push(replay.labels()[i]);
    }
    Digits::new(images, labels)
}

#[cfg(test)]
mod fine_tune_tests {
    use super::*;

    /// `n` digits whose every pixel is `first + i` and whose label is `(first + i) % 10`.
    fn digits(first: u8, n: usize) -> Digits {
        let images = (0..n).flat_map(|i| vec![first + i as u8; IMAGE_PIXELS]).collect();
        let labels = (0..n).map(|i| (first + i as u8) % 10).collect();
        Digits::new(images, labels).unwrap()
    }

    #[test]
    fn mine_is_repeated_to_balance_a_seeded_replay_sample() {
        let mine = digits(200, 4);
        let replay = digits(0, 100);
        let mixed = fine_tune_data(&mine, &replay, 20, 0.5, 7).unwrap();
        // 20 / 4 = 5 copies of mine, then 20 replay digits.
        assert_eq!(mixed.len(), 40);
        for copy in 0..5 {
            assert_eq!(&mixed.labels()[copy * 4..copy * 4 + 4], mine.labels());
            assert_eq!(mixed.image(copy * 4 + 3)[0], 203);
        }
        let sample: Vec<u8> = (20..40).map(|i| mixed.image(i)[0]).collect();
        let mut distinct = sample.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 20, "replay is sampled without replacement");
        assert!(sample.iter().all(|&p| p < 100));
        for (i, &p) in sample.iter().enumerate() {
            assert_eq!(mixed.labels()[20 + i], p % 10, "a replay digit keeps its label");
        }
        // The sample depends on the seed alone.
        assert_eq!(fine_tune_data(&mine, &replay, 20, 0.5, 7).unwrap(), mixed);
        assert_ne!(fine_tune_data(&mine, &replay, 20, 0.5, 8).unwrap(), mixed);
        // A share of 0.2: 20 · 0.25 / 4 = 1.25 → one copy of mine.
        assert_eq!(fine_tune_data(&mine, &replay, 20, 0.2, 7).unwrap().len(), 4 + 20);
        let err = fine_tune_data(&mine, &replay, 20, 1.0, 7).unwrap_err();
        assert!(err.to_string().contains("mine_share"), "{err}");
    }

    #[test]
    fn a_share_near_one_is_refused_before_anything_is_allocated() {
        let (mine, replay) = (digits(200, 1), digits(0, 512));
        // 512 · s / (1 − s) copies of one digit: 400 million million at s = 1 − 1e-9.
        let err = fine_tune_data(&mine, &replay, 512, 0.999_999_999, 0).unwrap_err().to_string();
        assert!(err.contains("mine_share") && err.contains("more than the 250000 allowed"), "{err}");
        // The largest mix allowed is made: 249,488 copies and 512 replayed digits.
        let share = 249_488.0 / (249_488.0 + 512.0);
        assert_eq!(fine_tune_data(&mine, &replay, 512, share, 0).unwrap().len(), MAX_FINE_TUNE_DIGITS);
    }

    #[test]
    fn small_replay_and_zero_replay() {
        let mine = digits(200, 3);
        let replay = digits(0, 5);
        // Asking for more replay than there is takes all of it.
        let mixed = fine_tune_data(&mine, &replay, 50, 0.5, 0).unwrap();
        assert_eq!(mixed.len(), 2 * 3 + 5);
        let alone = fine_tune_data(&mine, &replay, 0, 0.5, 0).unwrap();
        assert_eq!(alone, mine);
    }

    #[test]
    fn no_digits_of_mine_is_an_error() {
        let err = fine_tune_data(&Digits::default(), &digits(0, 5), 5, 0.5, 0).unwrap_err();
        assert!(err.to_string().contains("at least one"), "{err}");
    }
}
