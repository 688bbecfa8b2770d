//! The JavaScript-facing `Model`, tested where it runs: in a browser, through
//! `wasm-pack test --headless --firefox`.
#![cfg(target_arch = "wasm32")]

mod common;

use lenet::wasm::{preprocess_canvas, Model};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn images_of(data: &lenet::data::idx::Dataset, range: std::ops::Range<usize>) -> Vec<f32> {
    data.images.as_slice().unwrap()[range.start * 784..range.end * 784].to_vec()
}

/// The message of the JavaScript `Error` a method threw; fails if it threw something else.
fn error_message(error: wasm_bindgen::JsError) -> String {
    let value = JsValue::from(error);
    let error: &js_sys::Error = value.dyn_ref().expect("a JavaScript Error");
    String::from(error.message())
}

#[wasm_bindgen_test]
fn runs_in_firefox() {
    let window = web_sys::window().expect("a browser window");
    let agent = window.navigator().user_agent().unwrap();
    assert!(agent.contains("Firefox"), "user agent: {agent}");
}

#[wasm_bindgen_test]
fn seed_0_predicts_as_natively() {
    let test = common::small_test();
    let mut model = Model::new(0.0).unwrap();
    for (i, golden) in common::SEED0_PROBABILITIES.iter().enumerate() {
        let p = model.predict(&images_of(&test, i..i + 1)).unwrap();
        for (a, b) in p.iter().zip(golden) {
            assert!((a - b).abs() <= 1e-5, "image {i}: wasm {p:?}, native {golden:?}");
        }
    }
}

#[wasm_bindgen_test]
fn train_step_returns_minus_log_of_the_predicted_probability() {
    let train = common::small_train();
    let mut model = Model::new(3.0).unwrap();
    for i in [0usize, 1, 2] {
        let image = images_of(&train, i..i + 1);
        let label = train.labels[i];
        let p = model.predict(&image).unwrap();
        let loss = model.train_step(&image, &[label]).unwrap();
        let expected = -p[usize::from(label)].ln();
        assert!((loss - expected).abs() <= 1e-5 * expected.max(1.0), "step {i}: loss {loss}, −ln p = {expected}");
    }
}

