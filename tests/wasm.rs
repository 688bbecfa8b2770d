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

fn float32_field(object: &JsValue, key: &str) -> Vec<f32> {
    let value = js_sys::Reflect::get(object, &key.into()).unwrap();
    let array: &js_sys::Float32Array = value.dyn_ref().unwrap_or_else(|| panic!("{key} is not a Float32Array"));
    array.to_vec()
}

fn number_field(object: &JsValue, key: &str) -> f64 {
    js_sys::Reflect::get(object, &key.into()).unwrap().as_f64().unwrap_or_else(|| panic!("{key} is not a number"))
}

#[wasm_bindgen_test]
fn explain_gives_every_map_and_a_saliency_that_raises_the_logit() {
    let test = common::small_test();
    let image = images_of(&test, 0..1);
    let mut model = Model::new(0.0).unwrap();
    let result = model.explain(&image, None).unwrap();
    for (key, len) in [
        ("input", 784),
        ("conv1", 6 * 28 * 28),
        ("pool1", 6 * 14 * 14),
        ("conv2", 16 * 10 * 10),
        ("pool2", 16 * 5 * 5),
        ("fc1", 120),
        ("fc2", 84),
        ("logits", 10),
        ("probabilities", 10),
        ("saliency", 784),
        ("gradient_x_input", 784),
    ] {
        assert_eq!(float32_field(&result, key).len(), len, "{key}");
    }
    assert_eq!(float32_field(&result, "input"), image);
    assert_eq!(float32_field(&result, "probabilities"), model.predict(&image).unwrap());
    let logits = float32_field(&result, "logits");
    let predicted = number_field(&result, "predicted") as usize;
    assert_eq!(predicted, lenet::train::argmax(logits.iter().copied()));
    assert_eq!(number_field(&result, "class") as usize, predicted);
    let evidence = js_sys::Reflect::get(&result, &"evidence".into()).unwrap().as_string().unwrap();
    assert!(lenet::explain::REGION_NAMES.contains(&evidence.as_str()), "evidence: {evidence}");

    // Between kinks the network is linear: a small step along the gradient of logit[3] raises
    // it by the step times the gradient's squared norm.
    let other = model.explain(&image, Some(3)).unwrap();
    assert_eq!(number_field(&other, "class"), 3.0);
    let gradient = float32_field(&other, "saliency");
    let norm2: f64 = gradient.iter().map(|&g| f64::from(g) * f64::from(g)).sum();
    let step = 1e-3 / norm2.sqrt();
    let moved: Vec<f32> =
        image.iter().zip(&gradient).map(|(&x, &g)| (x + (step * f64::from(g)) as f32).clamp(0.0, 1.0)).collect();
    let moved_logit = float32_field(&model.explain(&moved, Some(3)).unwrap(), "logits")[3];
    // Pixels clamped at 0 or 1 do not move: only the gradient of those that did counts.
    let expected: f64 = moved
        .iter()
        .zip(&image)
        .zip(&gradient)
        .map(|((&m, &x), &g)| (f64::from(m) - f64::from(x)) * f64::from(g))
        .sum();
    let rise = f64::from(moved_logit - float32_field(&other, "logits")[3]);
    assert!(expected > 0.0 && (rise - expected).abs() <= 5e-2 * expected, "rise {rise}, gradient says {expected}");

    let filters = model.filters();
    let reference = lenet::LeNet5::new(0);
    assert_eq!(float32_field(&filters, "conv1"), reference.parameters()[0]);
    assert_eq!(float32_field(&filters, "conv2"), reference.parameters()[2]);

    let message = error_message(model.explain(&image, Some(10)).unwrap_err());
    assert!(message.contains("class 10 is not a digit 0–9"), "{message}");
    assert!(error_message(model.explain(&image[..100], None).unwrap_err()).contains("got (100)"));
    let mut nan = image.clone();
    nan[29] = f32::NAN;
    assert!(error_message(model.explain(&nan, None).unwrap_err()).contains("row 1, column 1"));
}

/// Not a test of speed (timings vary): prints the time of one `explain` (every feature map and
/// the saliency of one drawing, turned into JavaScript arrays), and of the same work without
/// the JavaScript objects and with the buffers kept between calls (`Explainer`). 200 calls
/// each, timed in 20 rounds of 10 (browsers coarsen `performance.now()`); the median round
/// gives the time per call.
#[wasm_bindgen_test]
fn benchmark_explain_one_image() {
    let test = common::small_test();
    let image = images_of(&test, 0..1);
    let mut model = Model::new(0.0).unwrap();
    let network = lenet::LeNet5::new(0);
    let mut explainer = lenet::explain::Explainer::new();
    let performance = web_sys::window().unwrap().performance().unwrap();
    let median = |call: &mut dyn FnMut()| {
        for _ in 0..20 {
            call();
        }
        let mut rounds: Vec<f64> = (0..20)
            .map(|_| {
                let start = performance.now();
                for _ in 0..10 {
                    call();
                }
                (performance.now() - start) / 10.0
            })
            .collect();
        rounds.sort_by(f64::total_cmp);
        rounds[10]
    };
    let whole = median(&mut || assert!(model.explain(&image, None).unwrap().is_object()));
    let core = median(&mut || assert!(explainer.explain(&network, &image, None).unwrap().1.class < 10));
    let line = format!(
        "benchmark: explain one image, 200 calls, median of 20 rounds: {whole:.4} ms per call; \
         Explainer alone, buffers kept: {core:.4} ms (this test build, without LTO)"
    );
    web_sys::console::log_1(&line.into());
}
