//! Stochastic gradient descent with momentum and L2 weight decay.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// SGD's settings. The update is PyTorch's `torch.optim.SGD` (dampening 0, no Nesterov):
/// `g ← grad + weight_decay · w`, `v ← momentum · v + g`, `w ← w − learning_rate · v`
/// (Sutskever, Martens, Dahl and Hinton, "On the importance of initialization and momentum in
/// deep learning", ICML 2013, in PyTorch's formulation).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
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
    /// [`Error::InvalidInput`] naming the first setting out of its range.
    pub fn validate(&self) -> Result<()> {
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::InvalidInput(format!(
                "learning_rate must be a positive finite number, got {}",
                self.learning_rate
            )));
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return Err(Error::InvalidInput(format!("momentum must be in [0, 1), got {}", self.momentum)));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::InvalidInput(format!(
                "weight_decay must be a non-negative finite number, got {}",
                self.weight_decay
            )));
        }
        Ok(())
    }
}

/// One SGD update of a parameter tensor `param` (flattened) given its gradient `grad` and its
/// momentum buffer `velocity`, all of the same length.
///
/// # Panics
/// If the three lengths differ: they come from the same model, so a mismatch is a bug here.
pub fn sgd_update(config: &SgdConfig, param: &mut [f32], grad: &[f32], velocity: &mut [f32]) {
    assert!(param.len() == grad.len() && grad.len() == velocity.len(), "sgd_update: lengths differ");
    let SgdConfig { learning_rate: lr, momentum: mu, weight_decay: wd } = *config;
    for ((w, &g), v) in param.iter_mut().zip(grad).zip(velocity.iter_mut()) {
        let g = g + wd * *w;
        *v = mu * *v + g;
        *w -= lr * *v;
    }
}
