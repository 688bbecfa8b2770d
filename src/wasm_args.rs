//! The JavaScript arguments of the `wasm` face, checked for their type before their values.
//!
//! wasm-bindgen converts a JavaScript value into a Rust slice by copying it element by element
//! with JavaScript's own conversions: a plain array `[3, 259]` becomes the bytes 3 and 3, a
//! `Float32Array` of labels `[3.7, 1]` becomes 3 and 1, the string `"35"` becomes 3 and 5, and
//! an `ArrayBuffer` (which has no indexed elements) becomes nothing at all. The methods therefore
//! take each array argument as a `JsValue` and pass it through one of these functions, which
//! accept only the typed array the argument is documented to be and otherwise return an `Error`
//! naming the argument, the type expected and the type given.

use js_sys::{Array, ArrayBuffer, Float32Array, Reflect, SharedArrayBuffer, Uint8Array, Uint8ClampedArray};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::weights::{self, SNIFF_BYTES};

/// What `value` is, for an error message: `a string`, `an Array`, `a Float32Array`, `null` …
fn describe(value: &JsValue) -> String {
    if value.is_undefined() {
        return "undefined".into();
    }
    if value.is_null() {
        return "null".into();
    }
    if value.as_string().is_some() {
        return "a string".into();
    }
    if value.as_f64().is_some() {
        return "a number".into();
    }
    if value.as_bool().is_some() {
        return "a boolean".into();
    }
    if Array::is_array(value) {
        return "an Array".into();
    }
    if value.is_function() {
        return "a function".into();
    }
    if value.is_object() {
        // Reflect.get, which catches: an object may have no constructor, or a throwing getter.
        let name = Reflect::get(value, &"constructor".into())
            .ok()
            .filter(JsValue::is_function)
            .and_then(|constructor| Reflect::get(&constructor, &"name".into()).ok())
            .and_then(|name| name.as_string())
            .filter(|name| !name.is_empty() && name.len() <= 40);
        return match name {
            // "a Uint8Array": constructor names start with a vowel letter but not a vowel sound.
            Some(name) if name.starts_with(['A', 'E', 'I', 'O']) => format!("an {name}"),
            Some(name) => format!("a {name}"),
            None => "an object".into(),
        };
    }
    "a value of another type".into()
}

/// The error for an argument that is not of the `expected` type. An `ArrayBuffer` gets told how
/// to wrap it in `wrapper`, the typed array that reads it as the argument's elements.
fn wrong_type(value: &JsValue, name: &str, expected: &str, wrapper: &str) -> JsError {
    if value.is_instance_of::<ArrayBuffer>() || value.is_instance_of::<SharedArrayBuffer>() {
        return JsError::new(&format!(
            "{name} must be {expected}, got {}: wrap it as `new {wrapper}(buffer)`",
            describe(value)
        ));
    }
    JsError::new(&format!("{name} must be {expected}, got {}", describe(value)))
}

/// The bytes of the `Uint8Array` `value`, copied into wasm memory; anything else (a plain array,
/// another typed array, an `ArrayBuffer`, a string) is an `Error` naming the argument `name`.
pub(crate) fn u8_array(value: &JsValue, name: &str) -> Result<Vec<u8>, JsError> {
    match value.dyn_ref::<Uint8Array>() {
        Some(array) => Ok(array.to_vec()),
        None => Err(wrong_type(value, name, "a Uint8Array", "Uint8Array")),
    }
}

/// The string `value` (a file's name, for messages); anything else is an `Error` naming the
/// argument `name` (a number given as a `&str` parameter made the glue read wasm memory out of
/// bounds).
pub(crate) fn string(value: &JsValue, name: &str) -> Result<String, JsError> {
    value.as_string().ok_or_else(|| JsError::new(&format!("{name} must be a string, got {}", describe(value))))
}

/// A whole number in `min..=max` from a JavaScript number: a `u32` parameter would wrap −1 to
/// 2³² − 1 and cut 1.5 to 1. `NaN` (what `undefined` and a non-numeric string become) and
/// fractions are an `Error` naming the argument `name`, what it must be (`expected`) and the
/// number given.
pub(crate) fn whole_number(value: f64, name: &str, (min, max): (f64, f64), expected: &str) -> Result<f64, JsError> {
    if (value.fract() == 0.0 || value.is_infinite()) && (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(JsError::new(&format!("{name} must be {expected}, got {}", crate::error::Num(value))))
    }
}

