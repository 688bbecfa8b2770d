//! JSON for settings, checkpoint state and safetensors headers, through miniserde.
//!
//! miniserde derives no default values and tells no field from another in its errors, so a
//! partial object is read here by merging it over a complete value: every key it names must
//! exist there, nested objects merge key by key, and a value that does not fit is named with
//! its key, what it was and what was expected.

use miniserde::json::{self, Object, Value};
use miniserde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What kind of JSON value `value` is, in words ("a number", "a string", …).
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `value` as JSON text, cut to about 40 characters for an error message. A number that is an
/// f32 widened (as miniserde writes an f32 field) is shown as that f32's shortest decimal: 0.02,
/// not 0.019999999552965164.
pub(crate) fn shown(value: &Value) -> String {
    if let Value::Number(miniserde::json::Number::F64(x)) = value {
        if f64::from(*x as f32) == *x {
            return crate::error::Num(*x as f32).to_string();
        }
    }
    let text = json::to_string(value);
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

/// `value` as a JSON [`Value`] tree.
pub(crate) fn to_value<T: Serialize>(value: &T) -> Value {
    json::from_str(&json::to_string(value)).expect("miniserde parses what it writes")
}

/// The f32 nearest to the decimal number `text` (JSON's number syntax: `0.1307`, `-2e-3`), or
/// `None` if it is not one.
///
/// miniserde's parser, not `str::parse`: the core's exact parser brings 14 KiB (gzipped) of
/// tables and code into the wasm module, for the two numbers of a weights file's metadata. This
/// one rounds to the nearest f64 and then to f32, so a decimal lying within a few f64 ulps of
/// the midpoint of two f32s could round the other way; the shortest decimal of every f32, which
/// is what this crate writes, reads back to the same bits (tested on a million of them).
pub(crate) fn parse_f32(text: &str) -> Option<f32> {
    // miniserde reads `-0` as the integer 0: the sign is the text's.
    let sign = if text.starts_with('-') { -1.0 } else { 1.0 };
    json::from_str::<f64>(text).ok().map(|v| (v as f32).copysign(sign))
}

/// `base` with the fields of `patch` (JSON text of an object) replaced; `what` names the thing
/// in messages ("setting", "augmentation setting").
///
/// # Errors
/// [`Error::InvalidInput`] when `patch` is not a JSON object, names a key `base` does not have
/// (the message lists those it has), or gives a key a value of the wrong type.
pub(crate) fn merged<T: Serialize + Deserialize>(base: &T, patch: &str, what: &str) -> Result<T> {
    let patch: Value = json::from_str(patch)
        .map_err(|_| Error::InvalidInput(format!("{what}s must be a JSON object, got {}", cut(patch))))?;
    let Value::Object(patch) = patch else {
        return Err(Error::InvalidInput(format!(
            "{what}s must be an object such as {{ learning_rate: 0.01 }}, got {}",
            kind(&patch)
        )));
    };
    let Value::Object(mut merged) = to_value(base) else { unreachable!("a struct serialises as an object") };
    let check = |merged: &Object, key: &str, (what_it_is, beyond_usize): (String, bool), old: &Value| -> Result<()> {
        json::from_str::<T>(&json::to_string(merged)).map(drop).map_err(|_| {
            let expected = match old {
                // A count's limit on wasm32 (4294967295), where a whole number past it fails.
                Value::Number(miniserde::json::Number::U64(_)) if beyond_usize => {
                    format!("a whole number from 0 to {}", usize::MAX)
                }
                Value::Number(miniserde::json::Number::U64(_)) => "a whole number ≥ 0".to_string(),
                Value::Null => "an object or null".to_string(),
                other => format!("{} such as {}", kind(other), shown(other)),
            };
            Error::InvalidInput(format!("{what} `{key}` cannot be {what_it_is}: expected {expected}"))
        })
    };
    overlay(&mut merged, patch, "", what, &check)?;
    json::from_str(&json::to_string(&merged))
        .map_err(|_| Error::InvalidInput(format!("the {what}s to merge into are not all finite numbers")))
}

/// The check [`overlay`] runs after each key: see there.
type Check<'a> = dyn Fn(&Object, &str, (String, bool), &Value) -> Result<()> + 'a;

/// Writes `patch`'s keys into `merged` (nested objects key by key), checking the whole after
/// each key with `check` (given the key, the new value in words and whether it is a whole number
/// past `usize::MAX`, and the old value) so that an error names the key that broke it.
fn overlay(merged: &mut Object, patch: Object, prefix: &str, what: &str, check: &Check<'_>) -> Result<()> {
    for (key, value) in patch {
        let path = format!("{prefix}{key}");
        let Some(slot) = lookup(merged, prefix, &key) else {
            let known: Vec<String> = keys_at(merged, prefix);
            return Err(Error::InvalidInput(format!(
                "unknown {what} `{path}`: the {what}s{} are {}",
                if prefix.is_empty() { String::new() } else { format!(" in `{}`", prefix.trim_end_matches('.')) },
                known.join(", ")
            )));
        };
        match (slot, value) {
            (Value::Object(_), Value::Object(inner)) => overlay(merged, inner, &format!("{path}."), what, check)?,
            (slot, value) => {
                // Described, then moved: miniserde's `Clone` of a `Value` recurses once per level
                // of nesting, so a deeply nested patch would overflow the stack.
                let what_it_is = match &value {
                    Value::Null => "null (NaN and ±∞ are not numbers here)".to_string(),
                    other => shown(other),
                };
                let beyond_usize =
                    matches!(value, Value::Number(miniserde::json::Number::U64(v)) if usize::try_from(v).is_err());
                let old = std::mem::replace(slot, value);
                check(merged, &path, (what_it_is, beyond_usize), &old)?;
            }
        }
    }
    Ok(())
}

/// The value at `prefix` + `key` (`prefix` is empty or dotted keys ending in a dot).
fn lookup<'a>(root: &'a mut Object, prefix: &str, key: &str) -> Option<&'a mut Value> {
    let mut object = root;
    for part in prefix.split('.').filter(|p| !p.is_empty()) {
        match object.get_mut(part) {
            Some(Value::Object(inner)) => object = inner,
            _ => return None,
        }
    }
    object.get_mut(key)
}

