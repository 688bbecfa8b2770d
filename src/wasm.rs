//! The JavaScript face of the crate, compiled only for `wasm32` (wasm-pack, `--target web`):
//! the `Session` class (a whole training run), the `Model` class (a network to predict with or
//! step by hand), `defaults()` and `preprocess_canvas`. It holds no math and no training logic:
//! every method converts what JavaScript sent, calls the core, and turns any [`crate::Error`]
//! into a JavaScript `Error` whose message names the problem, so no input from JavaScript
//! reaches a Rust panic. A method that throws leaves its object exactly as it was.

use miniserde::ser::{Fragment, Serialize};
use ndarray::{ArrayView4, Axis};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::data::digits::Digits;
use crate::error::Num;
use crate::model::{IMAGE_PIXELS, IMAGE_SIDE, MNIST_MEAN, MNIST_STD, NUM_CLASSES};
use crate::session::{self, Settings, MAX_BATCH_SIZE};
use crate::wasm_args::{self, f32_images, rgba_bytes, u8_array, u8_array_ref, weights_bytes};
use crate::{weights, Error, LeNet5};

pub use crate::wasm_args::max_weights_file_bytes;

/// Runs by itself when the module is instantiated (`init()`); there is no need to call it. A
/// panic, which would be a bug, then reaches the console with its message and location.
#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// The error as the page shows it: a refused value is named without the "invalid input: " that
/// a command line puts before it (the page says what it was doing already).
fn js_error(error: Error) -> JsError {
    match error {
        Error::InvalidInput(message) => JsError::new(&message),
        Error::Setting { name, message } => JsError::new(&format!("{name} {message}")),
        other => JsError::new(&other.to_string()),
    }
}

