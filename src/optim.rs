//! Optimisers: stochastic gradient descent with momentum, Adam and AdamW, each with PyTorch's
//! update rule (`torch.optim.SGD`, `torch.optim.Adam`, `torch.optim.AdamW` with their defaults:
//! no Nesterov, dampening 0, no AMSGrad, minimising).
//!
//! [`step`] updates a list of flattened parameter tensors from their gradients, keeping the
//! moments in an [`OptimizerState`]; [`OptimizerConfig`] picks the rule and its settings.
//! [`SgdConfig`] and [`sgd_update`] are the older SGD-only interface, computed by the same
//! per-element formula.
//!
//! Arithmetic is f32 per element, as PyTorch's float32 CPU kernels do it, with the per-step
//! scalars (bias corrections, step size) computed in f64 and rounded once to f32. Nothing here
//! calls the platform's maths library except for square roots (IEEE-754 correctly rounded), so
//! a step gives identical bits natively and in WebAssembly.

use std::fmt;
use std::str::FromStr;

use crate::error::{setting_error, Error, Num, Result};

/// Which update rule [`step`] applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, miniserde::Serialize, miniserde::Deserialize, Default)]
pub enum OptimizerKind {
    /// Stochastic gradient descent with (heavy-ball) momentum and L2 weight decay, as
    /// `torch.optim.SGD`: `g ← grad + weight_decay · w`, `v ← momentum · v + g`,
    /// `w ← w − learning_rate · v` (Sutskever, Martens, Dahl and Hinton, "On the importance of
    /// initialization and momentum in deep learning", ICML 2013, in PyTorch's formulation).
    #[default]
    #[serde(rename = "sgd")]
    Sgd,
    /// Adam (Kingma and Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015) with L2
    /// weight decay added to the gradient, as `torch.optim.Adam`.
    #[serde(rename = "adam")]
    Adam,
    /// Adam with decoupled weight decay (Loshchilov and Hutter, "Decoupled Weight Decay
    /// Regularization", ICLR 2019), as `torch.optim.AdamW`: `w ← w · (1 − learning_rate ·
    /// weight_decay)`, then Adam's step without L2.
    #[serde(rename = "adamw")]
    AdamW,
}

impl OptimizerKind {
    /// Every kind, in declaration order.
    pub const ALL: [OptimizerKind; 3] = [OptimizerKind::Sgd, OptimizerKind::Adam, OptimizerKind::AdamW];

    /// The lowercase name used by serde, [`fmt::Display`] and [`FromStr`]: `sgd`, `adam`, `adamw`.
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::AdamW => "adamw",
        }
    }
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OptimizerKind {
    type Err = Error;

    /// Parses `sgd`, `adam` or `adamw` (ASCII case ignored).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the string and the accepted names.
    fn from_str(s: &str) -> Result<Self> {
        OptimizerKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::InvalidInput(format!("optimizer kind must be one of sgd, adam, adamw, got {s:?}")))
    }
}

/// An optimiser's settings: the rule and every hyper-parameter any rule uses (a rule ignores
/// the others). [`OptimizerConfig::from_json`] reads a partial object, missing fields taking
/// their [`Default`]; unknown fields are an error.
#[derive(Clone, Copy, Debug, PartialEq, miniserde::Serialize, miniserde::Deserialize)]
pub struct OptimizerConfig {
    /// The update rule.
    pub kind: OptimizerKind,
    /// Step size, > 0 and finite.
    pub learning_rate: f32,
    /// SGD's momentum coefficient, in `[0, 1)`.
    pub momentum: f32,
    /// Weight-decay coefficient, ≥ 0 and finite, applied to every parameter: an L2 penalty
    /// added to the gradient for SGD and Adam (as PyTorch does), decoupled for AdamW.
    pub weight_decay: f32,
    /// Adam's decay rate of the first moment (β₁), in `[0, 1)`.
    pub beta1: f32,
    /// Adam's decay rate of the second moment (β₂), in `[0, 1)`.
    pub beta2: f32,
    /// Adam's term added to the denominator for numerical stability (ε), > 0 and finite.
    pub eps: f32,
}

