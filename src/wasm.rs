//! The JavaScript face of the crate: one `Model` class and one function, compiled only for
//! `wasm32` (wasm-pack, `--target web`). It holds no math: every method checks what JavaScript
//! sent, calls the core, and turns any [`crate::Error`] into a JavaScript `Error` whose message
//! names the problem, so no input from JavaScript reaches a Rust panic. A method that throws
//! leaves the model exactly as it was.

use ndarray::ArrayView4;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::model::{Workspace, IMAGE_PIXELS, IMAGE_SIDE, NUM_CLASSES};
use crate::optim::SgdConfig;
use crate::train::{argmax, evaluate, Trainer};
use crate::{weights, Error, LeNet5};

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

fn js_error(error: Error) -> JsError {
    JsError::new(&error.to_string())
}

/// Images per forward pass in `predict_batch`: large enough to fill the matrix kernels, small
/// enough for the activations to stay in cache.
const PREDICT_CHUNK: usize = 16;

/// Views `images` (n × 784 values) as `(n, 1, 28, 28)`.
fn image_batch(images: &[f32]) -> Result<ArrayView4<'_, f32>, JsError> {
    if images.is_empty() || images.len() % IMAGE_PIXELS != 0 {
        return Err(JsError::new(&format!(
            "images must hold n × 784 values (n ≥ 1 images of 28×28 pixels), got {} values",
            images.len()
        )));
    }
    let n = images.len() / IMAGE_PIXELS;
    ArrayView4::from_shape((n, 1, IMAGE_SIDE, IMAGE_SIDE), images).map_err(|e| JsError::new(&e.to_string()))
}

fn check_labels(n: usize, labels: &[u8]) -> Result<(), JsError> {
    if labels.len() != n {
        return Err(JsError::new(&format!(
            "{n} images but {} labels: there must be one label per image",
            labels.len()
        )));
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| usize::from(l) >= NUM_CLASSES) {
        return Err(JsError::new(&format!("label {l} at index {i} is not a digit 0–9")));
    }
    Ok(())
}

/// Statistics of the model and its last step, as a plain JavaScript object.
#[derive(Serialize)]
struct Stats {
    steps: f64,
    num_parameters: usize,
    /// Fraction of the last training batch that the model (before that step's update) got right.
    batch_accuracy: Option<f32>,
}

/// Accuracy and loss of an evaluation, as a plain JavaScript object.
#[derive(Serialize)]
struct EvaluationJs {
    accuracy: f32,
    loss: f32,
}

/// A LeNet-5 with its SGD optimiser, as seen from JavaScript.
///
/// Images cross the boundary as `Float32Array`s of n × 784 pixels in `[0, 1]` (row-major
/// 28×28, 0 = background, 1 = ink), labels as `Uint8Array`s of digits. Every method throws a
/// JavaScript `Error` on bad input and then leaves the model as it was.
#[wasm_bindgen]
pub struct Model {
    trainer: Trainer,
    /// Activations for `predict` and `evaluate`, kept apart from training's so that predicting
    /// between steps reallocates neither.
    workspace: Workspace,
    last_labels: Vec<u8>,
}

impl Model {
    fn from_model(model: LeNet5) -> Result<Model, JsError> {
        Ok(Model {
            trainer: Trainer::new(model, SgdConfig::default()).map_err(js_error)?,
            workspace: Workspace::default(),
            last_labels: Vec::new(),
        })
    }
}