/// Plain objects, arrays, `null` for `None` and numbers for 64-bit integers: what a page
/// expects. Built directly rather than through JSON text, so a NaN loss stays a NaN.
fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsError> {
    Ok(match value.begin() {
        Fragment::Null => JsValue::NULL,
        Fragment::Bool(b) => JsValue::from_bool(b),
        Fragment::Str(text) => JsValue::from_str(&text),
        Fragment::U64(n) => JsValue::from_f64(n as f64),
        Fragment::I64(n) => JsValue::from_f64(n as f64),
        Fragment::F64(x) => JsValue::from_f64(x),
        Fragment::Seq(mut items) => {
            let array = js_sys::Array::new();
            while let Some(item) = items.next() {
                array.push(&to_js(item)?);
            }
            array.into()
        }
        Fragment::Map(mut entries) => {
            let object = js_sys::Object::new();
            while let Some((key, item)) = entries.next() {
                js_sys::Reflect::set(&object, &JsValue::from_str(&key), &to_js(item)?)
                    .map_err(|_| JsError::new("cannot build a result object"))?;
            }
            object.into()
        }
    })
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

/// A seed from JavaScript: an integer from 0 to 2³² − 1 (a JavaScript number holds no more
/// exactly than 2⁵³, and a u32 parameter would wrap silently).
fn seed_from_js(seed: f64) -> Result<u64, JsError> {
    let range = (0.0, f64::from(u32::MAX));
    Ok(wasm_args::whole_number(seed, "seed", range, "an integer from 0 to 4294967295")? as u64)
}

/// JSON has no NaN or infinity: they are named here, before they turn into `null`; and it drops
/// `undefined`, which would then change nothing without a word. Nested objects (`augment`) are
/// checked too, their keys named with their path (`augment.rotate`), to the depth settings have.
fn check_js_values(object: &JsValue, prefix: &str, depth: usize) -> Result<(), JsError> {
    for entry in js_sys::Object::entries(object.unchecked_ref()).iter() {
        let entry: js_sys::Array = entry.unchecked_into();
        let (key, value) = (format!("{prefix}{}", entry.get(0).as_string().unwrap_or_default()), entry.get(1));
        if value.is_undefined() {
            return Err(JsError::new(&format!("{key} is undefined; give it a value or leave it out")));
        }
        if let Some(v) = value.as_f64().filter(|v| !v.is_finite()) {
            return Err(JsError::new(&format!("{key} must be a finite number, got {}", Num(v))));
        }
        // Deeper than any setting, the core's merge names the key that does not exist.
        if depth < 2 && value.is_object() && !js_sys::Array::is_array(&value) {
            check_js_values(&value, &format!("{key}."), depth + 1)?;
        }
    }
    Ok(())
}

/// Settings from a JavaScript object merged over `base` by the core; `undefined` keeps `base`.
fn settings_from_js(base: &Settings, patch: JsValue) -> Result<Settings, JsError> {
    if patch.is_undefined() || patch.is_null() {
        return Ok(*base);
    }
    if !patch.is_object() || js_sys::Array::is_array(&patch) {
        return Err(JsError::new("settings must be an object such as { learning_rate: 0.01 }"));
    }
    check_js_values(&patch, "", 0)?;
    let json = js_sys::JSON::stringify(&patch)
        .ok()
        .and_then(|text| text.as_string())
        .ok_or_else(|| JsError::new("settings must be a plain object of numbers and strings"))?;
    base.merged(&json).map_err(js_error)
}

/// Softmax probabilities of n images, in chunks, as one `n × 10` vector.
fn probabilities(session: &mut session::Session, images: &[f32]) -> Result<Vec<f32>, JsError> {
    let batch = image_batch(images)?;
    // Validate everything before computing anything, then go in chunks whose activations stay
    // in cache however many images were sent.
    crate::model::check_images(&batch).map_err(js_error)?;
    let n = batch.dim().0;
    let mut out = Vec::with_capacity(n * NUM_CLASSES);
    for start in (0..n).step_by(PREDICT_CHUNK) {
        let chunk = batch.slice_axis(Axis(0), (start..(start + PREDICT_CHUNK).min(n)).into());
        let p = session.predict(chunk).map_err(|e| match e {
            Error::Diverged(message) => JsError::new(&message),
            other => js_error(other),
        })?;
        out.extend(p.iter());
    }
    Ok(out)
}

/// The ten probabilities of one image given from JavaScript (784 pixels), for `predict`.
fn predict_one(session: &mut session::Session, pixels: &JsValue) -> Result<Vec<f32>, JsError> {
    let pixels = f32_images(pixels, "pixels")?;
    if pixels.len() != IMAGE_PIXELS {
        return Err(JsError::new(&format!("predict takes one 28×28 image: 784 values, got {}", pixels.len())));
    }
    probabilities(session, &pixels)
}

/// Constants and defaults the page shows and uses, from the one place that defines them.
#[derive(miniserde::Serialize)]
struct Defaults {
    image_side: usize,
    image_pixels: usize,
    num_classes: usize,
    mnist_mean: f32,
    mnist_std: f32,
    max_batch_size: usize,
    settings: Settings,
}

/// `{ image_side: 28, image_pixels: 784, num_classes: 10, mnist_mean, mnist_std,
/// max_batch_size, settings }`: the model's constants and the page's training recipe
/// (`settings`, as `Session.settings()` returns them).
#[wasm_bindgen]
pub fn defaults() -> Result<JsValue, JsError> {
    to_js(&Defaults {
        image_side: IMAGE_SIDE,
        image_pixels: IMAGE_PIXELS,
        num_classes: NUM_CLASSES,
        mnist_mean: MNIST_MEAN,
        mnist_std: MNIST_STD,
        max_batch_size: MAX_BATCH_SIZE,
        settings: Settings::browser(),
    })
}

/// A whole training run, as seen from JavaScript: a LeNet-5, its optimizer, its training and
/// held-out digits, their order, augmentation, the learning-rate schedule, evaluation and
/// checkpoints. The worker that trains only schedules calls to it.
///
/// Digits cross the boundary as bytes, as MNIST stores them: `Uint8Array` of n × 784 pixels
/// (row-major 28×28, 0 = background, 255 = ink) and `Uint8Array` of n labels.
#[wasm_bindgen(js_name = Session)]
pub struct SessionJs {
    inner: session::Session,
    /// Shard records on their way out of or into wasm memory, kept from step to step: a step's
    /// records at their places, shard `i` at `i × shard_bytes()`.
    wire: Vec<u8>,
    /// The step and shards `start..end` that `compute_shards_into` last wrote, which `wire` still
    /// holds at their places.
    own: Option<(u64, usize, usize)>,
}

#[wasm_bindgen(js_class = Session)]
impl SessionJs {
    /// A session with fresh weights. `settings`: any of the fields of `defaults().settings`
    /// (the rest take those defaults); the weights are He-initialised from `settings.seed`.
    #[wasm_bindgen(constructor)]
    pub fn new(settings: JsValue) -> Result<SessionJs, JsError> {
        let settings = settings_from_js(&Settings::browser(), settings)?;
        Ok(SessionJs { inner: session::Session::new(settings).map_err(js_error)?, wire: Vec::new(), own: None })
    }

    /// A session that starts from the weights of a safetensors file (for instance the
    /// pretrained network), with `settings` as for the constructor.
    pub fn from_safetensors(
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: &JsValue,
        settings: JsValue,
    ) -> Result<SessionJs, JsError> {
        let settings = settings_from_js(&Settings::browser(), settings)?;
        let model = weights::from_safetensors(&weights_bytes(bytes, "bytes")?).map_err(js_error)?;
        Ok(SessionJs {
            inner: session::Session::with_model(model, settings).map_err(js_error)?,
            wire: Vec::new(),
            own: None,
        })
    }

    /// All the settings, as a plain object.
    pub fn settings(&self) -> Result<JsValue, JsError> {
        to_js(self.inner.settings())
    }

    /// Changes some settings (`{ learning_rate: 0.01 }`); they apply from the next step.
    /// Throws, changing nothing, on an unknown setting or a value out of range.
    pub fn set_settings(&mut self, patch: JsValue) -> Result<(), JsError> {
        let settings = settings_from_js(self.inner.settings(), patch)?;
        self.inner.set_settings(settings).map_err(js_error)
    }

    /// Replaces the training digits (copied); the data order starts at epoch 0 of them.
    pub fn set_train_data(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] images: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] labels: &JsValue,
    ) -> Result<(), JsError> {
        let digits = Digits::new(u8_array(images, "images")?, u8_array(labels, "labels")?).map_err(js_error)?;
        self.inner.set_train_data(digits).map_err(js_error)
    }

    /// Appends training digits (for instance a person's own); they join at the next epoch.
    pub fn add_train_data(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] images: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] labels: &JsValue,
    ) -> Result<(), JsError> {
        let digits = Digits::new(u8_array(images, "images")?, u8_array(labels, "labels")?).map_err(js_error)?;
        self.inner.add_train_data(&digits);
        Ok(())
    }

    /// Replaces the held-out digits; evaluations use at most `settings.eval_limit` of them,
    /// spread evenly.
    pub fn set_test_data(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] images: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] labels: &JsValue,
    ) -> Result<(), JsError> {
        let digits = Digits::new(u8_array(images, "images")?, u8_array(labels, "labels")?).map_err(js_error)?;
        self.inner.set_test_data(digits);
        Ok(())
    }

    /// One optimizer step on the next batch: `{ step, loss, batch_accuracy, learning_rate,
    /// epoch, seen, diverged }`. `diverged` is `null`, or a message: then the step was not
    /// taken, the last finite weights are in place, and the caller should pause. Divergence
    /// never throws; a session without training data does.
    pub fn step(&mut self) -> Result<JsValue, JsError> {
        to_js(&self.inner.step().map_err(js_error)?)
    }

    /// Begins a pass over the held-out digits, dropping one in progress.
    pub fn start_evaluation(&mut self) {
        self.inner.start_evaluation();
    }

    /// Advances the evaluation pass by at most `max_images` digits (a whole number ≥ 1;
    /// `Infinity` finishes the pass); returns `null`, or, when the pass is complete, `{ step,
    /// accuracy, loss, correct, count, per_class: [10], confusion: [10][10] }`
    /// (`confusion[label][predicted]`). Throws an `Error` quoting `max_images` when it is not a
    /// whole number ≥ 1.
    pub fn evaluate(&mut self, max_images: f64) -> Result<JsValue, JsError> {
        let max_images = wasm_args::whole_number(max_images, "max_images", (1.0, f64::INFINITY), "a whole number ≥ 1")?;
        // `as` saturates: Infinity and numbers past usize take the rest of the pass.
        to_js(&self.inner.evaluate(max_images as usize).map_err(js_error)?)
    }

    /// `{ step, epoch, epoch_progress, seen, train_count, test_count }`.
    pub fn progress(&self) -> Result<JsValue, JsError> {
        to_js(&self.inner.progress())
    }

    /// The ten probabilities (`Float32Array(10)`, summing to 1) of one image of 784 pixels in
    /// `[0, 1]`.
    pub fn predict(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Float32Array | number[]")] pixels: &JsValue,
    ) -> Result<Vec<f32>, JsError> {
        predict_one(&mut self.inner, pixels)
    }

    /// Probabilities for n images: `Float32Array(n × 10)`, row i for image i.
    pub fn predict_batch(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Float32Array | number[]")] images: &JsValue,
    ) -> Result<Vec<f32>, JsError> {
        probabilities(&mut self.inner, &f32_images(images, "images")?)
    }

    /// The weights as a safetensors file (`Uint8Array`), loadable by PyTorch.
    pub fn to_safetensors(&self) -> Result<Vec<u8>, JsError> {
        weights::to_safetensors(self.inner.model()).map_err(js_error)
    }

    /// Replaces the weights with those of a safetensors file; the optimizer state starts afresh.
    /// On a bad file it throws and nothing changes.
    pub fn load_safetensors(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: &JsValue,
    ) -> Result<(), JsError> {
        let model = weights::from_safetensors(&weights_bytes(bytes, "bytes")?).map_err(js_error)?;
        self.inner.set_model(model).map_err(js_error)
    }

    /// The whole state of the session (`Uint8Array`): weights, optimizer state, settings and
    /// position in the data; the digits themselves are not included.
    pub fn checkpoint(&self) -> Result<Vec<u8>, JsError> {
        self.inner.checkpoint().map_err(js_error)
    }

    /// Whether a `checkpoint()` (`Uint8Array`) was made on the training digits set now (the same
    /// count and fingerprint), that is whether `restore` would take it: `false` only for other
    /// training digits. Throws on bytes that are not a checkpoint `restore` can read; changes
    /// nothing.
    pub fn checkpoint_fits(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: &JsValue,
    ) -> Result<bool, JsError> {
        self.inner.checkpoint_fits(&u8_array(bytes, "bytes")?).map_err(js_error)
    }

    /// Restores a `checkpoint()`. The same training digits must be set first. From here the
    /// run goes on exactly as it would have. Throws, changing nothing, on bytes that are not a
    /// checkpoint or on other training data.
    pub fn restore(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: &JsValue,
    ) -> Result<(), JsError> {
        self.inner.restore(&u8_array(bytes, "bytes")?).map_err(js_error)
    }
}

