//! Teaching a trained network a person's handwriting: the recipe behind the page's "Teach it
//! your handwriting" and `lenet teach`, so that both run exactly the same thing.
//!
//! A few labelled digits of one person are split into digits to learn from and digits held out
//! to measure on ([`hold_out`]); a [`Teaching`] fine-tunes a copy of the network on the ones to
//! learn from, repeated and mixed with replayed MNIST digits ([`fine_tune_data`]: rehearsal, as
//! in Robins 1995, "Catastrophic forgetting, rehearsal and pseudorehearsal"), with the crate's
//! augmentation, at a low constant learning rate, for a fixed number of steps
//! ([`TeachRecipe`]). The caller steps it: all at once ([`Teaching::run`]) or in slices between
//! other work, as the page's worker does.
//!
//! [`WriterScore`] and [`rank_writers`] find the writers of a handwriting collection (UNIPEN)
//! whom a network reads worst, and [`take_per_digit`] picks the digits such a writer would
//! label: the measurement of how much teaching helps real writers.

use std::collections::BTreeMap;

use ndarray::ArrayView4;

use crate::data::digits::Digits;
use crate::data::unipen;
use crate::error::{Error, Result};
use crate::model::{LeNet5, Workspace, IMAGE_PIXELS, IMAGE_SIDE, NUM_CLASSES};
use crate::session::{check_mine_share, fine_tune_copies, fine_tune_data, Session, Settings};
use crate::train::{argmax, LrSchedule};

/// Digits converted to f32 and read per forward pass when measuring accuracy.
const ACCURACY_CHUNK: usize = 500;

/// The most digits of one person's that are kept and taught from (2,000). A person labels tens
/// to hundreds; a file of thousands is a dataset, to be trained on rather than taught, and the
/// page, which shows each of a person's digits and stores them one by one, would stall on it.
pub const MAX_MINE_DIGITS: usize = 2_000;

/// Checks that `count` digits of one person's are within [`MAX_MINE_DIGITS`]: the page asks
/// before it adds digits, and [`Teaching::with_hold_out`] refuses more.
///
/// # Errors
/// [`Error::InvalidInput`] naming `count` and the limit when `count > MAX_MINE_DIGITS`.
pub fn check_mine_count(count: usize) -> Result<()> {
    if count > MAX_MINE_DIGITS {
        return Err(Error::InvalidInput(format!(
            "{count} digits of yours are more than the {MAX_MINE_DIGITS} that are kept and taught from"
        )));
    }
    Ok(())
}

/// Everything that decides how a network is taught a person's digits.
///
/// `Default` is the page's recipe: 100 steps of 32 images (about 0.7 s in a browser's worker on
/// two cores, within the page's 2 s budget), the person's learnt digits making up 2 % of what
/// is trained on next to 512 replayed MNIST digits (at least one copy of each: with 50 digits,
/// 9 %), and the crate's [`Settings`] (SGD with momentum 0.9, weight decay 5·10⁻⁴) at a
/// constant learning rate of 0.003, seed 0, without augmentation. A low rate and a small share
/// keep the network from unlearning MNIST: a style close to another MNIST digit (a 1 with a
/// long flag, like a 7) is learnt without forgetting that digit. Augmentation is off because
/// the network already learnt the distortions, and the person's exact style is what is
/// taught: on the eight worst-read UNIPEN writers of `lenet teach`, 4 of their other digits stay
/// misread (of 6 before teaching) against 6 with augmentation, and MNIST's test accuracy drops
/// by at most 0.17 points against 0.25.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TeachRecipe {
    /// Optimizer steps, ≥ 1.
    pub steps: u64,
    /// Replay digits sampled from the replay set (fewer when it holds fewer), ≥ 0.
    pub replay_count: usize,
    /// The share of the person's (repeated) digits in what is trained on, in (0, 1).
    pub mine_share: f64,
    /// The training settings of the fine-tuning session.
    pub settings: Settings,
}

impl Default for TeachRecipe {
    fn default() -> Self {
        TeachRecipe {
            steps: 100,
            replay_count: 512,
            mine_share: 0.02,
            settings: Settings {
                learning_rate: 0.003,
                schedule: LrSchedule::Constant,
                batch_size: 32,
                seed: 0,
                augment: None,
                ..Settings::default()
            },
        }
    }
}