#[wasm_bindgen_test]
fn three_hundred_steps_learn_real_digits() {
    let train = common::small_train();
    let test = common::small_test();
    let mut model = Model::new(0.0).unwrap();
    // A short run on 2,500 digits in their stored order: a larger step with less momentum
    // than the full-MNIST recipe settles faster (93–95 % over seeds 0–3 natively).
    let settings = js_sys::Object::new();
    js_sys::Reflect::set(&settings, &"learning_rate".into(), &0.05.into()).unwrap();
    js_sys::Reflect::set(&settings, &"momentum".into(), &0.5.into()).unwrap();
    model.set_settings(settings.into()).unwrap();
    let all = train.images.as_slice().unwrap();
    let (mut first, mut last) = (Vec::new(), Vec::new());
    for step in 0..300 {
        let start = (step * 32) % (train.len() - 32);
        let loss = model.train_step(&all[start * 784..(start + 32) * 784], &train.labels[start..start + 32]).unwrap();
        if step < 10 {
            first.push(loss);
        }
        if step >= 280 {
            last.push(loss);
        }
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    assert!((first[0] - 10f32.ln()).abs() < 1.0, "first loss {}, not near ln 10", first[0]);
    assert!(mean(&last) < 0.5, "the last 20 losses average {}", mean(&last));
    let result = model.evaluate(test.images.as_slice().unwrap(), &test.labels).unwrap();
    let accuracy = js_sys::Reflect::get(&result, &"accuracy".into()).unwrap().as_f64().unwrap();
    assert!(accuracy >= 0.90, "held-out accuracy {accuracy}");
}

#[wasm_bindgen_test]
fn bad_input_throws_a_telling_error_and_changes_nothing() {
    let train = common::small_train();
    let mut model = Model::new(1.0).unwrap();
    let image = images_of(&train, 0..1);
    let two = images_of(&train, 0..2);
    let before = model.predict(&image).unwrap();
    let mut nan = image.clone();
    nan[100] = f32::NAN;
    let mut infinite = image.clone();
    infinite[5] = f32::INFINITY;
    let mut bright = image.clone();
    bright[783] = 1.5;
    let mut negative = image.clone();
    negative[0] = -0.25;
    let cases: Vec<(&str, Result<f32, wasm_bindgen::JsError>, &str)> = vec![
        ("length not a multiple of 784", model.train_step(&image[..700], &[1]), "n × 784"),
        ("no images", model.train_step(&[], &[]), "n × 784"),
        ("counts disagree", model.train_step(&two, &[1]), "2 images but 1 labels"),
        ("label above 9", model.train_step(&two, &[1, 12]), "label 12 at index 1"),
        ("NaN pixel", model.train_step(&nan, &[5]), "is NaN"),
        ("infinite pixel", model.train_step(&infinite, &[5]), "is inf"),
        ("pixel above 1", model.train_step(&bright, &[5]), "is 1.5"),
        ("negative pixel", model.train_step(&negative, &[5]), "is -0.25"),
    ];
    for (what, result, needle) in cases {
        let message = error_message(result.expect_err(what));
        assert!(message.contains(needle), "{what}: {message}");
    }
    assert!(error_message(model.predict(&two).unwrap_err()).contains("784 values, got 1568"));
    assert!(error_message(model.predict_batch(&image[..10]).unwrap_err()).contains("got 10 values"));
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let settings = js_sys::Object::new();
        js_sys::Reflect::set(&settings, &"learning_rate".into(), &bad.into()).unwrap();
        let message = error_message(model.set_settings(settings.into()).unwrap_err());
        assert!(message.contains("learning_rate must be a positive finite number"), "{message}");
    }
    let settings = js_sys::Object::new();
    js_sys::Reflect::set(&settings, &"learning_rat".into(), &0.1.into()).unwrap();
    assert!(error_message(model.set_settings(settings.into()).unwrap_err()).contains("learning_rat"));
    for seed in [-1.0, 0.5, 4_294_967_296.0, f64::NAN] {
        let message = error_message(Model::new(seed).err().expect("bad seed"));
        assert!(message.contains("seed must be an integer from 0 to 4294967295"), "{message}");
    }
    let bytes = model.to_safetensors().unwrap();
    for (what, bad) in [
        ("truncated", &bytes[..bytes.len() - 10]),
        ("empty", &bytes[..0]),
        ("garbage", b"{not safetensors}".as_slice()),
    ] {
        let message = error_message(model.load_safetensors(bad).unwrap_err());
        assert!(message.starts_with("weights file"), "{what}: {message}");
    }
    let mismatched = Model::new(2.0).unwrap().to_safetensors().unwrap();
    let mut renamed = mismatched.clone();
    let at = renamed.windows(8).position(|w| w == b"fc2.bias").expect("the header names fc2.bias");
    renamed[at + 7] = b'n';
    let message = error_message(model.load_safetensors(&renamed).unwrap_err());
    assert!(message.contains("unexpected tensor `fc2.bian`"), "{message}");
    assert!(preprocess_canvas(&[0; 12], 2.0, 2.0).is_err());
    assert!(error_message(preprocess_canvas(&[0; 16], 4_294_967_297.0, 1.0).unwrap_err())
        .contains("width must be a whole number"));

    assert_eq!(model.predict(&image).unwrap(), before, "a rejected input changed the model");
}

#[wasm_bindgen_test]
fn safetensors_round_trip_bit_for_bit() {
    let train = common::small_train();
    let mut model = Model::new(9.0).unwrap();
    model.train_step(&images_of(&train, 0..16), &train.labels[0..16]).unwrap();
    let bytes = model.to_safetensors().unwrap();
    let mut copy = Model::from_safetensors(&bytes).unwrap();
    let image = images_of(&train, 20..21);
    assert_eq!(copy.predict(&image).unwrap(), model.predict(&image).unwrap());
    let again = copy.to_safetensors().unwrap();
    assert_eq!(again.len(), bytes.len());
    assert_eq!(again[again.len() - 61_706 * 4..], bytes[bytes.len() - 61_706 * 4..]);
}

/// Not a test of speed (timings vary): prints the time of `predict` on one image. Browsers
/// coarsen `performance.now()` (Firefox to tens of microseconds and more), so the 1,000 calls
/// are timed in 20 rounds of 50 and the median round gives the time per call.
#[wasm_bindgen_test]
fn benchmark_predict_one_image() {
    let test = common::small_test();
    let image = images_of(&test, 0..1);
    let mut model = Model::new(0.0).unwrap();
    let performance = web_sys::window().unwrap().performance().unwrap();
    for _ in 0..100 {
        model.predict(&image).unwrap();
    }
    let mut rounds: Vec<f64> = (0..20)
        .map(|_| {
            let start = performance.now();
            for _ in 0..50 {
                assert_eq!(model.predict(&image).unwrap().len(), 10);
            }
            (performance.now() - start) / 50.0
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    let line = format!(
        "benchmark: predict one image, 1,000 calls, median of 20 rounds: {:.4} ms per call (this test build, without LTO; the release build's figures: .ci/bench)",
        rounds[10]
    );
    web_sys::console::log_1(&line.into());
}

#[wasm_bindgen_test]
fn simd_kernels_match_the_reference_for_every_layout() {
    common::check_gemm_against_reference();
}

fn memory_bytes() -> f64 {
    let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
    let buffer: js_sys::ArrayBuffer = memory.buffer().unchecked_into();
    buffer.byte_length() as f64
}

/// Gives the browser its event loop back for a moment: a test that holds the main thread for
/// minutes is taken for a hung page by the WebDriver that runs it.
async fn yield_to_browser() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        web_sys::window().unwrap().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0).unwrap();
    });
    wasm_bindgen_futures::JsFuture::from(promise).await.unwrap();
}