/// Statistics of a model and its last step, as a plain JavaScript object.
#[derive(miniserde::Serialize)]
struct Stats {
    steps: u64,
    num_parameters: usize,
    /// Fraction of the last training batch that the model (before that step's update) got right.
    batch_accuracy: Option<f32>,
}

/// Accuracy and loss of an evaluation, as a plain JavaScript object.
#[derive(miniserde::Serialize)]
struct EvaluationJs {
    accuracy: f32,
    loss: f32,
}

/// A LeNet-5 with its optimizer, stepped by hand on batches the caller makes, as seen from
/// JavaScript.
///
/// Images cross the boundary as `Float32Array`s of n × 784 pixels in `[0, 1]` (row-major
/// 28×28, 0 = background, 1 = ink), labels as `Uint8Array`s of digits. Every method throws a
/// JavaScript `Error` on bad input and then leaves the model as it was.
#[wasm_bindgen]
pub struct Model {
    inner: session::Session,
    last_batch_accuracy: Option<f32>,
}

impl Model {
    fn from_model(model: LeNet5) -> Result<Model, JsError> {
        // Shards of 16 rather than `manual`'s one shard: a shard's im2col matrices (2.3 MB at 16
        // images, 9 MB at 64) then stay in the cache from the forward pass to the backward one.
        // train_step at batch 64 in Node, alternating rounds: 7–10 % faster at the fastest round,
        // 9–18 % at the median. The gradient is still the batch's mean, summed in shard order.
        let settings = Settings { shard_size: Settings::default().shard_size, ..Settings::manual(Default::default()) };
        Ok(Model { inner: session::Session::with_model(model, settings).map_err(js_error)?, last_batch_accuracy: None })
    }
}