impl TeachRecipe {
    /// Checks the recipe.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `steps` 0, [`Error::Setting`] for `mine_share` not in
    /// (0, 1) or so near 1 that the mix would hold more than
    /// [`crate::session::MAX_FINE_TUNE_DIGITS`], or as [`Settings::validate`].
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::InvalidInput("teaching needs at least one step (steps is 0)".into()));
        }
        check_mine_share(self.mine_share)?;
        // Before the data is read: one digit of the person's stands for any count of them, give
        // or take half of it in the rounding, which `fine_tune_data` checks exactly.
        fine_tune_copies(1, self.replay_count, self.mine_share)?;
        self.settings.validate()
    }
}

/// Which of a person's digits are held out to measure on (`true`) rather than learnt from:
/// every 5th of each label, in order (the 5th, 10th, …), and, for a label with two or more
/// digits but fewer than five, its last. A label with a single digit is never held out, so
/// every label given is learnt. Returns one flag per label.
pub fn hold_out(labels: &[u8]) -> Vec<bool> {
    let mut held = vec![false; labels.len()];
    let mut by_label: BTreeMap<u8, Vec<usize>> = BTreeMap::new();
    for (i, &label) in labels.iter().enumerate() {
        by_label.entry(label).or_default().push(i);
    }
    for indices in by_label.values() {
        if indices.len() < 2 {
            continue;
        }
        for (k, &i) in indices.iter().enumerate() {
            held[i] = k % 5 == 4;
        }
        if indices.len() < 5 {
            held[indices[indices.len() - 1]] = true;
        }
    }
    held
}

/// The first `per_digit` digits of each label, in order (`true`): those a writer labels to
/// teach, the rest being the writer's other digits. `None` when some digit `0..=9` has
/// `per_digit` or fewer (then there would be no other digit of it to measure on), or when a
/// label is not a digit.
pub fn take_per_digit(labels: &[u8], per_digit: usize) -> Option<Vec<bool>> {
    if labels.iter().any(|&label| usize::from(label) >= NUM_CLASSES) {
        return None;
    }
    let mut counts = [0usize; NUM_CLASSES];
    let taken = labels
        .iter()
        .map(|&label| {
            let count = &mut counts[usize::from(label)];
            *count += 1;
            *count <= per_digit
        })
        .collect();
    counts.iter().all(|&c| c > per_digit).then_some(taken)
}

/// `digits` split by `mask`: `(those with false, those with true)`, each in order.
///
/// # Errors
/// [`Error::InvalidInput`] when `mask` does not hold one flag per digit.
pub fn split(digits: &Digits, mask: &[bool]) -> Result<(Digits, Digits)> {
    if mask.len() != digits.len() {
        return Err(Error::InvalidInput(format!(
            "{} flags for {} digits: one flag per digit",
            mask.len(),
            digits.len()
        )));
    }
    let mut parts = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    for (i, &flag) in mask.iter().enumerate() {
        let (images, labels) = &mut parts[usize::from(flag)];
        images.extend_from_slice(digits.image(i));
        labels.push(digits.labels()[i]);
    }
    let [(images0, labels0), (images1, labels1)] = parts;
    Ok((Digits::new(images0, labels0)?, Digits::new(images1, labels1)?))
}

/// The digit `model` reads in each of `digits` (its most probable class). Pixels are
/// `byte / 255`, as a session trains on them.
///
/// # Errors
/// Only those of [`LeNet5::forward`], which well-formed [`Digits`] do not cause.
pub fn predictions(model: &LeNet5, digits: &Digits) -> Result<Vec<u8>> {
    let mut workspace = Workspace::default();
    let mut pixels = Vec::with_capacity(ACCURACY_CHUNK * IMAGE_PIXELS);
    let mut out = Vec::with_capacity(digits.len());
    for start in (0..digits.len()).step_by(ACCURACY_CHUNK) {
        let end = (start + ACCURACY_CHUNK).min(digits.len());
        pixels.clear();
        pixels.extend(digits.images()[start * IMAGE_PIXELS..end * IMAGE_PIXELS].iter().map(|&b| f32::from(b) / 255.0));
        let view = ArrayView4::from_shape((end - start, 1, IMAGE_SIDE, IMAGE_SIDE), &pixels)
            .map_err(|e| Error::InvalidInput(format!("digits as images: {e}")))?;
        let logits = model.forward(view, &mut workspace)?;
        out.extend(logits.rows().into_iter().map(|row| argmax(row.iter().copied()) as u8));
    }
    Ok(out)
}