#[wasm_bindgen_test]
async fn twenty_thousand_steps_and_ten_thousand_predictions_do_not_grow_memory() {
    let train = common::small_train();
    let all = train.images.as_slice().unwrap();
    let mut model = Model::new(4.0).unwrap();
    let batches = train.len() / 64;
    let step = |model: &mut Model, i: usize| {
        let b = i % batches;
        let loss =
            model.train_step(&all[b * 64 * 784..(b + 1) * 64 * 784], &train.labels[b * 64..(b + 1) * 64]).unwrap();
        assert!(loss.is_finite(), "step {i}: loss {loss}");
    };
    for i in 0..100 {
        step(&mut model, i);
    }
    let after_100 = memory_bytes();
    for i in 100..20_000 {
        step(&mut model, i);
        if i % 500 == 0 {
            yield_to_browser().await;
        }
    }
    assert_eq!(memory_bytes(), after_100, "wasm memory grew between step 100 and step 20,000");

    let image = &all[..784];
    model.predict(image).unwrap();
    let before = memory_bytes();
    for _ in 0..10_000 {
        model.predict(image).unwrap();
    }
    assert_eq!(memory_bytes(), before, "wasm memory grew over 10,000 predictions");

    // Models made and dropped (JavaScript's `free()`) give their memory back for the next.
    // The first few may still grow the heap (the allocator settles its free lists); a leak
    // would grow it by a model's worth, about 1.5 MB, every time.
    let make_and_free = |seed: u32| {
        let mut m = Model::new(f64::from(seed)).unwrap();
        m.train_step(image, &train.labels[..1]).unwrap();
        drop(m);
    };
    for seed in 0..5 {
        make_and_free(seed);
    }
    let before = memory_bytes();
    for seed in 5..205 {
        make_and_free(seed);
    }
    assert_eq!(memory_bytes(), before, "wasm memory grew over 200 models made and freed");
}

#[wasm_bindgen_test]
fn strokes_render_to_the_same_bytes_as_natively() {
    use lenet::wasm::preprocess_strokes;
    let get = |value: &JsValue, key: &str| js_sys::Reflect::get(value, &JsValue::from_str(key)).unwrap();
    let (xy, ends) = common::four_strokes();
    let result = preprocess_strokes(&xy, &ends, 280.0, 280.0).unwrap();
    assert_eq!(get(&result, "status").as_string().as_deref(), Some("digit"));
    let pixels = js_sys::Float32Array::from(get(&result, "pixels")).to_vec();
    assert_eq!(pixels.len(), 784);
    assert_eq!(common::fnv1a(&pixels), common::FOUR_STROKES_FNV1A, "{:#x}", common::fnv1a(&pixels));

    let status = |xy: &[f32], ends: &[u32]| get(&preprocess_strokes(xy, ends, 280.0, 280.0).unwrap(), "status");
    assert_eq!(status(&[], &[]).as_string().as_deref(), Some("empty"));
    assert_eq!(status(&[10.0, 10.0, 12.0, 11.0], &[2]).as_string().as_deref(), Some("too_small"));
    assert!(get(&preprocess_strokes(&[10.0, 10.0], &[1], 280.0, 280.0).unwrap(), "pixels").is_undefined());

    let message = |xy: &[f32], ends: &[u32], w: f64| error_message(preprocess_strokes(xy, ends, w, 280.0).unwrap_err());
    assert!(message(&[1.0, 2.0, 3.0], &[1], 280.0).contains("its length 3 is odd"));
    assert!(message(&[1.0, 2.0, 3.0, 4.0], &[2, 1], 280.0).contains("ends[1] = 1: ends must be non-decreasing"));
    assert!(message(&[1.0, 2.0, 3.0, 4.0], &[1], 280.0).contains("must end at xy.length / 2 = 2"));
    assert!(message(&[1.0, 2.0, 3.0, 4.0], &[3], 280.0).contains("at most 2"));
    assert!(message(&[1.0, f32::NAN], &[1], 280.0).contains("stroke 0, point 0 is (1, NaN), not finite"));
    assert!(message(&[1.0, 2.0], &[1], 1e300).contains("pad_width must be above 0"));
    assert!(message(&[1.0, 2.0], &[1], 0.0).contains("pad_width must be above 0"));
}