#[wasm_bindgen]
impl Model {
    /// A fresh LeNet-5, He-initialised from `seed` (an integer from 0 to 2³² − 1): the same
    /// seed gives the same weights here and natively. The optimizer starts as SGD with learning
    /// rate 0.02, momentum 0.9, weight decay 5·10⁻⁴.
    #[wasm_bindgen(constructor)]
    pub fn new(seed: f64) -> Result<Model, JsError> {
        Model::from_model(LeNet5::new(seed_from_js(seed)?))
    }

    /// A model read from the bytes of a safetensors file (see `to_safetensors`).
    /// Throws an `Error` naming the problem for a truncated or mismatched file.
    pub fn from_safetensors(
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: &JsValue,
    ) -> Result<Model, JsError> {
        Model::from_model(weights::from_safetensors(&weights_bytes(bytes, "bytes")?).map_err(js_error)?)
    }

    /// Replaces the weights with those of a safetensors file and clears the optimizer state. On
    /// a bad file it throws and the model is unchanged.
    pub fn load_safetensors(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: &JsValue,
    ) -> Result<(), JsError> {
        let model = weights::from_safetensors(&weights_bytes(bytes, "bytes")?).map_err(js_error)?;
        self.inner.set_model(model).map_err(js_error)
    }

    /// The weights as a safetensors file (`Uint8Array`), loadable by PyTorch.
    pub fn to_safetensors(&self) -> Result<Vec<u8>, JsError> {
        weights::to_safetensors(self.inner.model()).map_err(js_error)
    }

    /// One optimizer step on a batch of n images (`Float32Array` of n × 784) and their labels
    /// (`Uint8Array` of n), its gradient the batch's mean, summed over shards of `shard_size`
    /// images (16; see `settings()`) in order. Returns the batch's mean cross-entropy computed
    /// *before* the update.
    /// On a non-finite loss or weights it throws an `Error` starting "training diverged" and the
    /// last finite weights are kept.
    pub fn train_step(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Float32Array | number[]")] images: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] labels: &JsValue,
    ) -> Result<f32, JsError> {
        let (images, labels) = (f32_images(images, "images")?, u8_array(labels, "labels")?);
        let batch = image_batch(&images)?;
        let outcome = self.inner.train_batch(batch, &labels).map_err(js_error)?;
        if let Some(message) = outcome.diverged {
            return Err(js_error(Error::Diverged(message)));
        }
        self.last_batch_accuracy = Some(outcome.batch_accuracy);
        Ok(outcome.loss)
    }

    /// The ten class probabilities (`Float32Array(10)`, summing to 1) for one image of 784
    /// pixels.
    pub fn predict(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Float32Array | number[]")] pixels: &JsValue,
    ) -> Result<Vec<f32>, JsError> {
        predict_one(&mut self.inner, pixels)
    }

    /// Probabilities for n images: `Float32Array(n × 10)`, row i for image i.
    pub fn predict_batch(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Float32Array | number[]")] images: &JsValue,
    ) -> Result<Vec<f32>, JsError> {
        probabilities(&mut self.inner, &f32_images(images, "images")?)
    }