/// How many of `digits` `model` reads right (see [`predictions`]).
///
/// # Errors
/// As [`predictions`].
pub fn count_correct(model: &LeNet5, digits: &Digits) -> Result<usize> {
    Ok(predictions(model, digits)?.iter().zip(digits.labels()).filter(|(p, l)| p == l).count())
}

/// The share of `digits` that `model` reads right, in `[0, 1]`; `None` for no digits.
///
/// # Errors
/// As [`count_correct`].
pub fn accuracy(model: &LeNet5, digits: &Digits) -> Result<Option<f64>> {
    if digits.is_empty() {
        return Ok(None);
    }
    Ok(Some(count_correct(model, digits)? as f64 / digits.len() as f64))
}

/// A network being taught a person's digits: a fine-tuning [`Session`] started from the
/// network's weights (its own optimizer state and data order are untouched), on the mix of
/// [`fine_tune_data`], stepped [`TeachRecipe::steps`] times.
#[derive(Clone, Debug)]
pub struct Teaching {
    session: Session,
    held_out: Digits,
    learnt: usize,
    steps: u64,
}

impl Teaching {
    /// Teaching `model` the digits `learn`, measuring on `held_out` (the person's other digits;
    /// may be empty), with `replay` (MNIST's training digits, say) to rehearse. The replay
    /// sample is drawn with seed `recipe.settings.seed + learn.len() + held_out.len()` (the
    /// person's digit count): a new sample each time the person adds digits.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `learn` is empty (label some digits first), the recipe is
    /// out of range ([`TeachRecipe::validate`]), or `model` has non-finite weights.
    pub fn new(model: LeNet5, learn: &Digits, held_out: Digits, replay: &Digits, recipe: &TeachRecipe) -> Result<Self> {
        recipe.validate()?;
        if learn.is_empty() {
            return Err(Error::InvalidInput(
                "there are no digits to learn from: label some digits first (a label's only digit is always learnt)"
                    .into(),
            ));
        }
        let seed = recipe.settings.seed.wrapping_add((learn.len() + held_out.len()) as u64);
        let mixed = fine_tune_data(learn, replay, recipe.replay_count, recipe.mine_share, seed)?;
        let mut session = Session::with_model(model, recipe.settings)?;
        session.set_train_data(mixed)?;
        Ok(Teaching { session, held_out, learnt: learn.len(), steps: recipe.steps })
    }

    /// Teaching `model` a person's `digits`, all of them, split by [`hold_out`] into those learnt
    /// from and those measured on: what the page does.
    ///
    /// # Errors
    /// As [`Teaching::new`]; [`Error::InvalidInput`] for no digits, or more than
    /// [`MAX_MINE_DIGITS`].
    pub fn with_hold_out(model: LeNet5, digits: &Digits, replay: &Digits, recipe: &TeachRecipe) -> Result<Self> {
        if digits.is_empty() {
            return Err(Error::InvalidInput("there are no digits of yours to learn from: label some first".into()));
        }
        check_mine_count(digits.len())?;
        let (learn, held_out) = split(digits, &hold_out(digits.labels()))?;
        Teaching::new(model, &learn, held_out, replay, recipe)
    }

    /// One optimizer step, unless all the recipe's steps are taken: `Ok(true)` when a step was
    /// taken, `Ok(false)` when there was none left.
    ///
    /// # Errors
    /// [`Error::Diverged`] when the step made the weights non-finite (it was not taken; the
    /// weights stay the last finite ones): the recipe's learning rate is too high for this
    /// network.
    pub fn step(&mut self) -> Result<bool> {
        if self.is_done() {
            return Ok(false);
        }
        match self.session.step()?.diverged {
            Some(reason) => Err(Error::Diverged(format!("teaching diverged: {reason}"))),
            None => Ok(true),
        }
    }

    /// Takes every step left.
    ///
    /// # Errors
    /// As [`Teaching::step`].
    pub fn run(&mut self) -> Result<()> {
        while self.step()? {}
        Ok(())
    }