impl Default for OptimizerConfig {
    /// SGD with the recipe of the `lenet train` command (learning rate 0.02, momentum 0.9,
    /// weight decay 5·10⁻⁴), and Adam's published defaults β₁ = 0.9, β₂ = 0.999, ε = 10⁻⁸.
    fn default() -> Self {
        OptimizerConfig {
            kind: OptimizerKind::Sgd,
            learning_rate: 0.02,
            momentum: 0.9,
            weight_decay: 5e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl From<SgdConfig> for OptimizerConfig {
    /// The same SGD, with the other fields at their defaults.
    fn from(c: SgdConfig) -> Self {
        OptimizerConfig {
            kind: OptimizerKind::Sgd,
            learning_rate: c.learning_rate,
            momentum: c.momentum,
            weight_decay: c.weight_decay,
            ..OptimizerConfig::default()
        }
    }
}

impl OptimizerConfig {
    /// Settings from JSON text of an object holding any of the fields; the others take their
    /// [`Default`] values.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming an unknown field or a value of the wrong type.
    pub fn from_json(text: &str) -> Result<OptimizerConfig> {
        crate::json::merged(&OptimizerConfig::default(), text, "optimizer setting")
    }

    /// Checks every setting, whichever rule is chosen, so that switching the rule later
    /// cannot make a configuration invalid.
    ///
    /// # Errors
    /// [`Error::Setting`] naming the first setting out of its range and its value.
    pub fn validate(&self) -> Result<()> {
        check_learning_rate(self.learning_rate)?;
        check_unit_interval("momentum", self.momentum)?;
        check_weight_decay(self.weight_decay)?;
        check_unit_interval("beta1", self.beta1)?;
        check_unit_interval("beta2", self.beta2)?;
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(setting_error("eps", format!("must be a positive finite number, got {}", Num(self.eps))));
        }
        Ok(())
    }
}

fn check_learning_rate(lr: f32) -> Result<()> {
    if lr.is_finite() && lr > 0.0 {
        Ok(())
    } else {
        Err(setting_error("learning_rate", format!("must be a positive finite number, got {}", Num(lr))))
    }
}

fn check_unit_interval(name: &'static str, value: f32) -> Result<()> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(setting_error(name, format!("must be in [0, 1), got {}", Num(value))))
    }
}

fn check_weight_decay(wd: f32) -> Result<()> {
    if wd.is_finite() && wd >= 0.0 {
        Ok(())
    } else {
        Err(setting_error("weight_decay", format!("must be a non-negative finite number, got {}", Num(wd))))
    }
}

/// The optimiser's state for a list of parameter tensors, in the order [`step`] receives them.
///
/// An empty list, or an empty buffer for a non-empty tensor, stands for zeros: [`step`]
/// allocates it on first use, so `OptimizerState::default()` works for any model and SGD never
/// allocates second moments. Call [`OptimizerState::reset`] when the rule changes: the buffers
/// of one rule mean nothing to another.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct OptimizerState {
    /// Updates applied since the state was created or reset (Adam's bias correction uses it).
    pub steps: u64,
    /// SGD's momentum buffers, or Adam's first moments (m), one per tensor.
    pub first: Vec<Vec<f32>>,
    /// Adam's second moments (v), one per tensor; empty vectors for SGD.
    pub second: Vec<Vec<f32>>,
}

impl OptimizerState {
    /// A fresh state for tensors of the given lengths (elements): zero first moments, empty
    /// second moments (allocated, as zeros, by the first Adam step), no steps.
    pub fn new(lengths: &[usize]) -> Self {
        OptimizerState {
            steps: 0,
            first: lengths.iter().map(|&n| vec![0.0; n]).collect(),
            second: lengths.iter().map(|_| Vec::new()).collect(),
        }
    }

    /// Zeros every buffer and the step count, keeping the allocations: the next [`step`]
    /// behaves as the first.
    pub fn reset(&mut self) {
        self.steps = 0;
        for buffer in self.first.iter_mut().chain(self.second.iter_mut()) {
            buffer.fill(0.0);
        }
    }
}