fn keys_at(root: &mut Object, prefix: &str) -> Vec<String> {
    let mut object = &*root;
    for part in prefix.split('.').filter(|p| !p.is_empty()) {
        match object.get(part) {
            Some(Value::Object(inner)) => object = inner,
            _ => return Vec::new(),
        }
    }
    object.keys().cloned().collect()
}

fn cut(text: &str) -> String {
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::augment::Augment;

    #[test]
    fn every_f32_written_shortest_reads_back_to_its_bits() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let fixed = [0.1307f32, 0.3081, 1.0, 0.0, -0.0, f32::MIN_POSITIVE, f32::MAX, f32::MIN, 1e-45, 3.4028235e38];
        let random = (0..1_000_000).map(|_| f32::from_bits(rng.random::<u32>())).filter(|v| v.is_finite());
        for value in fixed.into_iter().chain(random) {
            let text = value.to_string();
            assert_eq!(parse_f32(&text).map(f32::to_bits), Some(value.to_bits()), "{text}");
        }
        for text in ["", "1.", ".5", "+1", "NaN", "inf", "0x10", "1e", "--1"] {
            assert_eq!(parse_f32(text), None, "{text}");
        }
        // Python's repr of an f64, as a file written by PyTorch holds it: the same f32 as the exact parser.
        for text in ["0.13066047430038452", "0.30810779333114624", "1e-7", "-3.4028234663852886e38"] {
            assert_eq!(parse_f32(text), text.parse::<f32>().ok(), "{text}");
        }
    }

    #[test]
    fn merges_nested_keys_and_names_what_is_wrong() {
        let base = <Augment as Default>::default();
        let rotated: Augment = merged(&base, r#"{"rotate": 5}"#, "augmentation setting").unwrap();
        assert_eq!(rotated, Augment { rotate: 5.0, ..base });
        let error = merged::<Augment>(&base, r#"{"rotation": 5}"#, "augmentation setting").unwrap_err().to_string();
        assert!(error.contains("unknown augmentation setting `rotation`"), "{error}");
        assert!(error.contains("rotate"), "{error}");
        let error = merged::<Augment>(&base, r#"{"rotate": "5"}"#, "augmentation setting").unwrap_err().to_string();
        assert!(error.contains("`rotate` cannot be \"5\""), "{error}");
        // The example is the f32 setting as written, not its f64 widening (0.019999999552965164).
        let settings = crate::session::Settings { learning_rate: 0.02, ..Default::default() };
        let error = merged(&settings, r#"{"learning_rate": "0,01"}"#, "setting").unwrap_err().to_string();
        assert!(error.ends_with("`learning_rate` cannot be \"0,01\": expected a number such as 0.02"), "{error}");
        let error = merged::<Augment>(&base, "[1]", "augmentation setting").unwrap_err().to_string();
        assert!(error.contains("must be an object") && error.contains("an array"), "{error}");
        let error = merged::<Augment>(&base, "{", "augmentation setting").unwrap_err().to_string();
        assert!(error.contains("must be a JSON object"), "{error}");
    }

    #[test]
    fn a_deeply_nested_value_is_refused_without_recursing() {
        // 100,000 levels: a recursive copy of it overflowed a test thread's 2 MiB stack.
        let depth = 100_000;
        let patch = format!(r#"{{"rotate": {}1{}}}"#, "[".repeat(depth), "]".repeat(depth));
        let base = <Augment as Default>::default();
        let error = merged::<Augment>(&base, &patch, "augmentation setting").unwrap_err().to_string();
        assert!(error.contains("`rotate` cannot be [[[["), "{error}");
    }
}