    /// Whether all the recipe's steps are taken.
    pub fn is_done(&self) -> bool {
        self.steps_taken() >= self.steps
    }

    /// Steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.session.progress().step
    }

    /// The network as taught so far.
    pub fn model(&self) -> &LeNet5 {
        self.session.model()
    }

    /// The network as taught so far, giving the teaching up.
    pub fn into_model(self) -> LeNet5 {
        self.session.model().clone()
    }

    /// The person's digits measured on, not learnt from.
    pub fn held_out(&self) -> &Digits {
        &self.held_out
    }

    /// The share of the held-out digits the network as taught so far reads right (before the
    /// first step: the network as it was); `None` when none are held out.
    ///
    /// # Errors
    /// As [`accuracy`].
    pub fn held_out_accuracy(&self) -> Result<Option<f64>> {
        accuracy(self.model(), &self.held_out)
    }

    /// The person's digits learnt from.
    pub fn learnt_count(&self) -> usize {
        self.learnt
    }

    /// The digits trained on: the person's, repeated, and the replay sample.
    pub fn mixed_count(&self) -> usize {
        self.session.progress().train_count
    }
}

/// How well a network reads one writer of a handwriting collection.
#[derive(Clone, Debug, PartialEq)]
pub struct WriterScore {
    /// The writer ([`unipen::Digit::writer`]).
    pub writer: String,
    /// The writer's digits, rendered as the page renders a drawing, in writing order.
    pub digits: Digits,
    /// How many of them the network reads right.
    pub correct: usize,
}

impl WriterScore {
    /// The share read right, in `[0, 1]`.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.digits.len().max(1) as f64
    }
}