/// Gives `buffers` one zero-filled buffer per parameter tensor (of `lengths` elements) where it
/// has none yet.
fn ensure_buffers(buffers: &mut Vec<Vec<f32>>, lengths: &[usize], what: &str) {
    if buffers.is_empty() {
        buffers.resize_with(lengths.len(), Vec::new);
    }
    assert_eq!(
        buffers.len(),
        lengths.len(),
        "optim::step: {} {what} buffers for {} tensors",
        buffers.len(),
        lengths.len()
    );
    for (i, (buffer, &len)) in buffers.iter_mut().zip(lengths).enumerate() {
        if buffer.is_empty() {
            buffer.resize(len, 0.0);
        }
        assert_eq!(buffer.len(), len, "optim::step: tensor {i} has {len} elements, its {what} buffer {}", buffer.len());
    }
}

/// One update of every tensor: `params[i] ← rule(params[i], grads[i], state buffers i)`, by
/// the rule and settings of `config`, then `state.steps` grows by one.
///
/// - SGD: `g ← grad + wd·w`, `v ← μ·v + g`, `w ← w − lr·v` (so `v = g` on the first step).
/// - Adam (Kingma and Ba, ICLR 2015): `g ← grad + wd·w`, `m ← β₁m + (1−β₁)g`,
///   `v ← β₂v + (1−β₂)g²`, `w ← w − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε)`, t the step count
///   including this step.
/// - AdamW (Loshchilov and Hutter, ICLR 2019): `w ← w·(1 − lr·wd)`, then Adam with no L2 term.
///
/// The operations are ordered as in PyTorch's single-tensor implementations
/// (`_single_tensor_sgd`, `_single_tensor_adam`): the first moment is the linear
/// interpolation `m + (1−β₁)(g − m)` of `Tensor.lerp_`, the denominator is `√v / √(1−β₂ᵗ) + ε`
/// and the step is `(−lr/(1−β₁ᵗ)) · m / denominator`. PyTorch's vectorised kernels fuse some
/// multiply-adds, so the two can differ in the last bit of an element. `config` should have
/// passed [`OptimizerConfig::validate`]; out-of-range settings are not checked here.
///
/// # Panics
/// If `params`, `grads` and the state's non-empty buffers do not have matching counts and
/// lengths: the caller builds all of them from one model, so a mismatch is its bug.
pub fn step(config: &OptimizerConfig, state: &mut OptimizerState, params: &mut [&mut [f32]], grads: &[&[f32]]) {
    assert_eq!(
        params.len(),
        grads.len(),
        "optim::step: {} parameter tensors but {} gradients",
        params.len(),
        grads.len()
    );
    for (i, (p, g)) in params.iter().zip(grads).enumerate() {
        assert_eq!(p.len(), g.len(), "optim::step: tensor {i} has {} elements, its gradient {}", p.len(), g.len());
    }
    let lengths: Vec<usize> = params.iter().map(|p| p.len()).collect();
    let rule = begin_step(config, state, &lengths);
    for (i, (param, grad)) in params.iter_mut().zip(grads).enumerate() {
        let second = state.second.get_mut(i).map_or(&mut [][..], |v| v.as_mut_slice());
        rule.apply(param, grad, &mut state.first[i], second);
    }
}

/// The start of one update applied piece by piece, as [`step`] applies it: makes sure `state`
/// has its buffers for tensors of `lengths` elements, counts the step in `state.steps`, and
/// returns the rule with this step's scalars. [`StepRule::apply`] then updates any pieces of
/// the tensors, each element once, in any order or on any thread: the result is [`step`]'s,
/// bit for bit, since every element's arithmetic is its own.
///
/// # Panics
/// If the state's non-empty buffers do not have `lengths` (a bug of the caller, as in [`step`]).
pub(crate) fn begin_step(config: &OptimizerConfig, state: &mut OptimizerState, lengths: &[usize]) -> StepRule {
    ensure_buffers(&mut state.first, lengths, "first-moment");
    state.steps += 1;
    match config.kind {
        OptimizerKind::Sgd => {
            StepRule(Rule::Sgd { lr: config.learning_rate, mu: config.momentum, wd: config.weight_decay })
        }
        OptimizerKind::Adam | OptimizerKind::AdamW => {
            ensure_buffers(&mut state.second, lengths, "second-moment");
            StepRule(Rule::Adam(AdamScalars::new(config, state.steps)))
        }
    }
}