    /// Accuracy and mean cross-entropy over n images and labels: `{ accuracy, loss }`.
    pub fn evaluate(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Float32Array | number[]")] images: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] labels: &JsValue,
    ) -> Result<JsValue, JsError> {
        let (images, labels) = (f32_images(images, "images")?, u8_array(labels, "labels")?);
        let batch = image_batch(&images)?;
        if labels.len() != batch.dim().0 {
            return Err(JsError::new(&format!(
                "{} images but {} labels: there must be one label per image",
                batch.dim().0,
                labels.len()
            )));
        }
        if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| usize::from(l) >= NUM_CLASSES) {
            return Err(JsError::new(&format!("label {l} at index {i} is not a digit 0–9")));
        }
        let mut workspace = crate::model::Workspace::default();
        let result =
            crate::train::evaluate(self.inner.model(), &mut workspace, batch, &labels, 500).map_err(js_error)?;
        to_js(&EvaluationJs { accuracy: result.accuracy, loss: result.loss })
    }

    /// The optimizer's settings (all of `defaults().settings`; a `Model` uses the optimizer's).
    pub fn settings(&self) -> Result<JsValue, JsError> {
        to_js(self.inner.settings())
    }

    /// Sets some settings, e.g. `{ learning_rate, momentum, weight_decay }`; any field left out
    /// keeps its value. Throws, changing nothing, on an unknown field or a value out of range.
    pub fn set_settings(&mut self, settings: JsValue) -> Result<(), JsError> {
        let settings = settings_from_js(self.inner.settings(), settings)?;
        self.inner.set_settings(settings).map_err(js_error)
    }

    /// `{ steps, num_parameters, batch_accuracy }`: steps taken, 61,706, and the accuracy on the
    /// last training batch before its update (null before the first step).
    pub fn stats(&self) -> Result<JsValue, JsError> {
        to_js(&Stats {
            steps: self.inner.progress().step,
            num_parameters: self.inner.model().num_parameters(),
            batch_accuracy: self.last_batch_accuracy,
        })
    }
}

/// Turns the RGBA pixels of a canvas (`getImageData(...).data`, width × height × 4 bytes) into
/// the 28×28 image the model expects, as MNIST was made: `Float32Array(784)`, or `undefined`
/// when the canvas holds no digit. Throws an `Error` when the length does not match the size.
#[wasm_bindgen]
pub fn preprocess_canvas(
    #[wasm_bindgen(unchecked_param_type = "Uint8ClampedArray | Uint8Array")] rgba: &JsValue,
    width: f64,
    height: f64,
) -> Result<Option<Vec<f32>>, JsError> {
    let rgba = rgba_bytes(rgba, "rgba")?;
    // Plain JavaScript numbers, checked here: a u32 parameter would silently wrap 2³² + 1 to 1.
    let side = |name: &str, v: f64| -> Result<usize, JsError> {
        if v.is_finite() && v.fract() == 0.0 && (1.0..=f64::from(u32::MAX)).contains(&v) {
            Ok(v as usize)
        } else {
            Err(JsError::new(&format!("{name} must be a whole number of pixels ≥ 1, got {}", Num(v))))
        }
    };
    crate::data::preprocess::preprocess_rgba(&rgba, side("width", width)?, side("height", height)?).map_err(js_error)
}

/// `{ images: Uint8Array(n × 784), labels: Uint8Array(n), count: n }`, copied out of wasm memory
/// in one piece each (serde would make arrays of numbers: 47 million of them for MNIST).
fn digits_to_js(digits: &Digits) -> JsValue {
    let object = js_sys::Object::new();
    let set = |key: &str, value: &JsValue| js_sys::Reflect::set(&object, &key.into(), value).map(|_| ());
    // Setting a property of a fresh plain object cannot fail.
    let _ = set("images", &js_sys::Uint8Array::from(digits.images()).into());
    let _ = set("labels", &js_sys::Uint8Array::from(digits.labels()).into());
    let _ = set("count", &JsValue::from(digits.len() as u32));
    object.into()
}

/// The length in bytes of the whole IDX file whose first bytes (at least 8 for a label file, 16
/// for an image file) are `header`, as its header claims. A gzip decoder (`DecompressionStream`)
/// stops one byte past it, so that a gzip bomb cannot exhaust the tab's memory; `read_idx` then
/// names what is wrong. Throws an `Error` naming `name` when the header is cut short, is not an
/// IDX image or label file's, or claims more than 1,000,000 items.
/// Throws an `Error` naming the argument when `header` is not a `Uint8Array` or `name` not a
/// string.
#[wasm_bindgen]
pub fn idx_file_len(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] header: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "string")] name: &JsValue,
) -> Result<f64, JsError> {
    let (header, name) = (u8_array(header, "header")?, wasm_args::string(name, "name")?);
    crate::data::idx::idx_file_len(&header, &name).map(|len| len as f64).map_err(js_error)
}