/// The writers of `digits` who wrote more than `per_digit` of every digit `0..=9` (enough to
/// label `per_digit` of each and measure on the rest), worst read by `model` first: by
/// accuracy over all their digits, then by writer name.
///
/// # Errors
/// As [`count_correct`]; [`Error::InvalidInput`] for a label above 9 (only in hand-made digits).
pub fn rank_writers(model: &LeNet5, digits: &[unipen::Digit], per_digit: usize) -> Result<Vec<WriterScore>> {
    let mut by_writer: BTreeMap<&str, Vec<unipen::Digit>> = BTreeMap::new();
    for digit in digits {
        by_writer.entry(digit.writer.as_str()).or_default().push(digit.clone());
    }
    let mut scores = Vec::new();
    for (writer, theirs) in by_writer {
        let (images, labels) = unipen::render_dataset(&theirs);
        if take_per_digit(&labels, per_digit).is_none() {
            continue;
        }
        let rendered = Digits::new(images, labels)?;
        let correct = count_correct(model, &rendered)?;
        scores.push(WriterScore { writer: writer.to_string(), digits: rendered, correct });
    }
    scores.sort_by(|a, b| a.accuracy().total_cmp(&b.accuracy()).then_with(|| a.writer.cmp(&b.writer)));
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_recipe_is_the_pages() {
        let recipe = TeachRecipe::default();
        assert_eq!((recipe.steps, recipe.replay_count, recipe.mine_share), (100, 512, 0.02));
        let s = recipe.settings;
        assert_eq!((s.learning_rate, s.schedule, s.batch_size, s.seed), (0.003, LrSchedule::Constant, 32, 0));
        // The digits as they are; the rest is the crate's recipe.
        assert_eq!(s.augment, None);
        assert_eq!((s.optimizer, s.momentum), (Settings::default().optimizer, Settings::default().momentum));
        recipe.validate().unwrap();
        let bad = TeachRecipe { steps: 0, ..recipe };
        assert!(bad.validate().unwrap_err().to_string().contains("steps"));
        let bad = TeachRecipe { mine_share: 1.0, ..recipe };
        assert!(bad.validate().unwrap_err().to_string().contains("mine_share"));
        // 512 · s / (1 − s) copies: refused before any data is read.
        let greedy = TeachRecipe { mine_share: 0.999_999_9, ..recipe };
        let error = greedy.validate().unwrap_err().to_string();
        assert!(error.contains("a mix of about 5120000003 digits, more than the 250000 allowed"), "{error}");
    }

    #[test]
    fn every_fifth_of_each_label_is_held_out() {
        // Label 3: 11 digits, the 5th and 10th held out; label 7: three, the last held out;
        // label 9: one, learnt.
        let mut labels = vec![3u8; 11];
        labels.extend([7, 9, 7, 7]);
        let held = hold_out(&labels);
        let indices: Vec<usize> = (0..labels.len()).filter(|&i| held[i]).collect();
        assert_eq!(indices, vec![4, 9, 14]);
        // Interleaved labels count per label.
        assert_eq!(
            hold_out(&[1, 2, 1, 2, 1, 2, 1, 2, 1, 2]),
            [false, false, false, false, false, false, false, false, true, true]
        );
        assert_eq!(hold_out(&[5, 5]), [false, true]);
        assert!(hold_out(&[]).is_empty());
    }

    #[test]
    fn take_per_digit_takes_the_first_of_each_and_needs_more() {
        let labels: Vec<u8> = (0..30).map(|i| (i % 10) as u8).collect();
        let taken = take_per_digit(&labels, 2).unwrap();
        assert_eq!(taken.iter().filter(|&&t| t).count(), 20);
        assert!(taken[..20].iter().all(|&t| t) && taken[20..].iter().all(|&t| !t));
        assert_eq!(take_per_digit(&labels, 3), None, "no digit left to measure on");
        assert_eq!(take_per_digit(&labels[..29], 2), None, "one 9 too few");
    }

    fn digits(n: usize) -> Digits {
        let images = (0..n).flat_map(|i| vec![(i * 20) as u8; IMAGE_PIXELS]).collect();
        Digits::new(images, (0..n).map(|i| (i % 10) as u8).collect()).unwrap()
    }

    #[test]
    fn split_keeps_order_and_checks_the_mask() {
        let (no, yes) = split(&digits(4), &[true, false, false, true]).unwrap();
        assert_eq!((no.labels(), yes.labels()), (&[1u8, 2][..], &[0u8, 3][..]));
        assert_eq!(yes.image(1)[0], 60);
        assert!(split(&digits(4), &[true]).unwrap_err().to_string().contains("one flag per digit"));
    }

    #[test]
    fn teaching_takes_the_recipes_steps_and_nothing_is_an_error() {
        let recipe = TeachRecipe { steps: 3, replay_count: 20, ..TeachRecipe::default() };
        let model = LeNet5::new(1);
        let mut teaching = Teaching::with_hold_out(model.clone(), &digits(20), &digits(40), &recipe).unwrap();
        assert_eq!((teaching.learnt_count(), teaching.held_out().len()), (10, 10));
        assert_eq!(
            teaching.held_out_accuracy().unwrap(),
            accuracy(&model, &split(&digits(20), &hold_out(digits(20).labels())).unwrap().1).unwrap()
        );
        teaching.run().unwrap();
        assert_eq!(teaching.steps_taken(), 3);
        assert!(!teaching.step().unwrap());
        assert_ne!(teaching.model(), &model);
        let err = Teaching::with_hold_out(model.clone(), &Digits::default(), &digits(4), &recipe).unwrap_err();
        assert!(err.to_string().contains("label some first"), "{err}");
        let err = Teaching::new(model, &Digits::default(), Digits::default(), &digits(4), &recipe).unwrap_err();
        assert!(err.to_string().contains("no digits to learn from"), "{err}");
    }

    #[test]
    fn at_most_max_mine_digits_are_taught_from() {
        assert!(check_mine_count(0).is_ok() && check_mine_count(MAX_MINE_DIGITS).is_ok());
        let err = check_mine_count(MAX_MINE_DIGITS + 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid input: 2001 digits of yours are more than the 2000 that are kept and taught from"
        );
        let recipe = TeachRecipe { steps: 1, replay_count: 20, ..TeachRecipe::default() };
        let (model, replay) = (LeNet5::new(1), digits(20));
        assert!(Teaching::with_hold_out(model.clone(), &digits(MAX_MINE_DIGITS), &replay, &recipe).is_ok());
        let err = Teaching::with_hold_out(model, &digits(MAX_MINE_DIGITS + 1), &replay, &recipe).unwrap_err();
        assert!(err.to_string().contains("2001 digits of yours"), "{err}");
    }
}