#[wasm_bindgen]
impl Model {
    /// A fresh LeNet-5, He-initialised from `seed` (an integer from 0 to 2³² − 1): the same
    /// seed gives the same weights here and natively. SGD settings start at learning rate
    /// 0.02, momentum 0.9, weight decay 5·10⁻⁴.
    #[wasm_bindgen(constructor)]
    pub fn new(seed: f64) -> Result<Model, JsError> {
        if !(seed.is_finite() && seed.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&seed)) {
            return Err(JsError::new(&format!("seed must be an integer from 0 to 4294967295, got {seed}")));
        }
        Model::from_model(LeNet5::new(seed as u64))
    }

    /// A model read from the bytes of a safetensors file (see `to_safetensors`).
    /// Throws an `Error` naming the problem for a truncated or mismatched file.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Model, JsError> {
        Model::from_model(weights::from_safetensors(bytes).map_err(js_error)?)
    }

    /// Replaces the weights with those of a safetensors file and clears momentum. On a bad file
    /// it throws and the model is unchanged.
    pub fn load_safetensors(&mut self, bytes: &[u8]) -> Result<(), JsError> {
        let model = weights::from_safetensors(bytes).map_err(js_error)?;
        self.trainer.set_model(model).map_err(js_error)
    }

    /// The weights as a safetensors file (`Uint8Array`), loadable by PyTorch.
    pub fn to_safetensors(&self) -> Result<Vec<u8>, JsError> {
        weights::to_safetensors(self.trainer.model()).map_err(js_error)
    }

    /// One SGD step on a batch of n images (`Float32Array` of n × 784) and their labels
    /// (`Uint8Array` of n). Returns the batch's mean cross-entropy computed *before* the update.
    /// On a non-finite loss or weights it throws an `Error` starting "training diverged" and the
    /// last finite weights are kept.
    pub fn train_step(&mut self, images: &[f32], labels: &[u8]) -> Result<f32, JsError> {
        let batch = image_batch(images)?;
        check_labels(batch.dim().0, labels)?;
        let loss = self.trainer.train_step(batch, labels).map_err(js_error)?;
        self.last_labels.clear();
        self.last_labels.extend_from_slice(labels);
        Ok(loss)
    }

    /// The ten class probabilities (`Float32Array(10)`, summing to 1) for one image of 784
    /// pixels.
    pub fn predict(&mut self, pixels: &[f32]) -> Result<Vec<f32>, JsError> {
        if pixels.len() != IMAGE_PIXELS {
            return Err(JsError::new(&format!("predict takes one 28×28 image: 784 values, got {}", pixels.len())));
        }
        self.predict_batch(pixels)
    }

    /// Probabilities for n images: `Float32Array(n × 10)`, row i for image i.
    pub fn predict_batch(&mut self, images: &[f32]) -> Result<Vec<f32>, JsError> {
        let batch = image_batch(images)?;
        // Validate everything before computing anything, then go in chunks whose activations
        // stay in cache (and whose workspace is reused) however many images were sent.
        crate::model::check_images(&batch).map_err(js_error)?;
        let n = batch.dim().0;
        let mut out = Vec::with_capacity(n * NUM_CLASSES);
        for start in (0..n).step_by(PREDICT_CHUNK) {
            let chunk = batch.slice_axis(ndarray::Axis(0), (start..(start + PREDICT_CHUNK).min(n)).into());
            let logits = self.trainer.model().forward(chunk, &mut self.workspace).map_err(js_error)?;
            for row in logits.rows() {
                let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let first = out.len();
                out.extend(row.iter().map(|&v| (v - max).exp()));
                let sum: f32 = out[first..].iter().sum();
                out[first..].iter_mut().for_each(|p| *p /= sum);
            }
        }
        if let Some(i) = out.iter().position(|p| !p.is_finite()) {
            return Err(JsError::new(&format!(
                "the model's output for image {} is not finite: its weights have diverged",
                i / NUM_CLASSES
            )));
        }
        Ok(out)
    }

    /// Accuracy and mean cross-entropy over n images and labels: `{ accuracy, loss }`.
    pub fn evaluate(&mut self, images: &[f32], labels: &[u8]) -> Result<JsValue, JsError> {
        let batch = image_batch(images)?;
        check_labels(batch.dim().0, labels)?;
        let result = evaluate(self.trainer.model(), &mut self.workspace, batch, labels, 500, None).map_err(js_error)?;
        Ok(serde_wasm_bindgen::to_value(&EvaluationJs { accuracy: result.accuracy, loss: result.loss })?)
    }

    /// The SGD settings: `{ learning_rate, momentum, weight_decay }`.
    pub fn settings(&self) -> Result<JsValue, JsError> {
        Ok(serde_wasm_bindgen::to_value(&self.trainer.config())?)
    }

    /// Sets the SGD settings from `{ learning_rate, momentum, weight_decay }`; any field left out
    /// keeps its value. Throws, changing nothing, on an unknown field or a value out of range.
    pub fn set_settings(&mut self, settings: JsValue) -> Result<(), JsError> {
        let mut config = self.trainer.config();
        #[derive(Deserialize)]
        struct Partial {
            learning_rate: Option<f64>,
            momentum: Option<f64>,
            weight_decay: Option<f64>,
        }
        // serde's deny_unknown_fields does not see a JavaScript object's extra keys: check them
        // here, so that a misspelt setting is an error, not silently ignored.
        let object: &js_sys::Object = settings
            .dyn_ref()
            .ok_or_else(|| JsError::new("settings must be an object { learning_rate, momentum, weight_decay }"))?;
        for key in js_sys::Object::keys(object).iter() {
            let key = key.as_string().unwrap_or_default();
            if !["learning_rate", "momentum", "weight_decay"].contains(&key.as_str()) {
                return Err(JsError::new(&format!(
                    "unknown setting `{key}`: the settings are learning_rate, momentum and weight_decay"
                )));
            }
        }
        let partial: Partial = serde_wasm_bindgen::from_value(settings)
            .map_err(|e| JsError::new(&format!("settings must be {{ learning_rate, momentum, weight_decay }}: {e}")))?;
        let narrow = |name: &str, v: f64| -> Result<f32, JsError> {
            let x = v as f32;
            if v.is_finite() && !x.is_finite() {
                return Err(JsError::new(&format!("{name} {v} is too large")));
            }
            Ok(x)
        };
        if let Some(v) = partial.learning_rate {
            config.learning_rate = narrow("learning_rate", v)?;
        }
        if let Some(v) = partial.momentum {
            config.momentum = narrow("momentum", v)?;
        }
        if let Some(v) = partial.weight_decay {
            config.weight_decay = narrow("weight_decay", v)?;
        }
        self.trainer.set_config(config).map_err(js_error)
    }

    /// `{ steps, num_parameters, batch_accuracy }`: steps taken, 61,706, and the accuracy on the
    /// last training batch before its update (null before the first step).
    pub fn stats(&self) -> Result<JsValue, JsError> {
        let logits = self.trainer.workspace().logits();
        let batch_accuracy = (!self.last_labels.is_empty() && logits.nrows() == self.last_labels.len()).then(|| {
            let correct = logits
                .rows()
                .into_iter()
                .zip(&self.last_labels)
                .filter(|(row, &l)| argmax(row.iter().copied()) == usize::from(l))
                .count();
            correct as f32 / self.last_labels.len() as f32
        });
        let stats = Stats {
            steps: self.trainer.steps() as f64,
            num_parameters: self.trainer.model().num_parameters(),
            batch_accuracy,
        };
        Ok(serde_wasm_bindgen::to_value(&stats)?)
    }
}