/// Checks that a person would have `count` digits of their own within the most that are kept
/// and taught from (2,000): the page asks before it adds any. Throws an `Error` naming the
/// count and the limit when it is over, or when `count` is not a whole number ≥ 0.
#[wasm_bindgen]
pub fn check_mine_count(count: f64) -> Result<(), JsError> {
    let count = wasm_args::whole_number(count, "count", (0.0, f64::INFINITY), "a whole number ≥ 0")?;
    // `as` saturates: a count past usize is over the limit all the same.
    crate::teach::check_mine_count(count as usize).map_err(js_error)
}

/// Parses an IDX image file and an IDX label file (MNIST's format, decompressed: see
/// `idx_file_len`) with the core's reader: `{ images: Uint8Array(n × 784), labels:
/// Uint8Array(n), count: n }`, ready for `Session.set_train_data` / `set_test_data`. The names
/// are used in messages. Throws an `Error` naming the file and what is wrong with it (still
/// gzipped, wrong magic number, truncated, not 28×28, counts that differ, a label above 9, a
/// header claiming more than the file holds).
#[wasm_bindgen]
pub fn read_idx(
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] images: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "string")] images_name: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "Uint8Array")] labels: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "string")] labels_name: &JsValue,
) -> Result<JsValue, JsError> {
    let (images, labels) = (u8_array(images, "images")?, u8_array(labels, "labels")?);
    let images_name = wasm_args::string(images_name, "images_name")?;
    let labels_name = wasm_args::string(labels_name, "labels_name")?;
    let digits = crate::data::idx::parse_digits(&images, &images_name, &labels, &labels_name).map_err(js_error)?;
    Ok(digits_to_js(&digits))
}

/// Teaching a network a person's handwriting, as seen from JavaScript: the core's
/// `teach::Teaching` with its recipe (`teach::TeachRecipe::default()`: 100 steps, 512 replayed
/// digits, the person's at 2 %, learning rate 0.003). The worker only decides when to step.
///
/// Digits cross the boundary as bytes, as for `Session`: `Uint8Array` of n × 784 pixels and
/// `Uint8Array` of n labels.
#[wasm_bindgen(js_name = Teaching)]
pub struct TeachingJs {
    inner: crate::teach::Teaching,
}

#[wasm_bindgen(js_class = Teaching)]
impl TeachingJs {
    /// Begins teaching a copy of `session`'s network the person's digits (`images`, `labels`):
    /// every 5th of each label is held out to measure on, the rest are learnt, mixed with a
    /// seeded sample of the replay digits (MNIST's training digits). `session` itself is not
    /// changed (see `apply_to`). Throws when there are no digits, when a pair is not n × 784
    /// pixels with n labels 0–9, or when the network's weights are not finite.
    #[wasm_bindgen(constructor)]
    pub fn new(
        session: &SessionJs,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] images: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] labels: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] replay_images: &JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] replay_labels: &JsValue,
    ) -> Result<TeachingJs, JsError> {
        let mine = Digits::new(u8_array(images, "images")?, u8_array(labels, "labels")?).map_err(js_error)?;
        let replay = Digits::new(u8_array(replay_images, "replay_images")?, u8_array(replay_labels, "replay_labels")?)
            .map_err(js_error)?;
        let recipe = crate::teach::TeachRecipe::default();
        let inner = crate::teach::Teaching::with_hold_out(session.inner.model().clone(), &mine, &replay, &recipe)
            .map_err(js_error)?;
        Ok(TeachingJs { inner })
    }

    /// One step of the recipe: `true` when a step was taken, `false` when all are taken. Throws
    /// an `Error` ("teaching diverged: …") when the step would make the weights non-finite; the
    /// last finite weights stay.
    pub fn step(&mut self) -> Result<bool, JsError> {
        self.inner.step().map_err(js_error)
    }

    /// Whether all the recipe's steps are taken.
    pub fn is_done(&self) -> bool {
        self.inner.is_done()
    }

    /// Steps taken so far.
    pub fn steps_taken(&self) -> f64 {
        self.inner.steps_taken() as f64
    }

    /// The share of the person's held-out digits the network as taught so far reads right (before
    /// any step: the network as it was), or `null` when none is held out.
    pub fn held_out_accuracy(&self) -> Result<Option<f64>, JsError> {
        self.inner.held_out_accuracy().map_err(js_error)
    }

    /// `{ learnt, held, mixed, steps }`: the person's digits learnt from and held out, the
    /// digits trained on (theirs repeated and the replay sample), and the recipe's steps.
    pub fn counts(&self) -> Result<JsValue, JsError> {
        #[derive(miniserde::Serialize)]
        struct Counts {
            learnt: usize,
            held: usize,
            mixed: usize,
            steps: u64,
        }
        to_js(&Counts {
            learnt: self.inner.learnt_count(),
            held: self.inner.held_out().len(),
            mixed: self.inner.mixed_count(),
            steps: crate::teach::TeachRecipe::default().steps,
        })
    }

    /// Puts the network as taught so far into `session` (its optimizer state starts afresh).
    pub fn apply_to(&self, session: &mut SessionJs) -> Result<(), JsError> {
        session.inner.set_model(self.inner.model().clone()).map_err(js_error)
    }
}