/// One step's update rule with its scalars, from [`begin_step`].
pub(crate) struct StepRule(Rule);

enum Rule {
    Sgd { lr: f32, mu: f32, wd: f32 },
    Adam(AdamScalars),
}

impl StepRule {
    /// Updates `params` (any piece of a tensor) from `grads` and the same piece of its state
    /// buffers: `first` (momentum, or Adam's m) and `second` (Adam's v; empty for SGD).
    ///
    /// The pieces must have one length (for SGD, `second` is not read): the callers cut them
    /// from one tensor and its buffers, whose lengths [`begin_step`] checked; debug builds check
    /// the pieces too.
    pub(crate) fn apply(&self, params: &mut [f32], grads: &[f32], first: &mut [f32], second: &mut [f32]) {
        debug_assert!(params.len() == grads.len() && grads.len() == first.len(), "StepRule::apply: lengths differ");
        match &self.0 {
            &Rule::Sgd { lr, mu, wd } => {
                for ((w, &g), v) in params.iter_mut().zip(grads).zip(first.iter_mut()) {
                    sgd_element(w, g, v, lr, mu, wd);
                }
            }
            Rule::Adam(c) => {
                debug_assert_eq!(second.len(), params.len(), "StepRule::apply: lengths differ");
                for (((w, &g), m), v) in params.iter_mut().zip(grads).zip(first.iter_mut()).zip(second.iter_mut()) {
                    c.update(w, g, m, v);
                }
            }
        }
    }
}

/// SGD with momentum for one element: the single formula behind [`step`] and [`sgd_update`].
#[inline(always)]
fn sgd_element(w: &mut f32, grad: f32, v: &mut f32, lr: f32, mu: f32, wd: f32) {
    let g = grad + wd * *w;
    *v = mu * *v + g;
    *w -= lr * *v;
}

/// The per-step scalars of an Adam or AdamW update, each rounded once from f64 to f32 as
/// PyTorch rounds its Python-float scalars when it hands them to a float32 kernel.
struct AdamScalars {
    /// AdamW's factor `1 − lr·wd` (1 for Adam: multiplying by 1 is exact).
    decay: f32,
    /// Adam's L2 coefficient (0 for AdamW).
    l2: f32,
    /// `1 − β₁`, the interpolation weight of the first moment.
    lerp_weight: f32,
    /// `1 − lerp_weight`, used by `lerp` when the weight is ≥ 0.5.
    lerp_complement: f32,
    beta2: f32,
    one_minus_beta2: f32,
    /// `√(1 − β₂ᵗ)`.
    bias_correction2_sqrt: f32,
    eps: f32,
    /// `−lr / (1 − β₁ᵗ)`.
    neg_step_size: f32,
}

impl AdamScalars {
    fn new(config: &OptimizerConfig, t: u64) -> Self {
        let lr = f64::from(config.learning_rate);
        let wd = f64::from(config.weight_decay);
        let (beta1, beta2) = (f64::from(config.beta1), f64::from(config.beta2));
        let decoupled = config.kind == OptimizerKind::AdamW;
        let lerp_weight = (1.0 - beta1) as f32;
        AdamScalars {
            decay: if decoupled { (1.0 - lr * wd) as f32 } else { 1.0 },
            l2: if decoupled { 0.0 } else { config.weight_decay },
            lerp_weight,
            lerp_complement: 1.0 - lerp_weight,
            beta2: config.beta2,
            one_minus_beta2: (1.0 - beta2) as f32,
            bias_correction2_sqrt: (1.0 - powu(beta2, t)).sqrt() as f32,
            eps: config.eps,
            neg_step_size: (-(lr / (1.0 - powu(beta1, t)))) as f32,
        }
    }