/// The `Uint8Array` `value` itself, not copied (for writing into it); anything else is an
/// `Error` naming the argument `name`.
pub(crate) fn u8_array_ref<'a>(value: &'a JsValue, name: &str) -> Result<&'a Uint8Array, JsError> {
    value.dyn_ref::<Uint8Array>().ok_or_else(|| wrong_type(value, name, "a Uint8Array", "Uint8Array"))
}

/// The bytes of a weights file given as a `Uint8Array`, checked before they are copied into
/// wasm memory: a Git LFS pointer, an HTML page or a buffer larger than
/// [`weights::MAX_WEIGHTS_FILE_BYTES`] is refused after reading at most its first
/// [`SNIFF_BYTES`] bytes, so a huge buffer does not grow the module's memory.
pub(crate) fn weights_bytes(value: &JsValue, name: &str) -> Result<Vec<u8>, JsError> {
    let array = value.dyn_ref::<Uint8Array>().ok_or_else(|| wrong_type(value, name, "a Uint8Array", "Uint8Array"))?;
    let len = array.length();
    let start = array.subarray(0, len.min(SNIFF_BYTES as u32)).to_vec();
    weights::check_file(&start, len as usize).map_err(|e| JsError::new(&e.to_string()))?;
    Ok(array.to_vec())
}

/// The numbers of the `Uint32Array` `value`, copied into wasm memory; anything else is an
/// `Error` naming the argument `name`.
pub(crate) fn u32_array(value: &JsValue, name: &str) -> Result<Vec<u32>, JsError> {
    match value.dyn_ref::<js_sys::Uint32Array>() {
        Some(array) => Ok(array.to_vec()),
        None => Err(wrong_type(value, name, "a Uint32Array", "Uint32Array")),
    }
}

/// The pixels of images given as a `Float32Array` or as a plain `Array` of numbers (convenient
/// from the console; each number is rounded to f32), copied into wasm memory. Any other value,
/// or an `Array` holding anything but numbers, is an `Error` naming the argument `name`. The
/// length and the values are the caller's to check.
pub(crate) fn f32_images(value: &JsValue, name: &str) -> Result<Vec<f32>, JsError> {
    if let Some(array) = value.dyn_ref::<Float32Array>() {
        return Ok(array.to_vec());
    }
    if let Some(array) = value.dyn_ref::<Array>() {
        return (0..array.length())
            .map(|i| {
                let element = array.get(i);
                element.as_f64().map(|v| v as f32).ok_or_else(|| {
                    JsError::new(&format!(
                        "{name} must hold numbers (pixels in [0, 1]), but {name}[{i}] is {}",
                        describe(&element)
                    ))
                })
            })
            .collect();
    }
    Err(wrong_type(value, name, "a Float32Array (or an Array of numbers)", "Float32Array"))
}

/// The bytes of canvas pixels given as a `Uint8ClampedArray` (what `getImageData().data` is)
/// or a `Uint8Array`, copied into wasm memory; anything else is an `Error` naming the argument
/// `name`.
pub(crate) fn rgba_bytes(value: &JsValue, name: &str) -> Result<Vec<u8>, JsError> {
    if let Some(array) = value.dyn_ref::<Uint8ClampedArray>() {
        return Ok(array.to_vec());
    }
    match value.dyn_ref::<Uint8Array>() {
        Some(array) => Ok(array.to_vec()),
        None => Err(wrong_type(
            value,
            name,
            "a Uint8ClampedArray (a canvas's getImageData().data) or a Uint8Array",
            "Uint8ClampedArray",
        )),
    }
}

/// The largest a valid weights file can be, in bytes ([`weights::MAX_WEIGHTS_FILE_BYTES`],
/// 1,295,408): a page compares a `File`'s `size` with it to refuse a file before reading it.
#[wasm_bindgen]
pub fn max_weights_file_bytes() -> f64 {
    weights::MAX_WEIGHTS_FILE_BYTES as f64
}