/// Sets `object[key] = value`; `Reflect.set` fails only on a frozen object, never on a fresh one.
fn set(object: &js_sys::Object, key: &str, value: &JsValue) {
    js_sys::Reflect::set(object, &JsValue::from_str(key), value).expect("a fresh object takes any key");
}

fn float32(values: &[f32]) -> JsValue {
    js_sys::Float32Array::from(values).into()
}

/// A look inside the network (`crate::explain`).
#[wasm_bindgen]
impl Model {
    /// Everything the page shows for one image of 784 pixels, as a plain object of
    /// `Float32Array`s, each row-major: `input` (28×28), `conv1` (6×28×28, after ReLU), `pool1`
    /// (6×14×14), `conv2` (16×10×10, after ReLU), `pool2` (16×5×5), `fc1` (120), `fc2` (84),
    /// `logits` (10), `probabilities` (10); `predicted`, the digit with the largest logit;
    /// `class`, the digit explained (`class` if given, else `predicted`); `saliency` (28×28),
    /// ∂ logit[class] / ∂ pixel; `gradient_x_input` (28×28); and `evidence`, where the strongest
    /// evidence for `class` lies, in words ("the upper right", or "nowhere"). Throws an `Error`
    /// naming the problem for a wrong length, a pixel outside `[0, 1]` or a class that is not a
    /// digit 0–9 (`undefined` and `null` explain the predicted digit).
    pub fn explain(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Float32Array | number[]")] pixels: &JsValue,
        class: Option<f64>,
    ) -> Result<JsValue, JsError> {
        let pixels = f32_images(pixels, "pixels")?;
        let mut explainer = crate::explain::Explainer::new();
        let class = class
            .map(|c| wasm_args::whole_number(c, "class", (0.0, 9.0), "a digit 0–9").map(|c| c as usize))
            .transpose()?;
        let (a, s) = explainer.explain(self.inner.model(), &pixels, class).map_err(js_error)?;
        let object = js_sys::Object::new();
        for (key, values) in [
            ("input", &a.input),
            ("conv1", &a.conv1),
            ("pool1", &a.pool1),
            ("conv2", &a.conv2),
            ("pool2", &a.pool2),
            ("fc1", &a.fc1),
            ("fc2", &a.fc2),
            ("logits", &a.logits),
            ("probabilities", &a.probabilities),
            ("saliency", &s.gradient),
            ("gradient_x_input", &s.gradient_x_input),
        ] {
            set(&object, key, &float32(values));
        }
        set(&object, "predicted", &JsValue::from(a.predicted() as u32));
        set(&object, "class", &JsValue::from(s.class as u32));
        set(&object, "evidence", &JsValue::from_str(&crate::explain::describe_evidence(s)));
        Ok(object.into())
    }