    #[inline(always)]
    fn update(&self, w: &mut f32, grad: f32, m: &mut f32, v: &mut f32) {
        *w *= self.decay;
        let g = grad + self.l2 * *w;
        // Tensor.lerp_'s two forms: interpolating from the nearer end keeps the rounding small.
        *m =
            if self.lerp_weight < 0.5 { *m + self.lerp_weight * (g - *m) } else { g - (g - *m) * self.lerp_complement };
        *v = *v * self.beta2 + self.one_minus_beta2 * g * g;
        let denom = v.sqrt() / self.bias_correction2_sqrt + self.eps;
        *w += self.neg_step_size * *m / denom;
    }
}

/// `base` to the power `exp` by binary exponentiation: f64 multiplications only, so the same
/// bits on every platform (a libm `pow` may differ between them).
fn powu(base: f64, mut exp: u64) -> f64 {
    let (mut result, mut square) = (1.0, base);
    while exp > 0 {
        if exp & 1 == 1 {
            result *= square;
        }
        square *= square;
        exp >>= 1;
    }
    result
}

/// SGD's settings. The update is PyTorch's `torch.optim.SGD` (dampening 0, no Nesterov):
/// `g ← grad + weight_decay · w`, `v ← momentum · v + g`, `w ← w − learning_rate · v`
/// (Sutskever, Martens, Dahl and Hinton, "On the importance of initialization and momentum in
/// deep learning", ICML 2013, in PyTorch's formulation). The SGD case of [`OptimizerConfig`].
#[derive(Clone, Copy, Debug, PartialEq, miniserde::Serialize, miniserde::Deserialize)]
pub struct SgdConfig {
    /// Step size, > 0 and finite.
    pub learning_rate: f32,
    /// Momentum coefficient, in `[0, 1)`.
    pub momentum: f32,
    /// L2 penalty coefficient, ≥ 0 and finite (applied to every parameter, as PyTorch does).
    pub weight_decay: f32,
}

impl Default for SgdConfig {
    /// The recipe of the `lenet train` command (with batches of 32): learning rate 0.02,
    /// momentum 0.9, weight decay 5·10⁻⁴.
    fn default() -> Self {
        SgdConfig { learning_rate: 0.02, momentum: 0.9, weight_decay: 5e-4 }
    }
}

impl SgdConfig {
    /// Checks every setting.
    ///
    /// # Errors
    /// [`Error::Setting`] naming the first setting out of its range.
    pub fn validate(&self) -> Result<()> {
        check_learning_rate(self.learning_rate)?;
        check_unit_interval("momentum", self.momentum)?;
        check_weight_decay(self.weight_decay)
    }
}