/// Turns the RGBA pixels of a canvas (`getImageData(...).data`, width × height × 4 bytes) into
/// the 28×28 image the model expects, as MNIST was made: `Float32Array(784)`, or `undefined`
/// when the canvas holds no digit. Throws an `Error` when the length does not match the size.
#[wasm_bindgen]
pub fn preprocess_canvas(rgba: &[u8], width: f64, height: f64) -> Result<Option<Vec<f32>>, JsError> {
    // Plain JavaScript numbers, checked here: a u32 parameter would silently wrap 2³² + 1 to 1.
    let side = |name: &str, v: f64| -> Result<usize, JsError> {
        if v.is_finite() && v.fract() == 0.0 && (1.0..=f64::from(u32::MAX)).contains(&v) {
            Ok(v as usize)
        } else {
            Err(JsError::new(&format!("{name} must be a whole number of pixels ≥ 1, got {v}")))
        }
    };
    crate::data::preprocess::preprocess_rgba(rgba, side("width", width)?, side("height", height)?).map_err(js_error)
}

/// Turns pen strokes into the 28×28 image the model expects ([`crate::data::strokes`]): thick
/// anti-aliased lines, width proportional to the drawing, 20 px box, centre of mass, the same
/// bytes as natively.
///
/// `xy` is `x0, y0, x1, y1, …` in CSS pixels (y down); `ends[i]` is the number of points up to
/// and including stroke `i` (so the last equals `xy.length / 2`). `pad_width × pad_height` is the
/// drawing area, in CSS pixels: a mark too small for it is a tap, not a digit.
///
/// Returns `{ status: "digit", pixels: Float32Array(784) }`, `{ status: "empty" }` (no point) or
/// `{ status: "too_small" }`. Throws an `Error` naming the problem when `xy` has an odd length,
/// `ends` is not non-decreasing or does not end at `xy.length / 2`, a coordinate is not finite,
/// the pad is not a positive size, or there are too many points or strokes.
#[wasm_bindgen]
pub fn preprocess_strokes(xy: &[f32], ends: &[u32], pad_width: f64, pad_height: f64) -> Result<JsValue, JsError> {
    use crate::data::strokes::{render_strokes, Rendered, Stroke, MAX_STROKES};
    if xy.len() % 2 != 0 {
        return Err(JsError::new(&format!("xy must hold x, y pairs: its length {} is odd", xy.len())));
    }
    let count = xy.len() / 2;
    if ends.len() > MAX_STROKES {
        return Err(JsError::new(&format!("{} strokes, more than the {MAX_STROKES} accepted", ends.len())));
    }
    let mut strokes = Vec::with_capacity(ends.len());
    let mut start = 0usize;
    for (i, &end) in ends.iter().enumerate() {
        let end = end as usize;
        if end < start || end > count {
            return Err(JsError::new(&format!(
                "ends[{i}] = {end}: ends must be non-decreasing point counts, at most {count} (xy.length / 2)"
            )));
        }
        let points = xy[2 * start..2 * end].chunks_exact(2).map(|p| [p[0], p[1]]).collect();
        strokes.push(Stroke { points });
        start = end;
    }
    if start != count {
        return Err(JsError::new(&format!(
            "ends must end at xy.length / 2 = {count}, the number of points; the last is {start}"
        )));
    }
    // Narrowed to f32 only after the range check, so that 1e300 is refused, not made infinite.
    let side = |name: &str, v: f64| -> Result<f32, JsError> {
        if v.is_finite() && v > 0.0 && v <= f64::from(crate::data::strokes::MAX_PAD_SIDE) {
            Ok(v as f32)
        } else {
            Err(JsError::new(&format!("{name} must be above 0 and at most 1e6 CSS pixels, got {v}")))
        }
    };
    let rendered =
        render_strokes(&strokes, side("pad_width", pad_width)?, side("pad_height", pad_height)?).map_err(js_error)?;
    let result = js_sys::Object::new();
    let set = |key: &str, value: &JsValue| js_sys::Reflect::set(&result, &JsValue::from_str(key), value);
    let status = match &rendered {
        Rendered::Digit(pixels) => {
            set("pixels", &js_sys::Float32Array::from(pixels.as_slice()).into())
                .map_err(|_| JsError::new("cannot build the result object"))?;
            "digit"
        }
        Rendered::Empty => "empty",
        Rendered::TooSmall => "too_small",
    };
    set("status", &JsValue::from_str(status)).map_err(|_| JsError::new("cannot build the result object"))?;
    Ok(result.into())
}