    /// The learned filters, `{ conv1, conv2 }`: `Float32Array`s of conv1's weights (6×1×5×5)
    /// and conv2's (16×6×5×5), row-major (output channel, input channel, row, column).
    pub fn filters(&self) -> JsValue {
        let (conv1, conv2) = crate::explain::filters(self.inner.model());
        let object = js_sys::Object::new();
        set(&object, "conv1", &float32(conv1));
        set(&object, "conv2", &float32(conv2));
        object.into()
    }
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
pub fn preprocess_strokes(
    #[wasm_bindgen(unchecked_param_type = "Float32Array")] xy: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "Uint32Array")] ends: &JsValue,
    pad_width: f64,
    pad_height: f64,
) -> Result<JsValue, JsError> {
    use crate::data::strokes::{render_strokes, Rendered, Stroke, MAX_STROKES};
    let xy = crate::wasm_args::f32_images(xy, "xy")?;
    let ends = crate::wasm_args::u32_array(ends, "ends")?;
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
            Err(JsError::new(&format!("{name} must be above 0 and at most 1e6 CSS pixels, got {}", Num(v))))
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

/// Shards `start..end` from JavaScript numbers, checked here: a u32 parameter would wrap −1 to
/// 2³² − 1 and cut 1.5 to 1.
fn shard_range(start: f64, end: f64) -> Result<std::ops::Range<usize>, JsError> {
    let index = |name: &str, v: f64| -> Result<usize, JsError> {
        let range = (0.0, f64::from(u32::MAX));
        Ok(wasm_args::whole_number(v, name, range, "a shard index, a whole number ≥ 0")? as usize)
    };
    Ok(index("start", start)?..index("end", end)?)
}

/// Data-parallel steps (`Session::compute_shard_records`, `Session::apply_shard_records`, the
/// wire form of `compute_shard_gradients` and `apply_shard_gradients`):
/// replicas of a session in several workers each compute a contiguous part of a step's shards,
/// and every replica applies all of them, in order, to the same weights as `step()` gives.
#[wasm_bindgen(js_class = Session)]
impl SessionJs {
    /// The shards of the next step: `ceil(batch_size / shard_size)`.
    pub fn shard_count(&self) -> u32 {
        self.inner.shard_count() as u32
    }

    /// Bytes of one shard's gradient record as `compute_shards` returns it (61,706 parameters:
    /// 246,852 bytes), for allocating a shared buffer that holds a step's shards.
    pub fn shard_bytes(&self) -> u32 {
        session::ShardGradient::wire_bytes(self.inner.model().num_parameters()) as u32
    }

    /// The gradients of shards `start..end` of the next step's batch, without taking the step:
    /// a `Uint8Array` of `(end - start) × shard_bytes()` bytes, records in shard order (step,
    /// index, images, loss, correct, gradient). Throws for a range that is empty or past
    /// `shard_count()`, or without training data.
    pub fn compute_shards(&mut self, start: f64, end: f64) -> Result<Vec<u8>, JsError> {
        let mut bytes = Vec::new();
        self.inner.compute_shard_records(shard_range(start, end)?, &mut bytes).map_err(js_error)?;
        Ok(bytes)
    }

    /// As `compute_shards`, written into `out` (a `Uint8Array`, possibly over a
    /// `SharedArrayBuffer`, of exactly `(end - start) × shard_bytes()` bytes) instead of a new
    /// array: a gradient worker writes its share straight into the step's shared buffer. Throws
    /// as `compute_shards` does, and for an `out` of another type or length, leaving it and the
    /// session unchanged.
    pub fn compute_shards_into(
        &mut self,
        start: f64,
        end: f64,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] out: &JsValue,
    ) -> Result<(), JsError> {
        let range = shard_range(start, end)?;
        let out = u8_array_ref(out, "out")?;
        let step = self.inner.progress().step;
        // Written at their places in the step, for `apply_shards` to take from there: a share
        // of two workers' is half the step's records, not copied back in.
        let at = range.start.min(self.inner.shard_count()) * self.shard_bytes() as usize;
        self.own = None;
        self.wire.resize(at, 0);
        // Computed first: the session checks the range, and the records' length is then known.
        self.inner.compute_shard_records(range.clone(), &mut self.wire).map_err(js_error)?;
        let records = &self.wire[at..];
        if out.length() as usize != records.len() {
            return Err(JsError::new(&format!(
                "out must hold (end − start) × shard_bytes() = {} bytes for shards {}..{}; it holds {}",
                records.len(),
                range.start,
                range.end,
                out.length()
            )));
        }
        out.copy_from(records);
        self.own = Some((step, range.start, range.end));
        Ok(())
    }

    /// Takes the next step from all of its shards (a `Uint8Array`, possibly over a
    /// `SharedArrayBuffer`: the records of `compute_shards` for shards `0..shard_count()`, back
    /// to back, computed here or by replicas): returns what `step()` returns, and the weights are
    /// those `step()` would give. Throws, changing nothing, when the records are cut short or
    /// are not this step's shards in order.
    ///
    /// The shards this session wrote into `bytes` with `compute_shards_into` for this step are
    /// not read back: the session takes them from its own copy, once their headers in `bytes`
    /// are found unchanged.
    pub fn apply_shards(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: &JsValue,
    ) -> Result<JsValue, JsError> {
        // Checked before the bytes are copied into wasm memory, which never shrinks.
        let count = self.inner.shard_count();
        let shard = self.shard_bytes() as usize;
        let expected = count * shard;
        if let Some(view) = bytes.dyn_ref::<js_sys::Uint8Array>() {
            if view.length() as usize != expected {
                return Err(JsError::new(&format!(
                    "apply_shards takes this step's {count} shard records, {expected} bytes (shard_count() × shard_bytes()); got {} bytes",
                    view.length()
                )));
            }
        }
        let view = u8_array_ref(bytes, "bytes")?;
        // Its own share is the same bytes, and copying it in again was half the copying of a
        // step at two workers. A header that differs (step, index, images, loss bits, correct)
        // means the buffer was written over since: it is then read whole.
        let (from, to) = match self.own {
            Some((step, start, end))
                if step == self.inner.progress().step
                    && self.wire.len() == end * shard
                    && (start * shard..end * shard).step_by(shard).all(|at| {
                        (at..at + session::SHARD_HEADER_BYTES).all(|i| view.get_index(i as u32) == self.wire[i])
                    }) =>
            {
                (start * shard, end * shard)
            }
            _ => (0, 0),
        };
        self.own = None;
        // Into a buffer kept from step to step: the records are read in place there.
        self.wire.resize(expected, 0);
        view.subarray(0, from as u32).copy_to(&mut self.wire[..from]);
        view.subarray(to as u32, expected as u32).copy_to(&mut self.wire[to..]);
        to_js(&self.inner.apply_shard_records(&self.wire).map_err(js_error)?)
    }
}