/// One SGD update of a parameter tensor `param` (flattened) given its gradient `grad` and its
/// momentum buffer `velocity`, all of the same length. The same formula as [`step`] with
/// [`OptimizerKind::Sgd`].
///
/// # Panics
/// If the three lengths differ: they come from the same model, so a mismatch is a bug here.
pub fn sgd_update(config: &SgdConfig, param: &mut [f32], grad: &[f32], velocity: &mut [f32]) {
    assert!(param.len() == grad.len() && grad.len() == velocity.len(), "sgd_update: lengths differ");
    let SgdConfig { learning_rate: lr, momentum: mu, weight_decay: wd } = *config;
    for ((w, &g), v) in param.iter_mut().zip(grad).zip(velocity.iter_mut()) {
        sgd_element(w, g, v, lr, mu, wd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sgd_update` and `step` share one formula: identical bits after several steps.
    #[test]
    fn sgd_update_and_step_agree_bitwise() {
        let sgd = SgdConfig { learning_rate: 0.05, momentum: 0.8, weight_decay: 1e-3 };
        let (mut a, mut b) = (vec![0.3f32, -1.2, 2.5], vec![0.3f32, -1.2, 2.5]);
        let mut velocity = vec![0.0f32; 3];
        let mut state = OptimizerState::default();
        for k in 0..4 {
            let grad = [0.1 * k as f32, -0.7, 1.3 - k as f32];
            sgd_update(&sgd, &mut a, &grad, &mut velocity);
            step(&sgd.into(), &mut state, &mut [&mut b[..]], &[&grad]);
        }
        assert_eq!(a, b);
        assert_eq!(velocity, state.first[0]);
    }

    /// One Adam step from zero moments moves every element by `lr · g / (|g| + ε)`, about
    /// `lr · sign(g)`, whatever its magnitude: the bias correction undoes the zero start.
    #[test]
    fn adam_first_step_is_lr_times_sign() {
        let config =
            OptimizerConfig { kind: OptimizerKind::Adam, learning_rate: 1e-3, weight_decay: 0.0, ..Default::default() };
        let mut state = OptimizerState::new(&[4]);
        let mut p = [1.0f32, 1.0, 1.0, 1.0];
        let grad = [3.0f32, -1e-3, 0.0, 250.0];
        step(&config, &mut state, &mut [&mut p[..]], &[&grad]);
        let want = [1.0 - 1e-3, 1.0 + 1e-3, 1.0, 1.0 - 1e-3];
        for (g, w) in p.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "got {p:?}, want {want:?}");
        }
        assert_eq!(state.second[0].len(), 4);
    }

    /// AdamW shrinks a weight with zero gradient by exactly `1 − lr·wd` per step, where Adam's
    /// L2 term would instead step it by about `lr` (the normalised gradient of `wd·w`).
    #[test]
    fn adamw_decay_is_decoupled() {
        let adamw =
            OptimizerConfig { kind: OptimizerKind::AdamW, learning_rate: 0.1, weight_decay: 0.5, ..Default::default() };
        let adam = OptimizerConfig { kind: OptimizerKind::Adam, ..adamw };
        let (mut a, mut b) = ([2.0f32], [2.0f32]);
        let (mut sa, mut sb) = (OptimizerState::default(), OptimizerState::default());
        step(&adamw, &mut sa, &mut [&mut a[..]], &[&[0.0]]);
        step(&adam, &mut sb, &mut [&mut b[..]], &[&[0.0]]);
        assert_eq!(a[0], 2.0 * 0.95);
        assert!((b[0] - 1.9).abs() < 1e-6, "Adam with L2: {}", b[0]);
        step(&adamw, &mut sa, &mut [&mut a[..]], &[&[0.0]]);
        assert!((a[0] - 2.0 * 0.95 * 0.95).abs() < 1e-6, "{}", a[0]);
    }

    #[test]
    fn powu_is_repeated_multiplication() {
        assert_eq!(powu(0.5, 0), 1.0);
        assert_eq!(powu(0.5, 10), 1.0 / 1024.0);
        assert_eq!(powu(3.0, 13), 1_594_323.0);
        assert_eq!(powu(0.999, 1_000_000_000), 0.0);
    }

    #[test]
    fn reset_zeros_buffers_and_steps() {
        let config = OptimizerConfig { kind: OptimizerKind::Adam, ..Default::default() };
        let mut state = OptimizerState::new(&[2, 1]);
        let (mut p, mut q) = ([1.0f32, 2.0], [3.0f32]);
        step(&config, &mut state, &mut [&mut p[..], &mut q[..]], &[&[0.5, -0.5], &[1.0]]);
        assert!(state.first[0].iter().all(|&m| m != 0.0));
        state.reset();
        assert_eq!(
            state,
            OptimizerState { steps: 0, first: vec![vec![0.0; 2], vec![0.0]], second: vec![vec![0.0; 2], vec![0.0]] }
        );
    }

    #[test]
    #[should_panic(expected = "tensor 1 has 2 elements, its gradient 3")]
    fn mismatched_lengths_panic() {
        let mut state = OptimizerState::new(&[1, 2]);
        let (mut p, mut q) = ([0.0f32], [0.0f32; 2]);
        step(&OptimizerConfig::default(), &mut state, &mut [&mut p[..], &mut q[..]], &[&[0.0], &[0.0; 3]]);
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in OptimizerKind::ALL {
            assert_eq!(kind.to_string().parse::<OptimizerKind>().unwrap(), kind);
            assert_eq!(miniserde::json::to_string(&kind), format!("\"{kind}\""));
        }
        assert_eq!("AdamW".parse::<OptimizerKind>().unwrap(), OptimizerKind::AdamW);
        let err = "rmsprop".parse::<OptimizerKind>().unwrap_err().to_string();
        assert!(err.contains("rmsprop"), "{err}");
    }
}
