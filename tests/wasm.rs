//! The JavaScript-facing `Model`, tested where it runs: in a browser, through
//! `wasm-pack test --headless --firefox`.
#![cfg(target_arch = "wasm32")]

mod common;

use lenet::data::digits::Digits;
use lenet::wasm::{
    check_mine_count, defaults, idx_file_len, max_weights_file_bytes, preprocess_canvas, read_idx, Model, SessionJs,
};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn images_of(data: &lenet::data::idx::Dataset, range: std::ops::Range<usize>) -> Vec<f32> {
    data.images.as_slice().unwrap()[range.start * 784..range.end * 784].to_vec()
}

/// `values` as a JavaScript `Float32Array`, the type the methods take images as.
fn f32s(values: &[f32]) -> JsValue {
    js_sys::Float32Array::from(values).into()
}

/// `values` as a JavaScript `Uint32Array`, the type stroke ends are taken as.
fn u32s(values: &[u32]) -> JsValue {
    js_sys::Uint32Array::from(values).into()
}

/// `values` as a JavaScript `Uint8Array`, the type the methods take labels and files as.
fn u8s(values: &[u8]) -> JsValue {
    js_sys::Uint8Array::from(values).into()
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
    // .ci/test's second run, built with relaxed SIMD, checks that it says yes.
    let relaxed = if cfg!(target_feature = "relaxed-simd") { "yes" } else { "no" };
    web_sys::console::log_1(&format!("relaxed SIMD: {relaxed}").into());
}

#[wasm_bindgen_test]
fn seed_0_predicts_as_natively() {
    let test = common::small_test();
    let mut model = Model::new(0.0).unwrap();
    for (i, golden) in common::SEED0_PROBABILITIES.iter().enumerate() {
        let p = model.predict(&f32s(&images_of(&test, i..i + 1))).unwrap();
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
        let p = model.predict(&f32s(&image)).unwrap();
        let loss = model.train_step(&f32s(&image), &u8s(&[label])).unwrap();
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
        let loss = model
            .train_step(&f32s(&all[start * 784..(start + 32) * 784]), &u8s(&train.labels[start..start + 32]))
            .unwrap();
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
    let result = model.evaluate(&f32s(test.images.as_slice().unwrap()), &u8s(&test.labels)).unwrap();
    let accuracy = js_sys::Reflect::get(&result, &"accuracy".into()).unwrap().as_f64().unwrap();
    assert!(accuracy >= 0.90, "held-out accuracy {accuracy}");
}

#[wasm_bindgen_test]
fn bad_input_throws_a_telling_error_and_changes_nothing() {
    let train = common::small_train();
    let mut model = Model::new(1.0).unwrap();
    let image = images_of(&train, 0..1);
    let two = images_of(&train, 0..2);
    let before = model.predict(&f32s(&image)).unwrap();
    let mut nan = image.clone();
    nan[100] = f32::NAN;
    let mut infinite = image.clone();
    infinite[5] = f32::INFINITY;
    let mut bright = image.clone();
    bright[783] = 1.5;
    let mut negative = image.clone();
    negative[0] = -0.25;
    let cases: Vec<(&str, Result<f32, wasm_bindgen::JsError>, &str)> = vec![
        ("length not a multiple of 784", model.train_step(&f32s(&image[..700]), &u8s(&[1])), "n × 784"),
        ("no images", model.train_step(&f32s(&[]), &u8s(&[])), "n × 784"),
        ("counts disagree", model.train_step(&f32s(&two), &u8s(&[1])), "2 images but 1 labels"),
        ("label above 9", model.train_step(&f32s(&two), &u8s(&[1, 12])), "label 12 at index 1"),
        ("NaN pixel", model.train_step(&f32s(&nan), &u8s(&[5])), "is NaN"),
        ("infinite pixel", model.train_step(&f32s(&infinite), &u8s(&[5])), "is inf"),
        ("pixel above 1", model.train_step(&f32s(&bright), &u8s(&[5])), "is 1.5"),
        ("negative pixel", model.train_step(&f32s(&negative), &u8s(&[5])), "is -0.25"),
    ];
    for (what, result, needle) in cases {
        let message = error_message(result.expect_err(what));
        assert!(message.contains(needle), "{what}: {message}");
    }
    assert!(error_message(model.predict(&f32s(&two)).unwrap_err()).contains("784 values, got 1568"));
    assert!(error_message(model.predict_batch(&f32s(&image[..10])).unwrap_err()).contains("got 10 values"));
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let settings = js_sys::Object::new();
        js_sys::Reflect::set(&settings, &"learning_rate".into(), &bad.into()).unwrap();
        let message = error_message(model.set_settings(settings.into()).unwrap_err());
        assert!(message.contains("learning_rate must be a"), "{message}");
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
        let message = error_message(model.load_safetensors(&u8s(bad)).unwrap_err());
        assert!(message.starts_with("weights file"), "{what}: {message}");
    }
    let mismatched = Model::new(2.0).unwrap().to_safetensors().unwrap();
    let mut renamed = mismatched.clone();
    let at = renamed.windows(8).position(|w| w == b"fc2.bias").expect("the header names fc2.bias");
    renamed[at + 7] = b'n';
    let message = error_message(model.load_safetensors(&u8s(&renamed)).unwrap_err());
    assert!(message.contains("unexpected tensor `fc2.bian`"), "{message}");
    assert!(preprocess_canvas(&u8s(&[0; 12]), 2.0, 2.0).is_err());
    assert!(error_message(preprocess_canvas(&u8s(&[0; 16]), 4_294_967_297.0, 1.0).unwrap_err())
        .contains("width must be a whole number"));

    assert_eq!(model.predict(&f32s(&image)).unwrap(), before, "a rejected input changed the model");
}

#[wasm_bindgen_test]
fn safetensors_round_trip_bit_for_bit() {
    let train = common::small_train();
    let mut model = Model::new(9.0).unwrap();
    model.train_step(&f32s(&images_of(&train, 0..16)), &u8s(&train.labels[0..16])).unwrap();
    let bytes = model.to_safetensors().unwrap();
    let mut copy = Model::from_safetensors(&u8s(&bytes)).unwrap();
    let image = f32s(&images_of(&train, 20..21));
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
    let image = f32s(&images_of(&test, 0..1));
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

#[wasm_bindgen_test]
fn check_mine_count_throws_past_the_limit_and_for_counts_that_are_not_counts() {
    assert!(check_mine_count(0.0).is_ok() && check_mine_count(2000.0).is_ok());
    assert_eq!(
        error_message(check_mine_count(2001.0).unwrap_err()),
        "2001 digits of yours are more than the 2000 that are kept and taught from"
    );
    for bad in [-1.0, 2.5, f64::NAN] {
        assert!(error_message(check_mine_count(bad).unwrap_err()).starts_with("count must be a whole number ≥ 0, got "));
    }
}

#[wasm_bindgen_test]
fn pooling_matches_its_definition_bit_for_bit() {
    common::check_pool_against_reference();
}

#[wasm_bindgen_test]
fn augmentation_gives_the_native_images_bit_for_bit() {
    let hash = common::augment_hash();
    assert_eq!(hash, common::AUGMENT_HASH, "wasm {hash:#018x}, native {:#018x}", common::AUGMENT_HASH);
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
        let loss = model
            .train_step(&f32s(&all[b * 64 * 784..(b + 1) * 64 * 784]), &u8s(&train.labels[b * 64..(b + 1) * 64]))
            .unwrap();
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

    let image = &f32s(&all[..784]);
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
        m.train_step(image, &u8s(&train.labels[..1])).unwrap();
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

fn get(object: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(object, &key.into()).unwrap()
}

fn object(entries: &[(&str, JsValue)]) -> JsValue {
    let o = js_sys::Object::new();
    for (k, v) in entries {
        js_sys::Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

fn fixture_session(settings: &JsValue) -> SessionJs {
    let train = Digits::from_dataset(&common::small_train());
    let test = Digits::from_dataset(&common::small_test());
    let mut session = SessionJs::new(settings.clone()).unwrap();
    session.set_train_data(&u8s(train.images()), &u8s(train.labels())).unwrap();
    session.set_test_data(&u8s(test.images()), &u8s(test.labels())).unwrap();
    session
}

#[wasm_bindgen_test]
fn a_session_resumed_in_a_new_object_equals_the_uninterrupted_one() {
    for optimizer in ["sgd", "adam"] {
        let lr = if optimizer == "sgd" { 0.02 } else { 1e-3 };
        let settings = object(&[
            ("optimizer", optimizer.into()),
            ("learning_rate", lr.into()),
            ("batch_size", 64.into()),
            ("seed", 5.into()),
        ]);
        let mut whole = fixture_session(&settings);
        let mut first = fixture_session(&settings);
        for _ in 0..45 {
            assert!(get(&whole.step().unwrap(), "diverged").is_null());
        }
        for _ in 0..20 {
            first.step().unwrap();
        }
        let checkpoint = first.checkpoint().unwrap();
        drop(first);
        let mut resumed = fixture_session(&JsValue::UNDEFINED);
        resumed.restore(&u8s(&checkpoint)).unwrap();
        for _ in 0..25 {
            resumed.step().unwrap();
        }
        assert_eq!(resumed.to_safetensors().unwrap(), whole.to_safetensors().unwrap(), "{optimizer}");
        assert_eq!(resumed.checkpoint().unwrap(), whole.checkpoint().unwrap(), "{optimizer}");
    }
}

#[wasm_bindgen_test]
fn a_session_says_whether_a_checkpoint_fits_its_digits_and_throws_on_other_bytes() {
    let mut first = fixture_session(&JsValue::UNDEFINED);
    first.step().unwrap();
    let checkpoint = u8s(&first.checkpoint().unwrap());
    let fresh = fixture_session(&object(&[("seed", 3.into())]));
    assert!(fresh.checkpoint_fits(&checkpoint).unwrap());

    // The same count of digits, one label changed: other digits.
    let train = Digits::from_dataset(&common::small_train());
    let mut labels = train.labels().to_vec();
    labels[0] = (labels[0] + 1) % 10;
    let mut other = SessionJs::new(JsValue::UNDEFINED).unwrap();
    other.set_train_data(&u8s(train.images()), &u8s(&labels)).unwrap();
    assert!(!other.checkpoint_fits(&checkpoint).unwrap());
    let message = error_message(other.restore(&checkpoint).unwrap_err());
    assert!(message.contains("other training data"), "{message}");

    let message = error_message(fresh.checkpoint_fits(&u8s(b"no checkpoint")).unwrap_err());
    assert!(message.starts_with("checkpoint file: not a valid safetensors file"), "{message}");
    let message = error_message(fresh.checkpoint_fits(&u8s(&fresh.to_safetensors().unwrap())).unwrap_err());
    assert!(message.contains("a weights file, not a checkpoint"), "{message}");
    let message = error_message(fresh.checkpoint_fits(&JsValue::from_str("bytes")).unwrap_err());
    assert!(message.contains("Uint8Array"), "{message}");
}

#[wasm_bindgen_test]
fn a_session_steps_evaluates_and_reports_as_plain_objects() {
    let d = defaults().unwrap();
    assert_eq!(get(&d, "image_pixels").as_f64(), Some(784.0));
    assert_eq!(get(&d, "num_classes").as_f64(), Some(10.0));
    let settings = get(&d, "settings");
    assert!(get(&settings, "learning_rate").as_f64().unwrap() > 0.0);
    let mut session = fixture_session(&object(&[("eval_limit", 200.into())]));
    let outcome = session.step().unwrap();
    assert_eq!(get(&outcome, "step").as_f64(), Some(1.0));
    assert!((get(&outcome, "loss").as_f64().unwrap() - 10f64.ln()).abs() < 1.0);
    assert!(get(&outcome, "diverged").is_null());
    assert!(session.evaluate(150.0).unwrap().is_null(), "a pass over 200 digits is not done after 150");
    let report = session.evaluate(150.0).unwrap();
    assert_eq!(get(&report, "count").as_f64(), Some(200.0));
    // A u32 parameter had read -1 as 4294967295 and 2.5 as 2; NaN is what undefined becomes.
    for (bad, shown) in [(0.0, "0"), (-1.0, "-1"), (2.5, "2.5"), (f64::NAN, "NaN")] {
        let message = error_message(session.evaluate(bad).unwrap_err());
        assert_eq!(message, format!("max_images must be a whole number ≥ 1, got {shown}"));
    }
    assert!(session.evaluate(3.0).unwrap().is_null());
    let rest = session.evaluate(f64::INFINITY).unwrap();
    assert_eq!(get(&rest, "count").as_f64(), Some(200.0), "Infinity finishes the pass begun");
    let confusion: js_sys::Array = get(&report, "confusion").unchecked_into();
    assert_eq!(confusion.length(), 10);
    let total: f64 = confusion
        .iter()
        .flat_map(|row| row.unchecked_into::<js_sys::Array>().iter().collect::<Vec<_>>())
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert_eq!(total, 200.0);
    let message = error_message(session.set_settings(object(&[("batch_size", 0.into())])).unwrap_err());
    assert!(message.contains("batch_size must be a whole number from 1 to 4096, got 0"), "{message}");
    let message = error_message(session.set_settings(object(&[("learning_rat", 0.1.into())])).unwrap_err());
    assert!(message.contains("unknown setting `learning_rat`"), "{message}");
    // JSON would drop `undefined` and write NaN as null: named first, nested ones by their path.
    let before = session.settings().unwrap();
    for (patch, expected) in [
        (
            object(&[("learning_rate", JsValue::UNDEFINED)]),
            "learning_rate is undefined; give it a value or leave it out",
        ),
        (
            object(&[("augment", object(&[("rotate", JsValue::UNDEFINED)]))]),
            "augment.rotate is undefined; give it a value or leave it out",
        ),
        (
            object(&[("augment", object(&[("rotate", f64::NAN.into())]))]),
            "augment.rotate must be a finite number, got NaN",
        ),
        // A count past wasm32's usize: said to be one, not "a whole number ≥ 0", which it is.
        (
            object(&[("batch_size", 1e10.into())]),
            "setting `batch_size` cannot be 10000000000: expected a whole number from 0 to 4294967295",
        ),
    ] {
        assert_eq!(error_message(session.set_settings(patch).unwrap_err()), expected);
    }
    assert_eq!(js_sys::JSON::stringify(&session.settings().unwrap()), js_sys::JSON::stringify(&before));
    let mut wild = fixture_session(&object(&[("learning_rate", 1e6.into())]));
    let diverged = (0..10).map(|_| wild.step().unwrap()).find(|o| !get(o, "diverged").is_null());
    assert!(diverged.is_some(), "learning rate 10⁶ never diverged");
}

#[wasm_bindgen_test]
fn evaluation_subsets_spread_evenly_over_large_sets() {
    // 70,000 held-out digits, 69,999 evaluated: `i · n` passes 2³² from i = 61,356, and in
    // 32-bit arithmetic the subset had skipped the last 8,600 digits and taken the first twice.
    let subset = lenet::session::spread_indices(70_000, 69_999);
    assert_eq!(subset.len(), 69_999);
    assert!(subset.windows(2).all(|w| w[0] < w[1]), "ascending and distinct");
    assert_eq!((subset[0], subset[35_000], subset[69_998]), (0, 35_000, 69_998));
}

/// Plain IDX files of `labels.len()` images, image `i` filled with the byte `i`.
fn idx_pair(labels: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let n = labels.len() as u32;
    let mut images =
        [&0x803u32.to_be_bytes()[..], &n.to_be_bytes(), &28u32.to_be_bytes(), &28u32.to_be_bytes()].concat();
    (0..labels.len()).for_each(|i| images.extend(std::iter::repeat_n(i as u8, 784)));
    let label_file = [&0x801u32.to_be_bytes()[..], &n.to_be_bytes(), labels].concat();
    (images, label_file)
}

#[wasm_bindgen_test]
fn read_idx_names_the_file_and_what_is_wrong() {
    let (images, labels) = idx_pair(&[3, 1, 4]);
    let digits = read_idx(&u8s(&images), &"t10k-images".into(), &u8s(&labels), &"t10k-labels".into()).unwrap();
    assert_eq!(get(&digits, "count").as_f64(), Some(3.0));
    let pixels = get(&digits, "images").unchecked_into::<js_sys::Uint8Array>().to_vec();
    assert_eq!((pixels.len(), pixels[784], pixels[3 * 784 - 1]), (3 * 784, 1, 2));
    assert_eq!(get(&digits, "labels").unchecked_into::<js_sys::Uint8Array>().to_vec(), [3, 1, 4]);
    let message = error_message(read_idx(&u8s(&labels), &"a".into(), &u8s(&labels), &"b".into()).unwrap_err());
    assert!(message.contains("a:") && message.contains("magic number"), "{message}");
    let message =
        error_message(read_idx(&u8s(&images[..1000]), &"half".into(), &u8s(&labels), &"b".into()).unwrap_err());
    assert!(message.contains("half") && message.contains("truncated"), "{message}");
    // The browser decompresses: a gzipped file is named, not misread.
    let gz = include_bytes!("fixtures/mnist-small/t10k-labels-idx1-ubyte.gz");
    let message = error_message(read_idx(&u8s(&images), &"i".into(), &u8s(gz), &"l.gz".into()).unwrap_err());
    assert!(message.contains("l.gz") && message.contains("gzipped: decompress it first"), "{message}");
    // A name that is not a string: a `&str` parameter had made the glue read out of bounds.
    let message = error_message(read_idx(&u8s(&images), &42.into(), &u8s(&labels), &"l".into()).unwrap_err());
    assert_eq!(message, "images_name must be a string, got a number");
    let message = error_message(read_idx(&u8s(&images), &"i".into(), &u8s(&labels), &JsValue::UNDEFINED).unwrap_err());
    assert_eq!(message, "labels_name must be a string, got undefined");
}

#[wasm_bindgen_test]
fn idx_file_len_is_what_the_header_claims() {
    let (images, labels) = idx_pair(&[3, 1, 4]);
    let len = |header: &[u8], name: &str| idx_file_len(&u8s(header), &name.into());
    assert_eq!(len(&images[..16], "i").unwrap(), (16 + 3 * 784) as f64);
    assert_eq!(len(&labels[..8], "l").unwrap(), 11.0);
    let message = error_message(len(&images[..10], "i").unwrap_err());
    assert!(message.contains("truncated: the header is 16 bytes, the file has 10"), "{message}");
    let message = error_message(len(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0], "g").unwrap_err());
    assert!(message.contains("wrong magic number"), "{message}");
    let huge = [&0x801u32.to_be_bytes()[..], &u32::MAX.to_be_bytes()].concat();
    let message = error_message(len(&huge, "l").unwrap_err());
    assert!(message.contains("more than the 1000000"), "{message}");
    // A plain array had been copied byte by byte with wrapping (300 became 44): refused.
    let plain = plain_array(&[0.0, 0.0, 8.0, 1.0, 0.0, 0.0, 1.0, 300.0]);
    let message = error_message(idx_file_len(&plain, &"l".into()).unwrap_err());
    assert_eq!(message, "header must be a Uint8Array, got an Array");
    let message = error_message(idx_file_len(&u8s(&labels[..8]), &JsValue::from(7)).unwrap_err());
    assert_eq!(message, "name must be a string, got a number");
}

/// `stats().steps` of `model`.
fn steps(model: &Model) -> f64 {
    js_sys::Reflect::get(&model.stats().unwrap(), &"steps".into()).unwrap().as_f64().unwrap()
}

/// A JavaScript `ArrayBuffer` holding `bytes`.
fn array_buffer(bytes: &[u8]) -> JsValue {
    js_sys::Uint8Array::from(bytes).buffer().into()
}

/// A plain JavaScript array of the numbers `values`.
fn plain_array(values: &[f64]) -> JsValue {
    values.iter().map(|&v| JsValue::from_f64(v)).collect::<js_sys::Array>().into()
}

#[wasm_bindgen_test]
fn arguments_of_the_wrong_type_throw_and_change_nothing() {
    let train = common::small_train();
    let mut model = Model::new(7.0).unwrap();
    let two = images_of(&train, 0..2);
    let image = images_of(&train, 0..1);
    model.train_step(&f32s(&two), &u8s(&train.labels[..2])).unwrap();
    let (before, steps_before) = (model.to_safetensors().unwrap(), steps(&model));
    let file = u8s(&before);

    let wrong_labels: [(&str, JsValue, &str); 5] = [
        ("plain array [3, 259]", plain_array(&[3.0, 259.0]), "labels must be a Uint8Array, got an Array"),
        (
            "Float32Array [3.7, 1]",
            js_sys::Float32Array::from([3.7f32, 1.0].as_slice()).into(),
            "labels must be a Uint8Array, got a Float32Array",
        ),
        ("string \"35\"", JsValue::from_str("35"), "labels must be a Uint8Array, got a string"),
        (
            "ArrayBuffer",
            array_buffer(&[3, 1]),
            "labels must be a Uint8Array, got an ArrayBuffer: wrap it as `new Uint8Array(buffer)`",
        ),
        ("undefined", JsValue::UNDEFINED, "labels must be a Uint8Array, got undefined"),
    ];
    for (what, labels, expected) in &wrong_labels {
        let message = error_message(model.train_step(&f32s(&two), labels).expect_err(what));
        assert_eq!(&message, expected, "train_step, labels {what}");
        let message = error_message(model.evaluate(&f32s(&two), labels).expect_err(what));
        assert_eq!(&message, expected, "evaluate, labels {what}");
    }

    let mut with_text = vec![0.0; 784];
    with_text[5] = f64::NAN; // replaced by a string below
    let with_text: js_sys::Array = plain_array(&with_text).unchecked_into();
    with_text.set(5, JsValue::from_str("0.5"));
    let wrong_images: [(&str, JsValue, &str); 5] = [
        (
            "ArrayBuffer",
            array_buffer(&vec![0; 784 * 4]),
            "images must be a Float32Array (or an Array of numbers), got an ArrayBuffer: wrap it as `new Float32Array(buffer)`",
        ),
        (
            "Float64Array",
            js_sys::Float64Array::new_with_length(784).into(),
            "images must be a Float32Array (or an Array of numbers), got a Float64Array",
        ),
        ("Uint8Array", u8s(&[0; 784]), "images must be a Float32Array (or an Array of numbers), got a Uint8Array"),
        ("a string", JsValue::from_str("0.5"), "images must be a Float32Array (or an Array of numbers), got a string"),
        ("an array holding a string", with_text.into(), "images must hold numbers (pixels in [0, 1]), but images[5] is a string"),
    ];
    for (what, images, expected) in &wrong_images {
        let message = error_message(model.train_step(images, &u8s(&[1])).expect_err(what));
        assert_eq!(&message, expected, "train_step, images {what}");
        let message = error_message(model.predict_batch(images).expect_err(what));
        assert_eq!(&message, expected, "predict_batch, images {what}");
        let message = error_message(model.evaluate(images, &u8s(&[1])).expect_err(what));
        assert_eq!(&message, expected, "evaluate, images {what}");
        let message = error_message(model.predict(images).expect_err(what));
        assert_eq!(message, expected.replace("images", "pixels"), "predict, pixels {what}");
    }

    let buffer = array_buffer(&before);
    let message = error_message(model.load_safetensors(&buffer).unwrap_err());
    assert_eq!(message, "bytes must be a Uint8Array, got an ArrayBuffer: wrap it as `new Uint8Array(buffer)`");
    let message = error_message(Model::from_safetensors(&buffer).err().expect("an ArrayBuffer is refused"));
    assert_eq!(message, "bytes must be a Uint8Array, got an ArrayBuffer: wrap it as `new Uint8Array(buffer)`");
    let as_array = plain_array(&before.iter().map(|&b| f64::from(b)).collect::<Vec<_>>());
    let message = error_message(model.load_safetensors(&as_array).unwrap_err());
    assert_eq!(message, "bytes must be a Uint8Array, got an Array");
    let message = error_message(model.load_safetensors(&JsValue::NULL).unwrap_err());
    assert_eq!(message, "bytes must be a Uint8Array, got null");

    let message = error_message(preprocess_canvas(&array_buffer(&[0; 16]), 2.0, 2.0).unwrap_err());
    assert_eq!(
        message,
        "rgba must be a Uint8ClampedArray (a canvas's getImageData().data) or a Uint8Array, got an ArrayBuffer: \
         wrap it as `new Uint8ClampedArray(buffer)`"
    );
    let message = error_message(preprocess_canvas(&f32s(&[0.0; 16]), 2.0, 2.0).unwrap_err());
    assert!(message.ends_with("got a Float32Array"), "{message}");

    assert_eq!(model.to_safetensors().unwrap(), before, "a rejected argument changed the weights");
    assert_eq!(steps(&model), steps_before, "a rejected argument counted a step");

    // What is accepted: a plain array of numbers gives exactly what the same Float32Array gives,
    // the canvas's own Uint8ClampedArray is read, and the file as a Uint8Array loads.
    let as_numbers = plain_array(&image.iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
    assert_eq!(model.predict(&as_numbers).unwrap(), model.predict(&f32s(&image)).unwrap());
    let mut rgba = vec![0u8; 56 * 56 * 4];
    for y in 10..46 {
        for x in 24..32 {
            rgba[(y * 56 + x) * 4 + 3] = 255;
        }
    }
    let clamped: JsValue = js_sys::Uint8ClampedArray::from(rgba.as_slice()).into();
    let from_clamped = preprocess_canvas(&clamped, 56.0, 56.0).unwrap().expect("a stroke is a digit");
    assert_eq!(preprocess_canvas(&u8s(&rgba), 56.0, 56.0).unwrap(), Some(from_clamped));
    model.load_safetensors(&file).unwrap();
    assert_eq!(model.to_safetensors().unwrap(), before);
    model.train_step(&as_numbers, &u8s(&train.labels[..1])).unwrap();
    assert_eq!(steps(&model), steps_before + 1.0);
}

#[wasm_bindgen_test]
fn a_pointer_or_a_page_in_place_of_the_weights_is_named() {
    let mut model = Model::new(8.0).unwrap();
    let before = model.to_safetensors().unwrap();
    let pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 247640\n";
    let message = error_message(model.load_safetensors(&u8s(pointer)).unwrap_err());
    assert!(message.starts_with("weights file: the file is a Git LFS pointer, not the weights: run `git lfs pull`"));
    let page = b"\xEF\xBB\xBF\n<!DOCTYPE html>\n<html><head><title>lenet</title></head></html>";
    let message = error_message(Model::from_safetensors(&u8s(page)).err().expect("a page is refused"));
    assert!(message.starts_with("weights file: the file is an HTML page, not a weights file: check the URL"));
    assert_eq!(model.to_safetensors().unwrap(), before);
}

#[wasm_bindgen_test]
fn an_oversized_weights_buffer_is_refused_without_growing_memory() {
    assert_eq!(max_weights_file_bytes(), lenet::weights::MAX_WEIGHTS_FILE_BYTES as f64);
    let mut model = Model::new(9.0).unwrap();
    let before = model.to_safetensors().unwrap();
    // The refusal's own small allocations (the message) happen once before measuring.
    let just_over = js_sys::Uint8Array::new_with_length(lenet::weights::MAX_WEIGHTS_FILE_BYTES as u32 + 1);
    let message = error_message(model.load_safetensors(&just_over).unwrap_err());
    assert!(message.starts_with(&format!(
        "weights file: the file is {} bytes, larger than any LeNet-5 weights file ({} bytes at most",
        lenet::weights::MAX_WEIGHTS_FILE_BYTES + 1,
        lenet::weights::MAX_WEIGHTS_FILE_BYTES
    )));

    // Larger than the whole of wasm memory now: copying it in would have to grow the memory.
    let memory = memory_bytes();
    let size = memory as u32 + (16 << 20);
    let huge = js_sys::Uint8Array::new_with_length(size);
    let message = error_message(model.load_safetensors(&huge).unwrap_err());
    assert!(message.contains(&format!("the file is {size} bytes")), "{message}");
    let message = error_message(Model::from_safetensors(&huge).err().expect("refused"));
    assert!(message.contains(&format!("the file is {size} bytes")), "{message}");
    assert_eq!(memory_bytes(), memory, "wasm memory grew while refusing a {size}-byte buffer");
    assert_eq!(model.to_safetensors().unwrap(), before);
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
    let result = model.explain(&f32s(&image), None).unwrap();
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
    assert_eq!(float32_field(&result, "probabilities"), model.predict(&f32s(&image)).unwrap());
    let logits = float32_field(&result, "logits");
    let predicted = number_field(&result, "predicted") as usize;
    assert_eq!(predicted, lenet::train::argmax(logits.iter().copied()));
    assert_eq!(number_field(&result, "class") as usize, predicted);
    let evidence = js_sys::Reflect::get(&result, &"evidence".into()).unwrap().as_string().unwrap();
    assert!(lenet::explain::REGION_NAMES.contains(&evidence.as_str()), "evidence: {evidence}");

    // Between kinks the network is linear: a small step along the gradient of logit[3] raises
    // it by the step times the gradient's squared norm. The digit is moved into [0.05, 0.95]
    // with a little pattern, so that no pixel leaves [0, 1] and no 2×2 pooling window of a flat
    // background is a tie (a kink at the very point where the gradient is taken).
    let image: Vec<f32> =
        image.iter().enumerate().map(|(i, &x)| 0.05 + 0.85 * x + 0.05 * ((i * 7919) % 101) as f32 / 101.0).collect();
    let other = model.explain(&f32s(&image), Some(3.0)).unwrap();
    assert_eq!(number_field(&other, "class"), 3.0);
    let gradient = float32_field(&other, "saliency");
    let norm2: f64 = gradient.iter().map(|&g| f64::from(g) * f64::from(g)).sum();
    let step = 1e-3 / norm2.sqrt();
    let moved: Vec<f32> = image.iter().zip(&gradient).map(|(&x, &g)| x + (step * f64::from(g)) as f32).collect();
    let moved_logit = float32_field(&model.explain(&f32s(&moved), Some(3.0)).unwrap(), "logits")[3];
    let expected = step * norm2;
    let rise = f64::from(moved_logit - float32_field(&other, "logits")[3]);
    assert!((rise - expected).abs() <= 5e-2 * expected, "rise {rise}, gradient says {expected}");

    let filters = model.filters();
    let reference = lenet::LeNet5::new(0);
    assert_eq!(float32_field(&filters, "conv1"), reference.parameters()[0]);
    assert_eq!(float32_field(&filters, "conv2"), reference.parameters()[2]);

    // Checked as given: a u32 parameter had read -1 as 4294967295, 2.5 as 2 and NaN as 0.
    for (class, shown) in [(10.0, "10"), (-1.0, "-1"), (2.5, "2.5"), (f64::NAN, "NaN"), (1e10, "10000000000")] {
        let message = error_message(model.explain(&f32s(&image), Some(class)).unwrap_err());
        assert_eq!(message, format!("class must be a digit 0–9, got {shown}"));
    }
    assert!(error_message(model.explain(&f32s(&image[..100]), None).unwrap_err()).contains("got (100)"));
    let mut nan = image.clone();
    nan[29] = f32::NAN;
    assert!(error_message(model.explain(&f32s(&nan), None).unwrap_err()).contains("row 1, column 1"));
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
    let whole = median(&mut || assert!(model.explain(&f32s(&image), None).unwrap().is_object()));
    let core = median(&mut || assert!(explainer.explain(&network, &image, None).unwrap().1.class < 10));
    let line = format!(
        "benchmark: explain one image, 200 calls, median of 20 rounds: {whole:.4} ms per call; \
         Explainer alone, buffers kept: {core:.4} ms (this test build, without LTO)"
    );
    web_sys::console::log_1(&line.into());
}

#[wasm_bindgen_test]
fn strokes_render_to_the_same_bytes_as_natively() {
    use lenet::wasm::preprocess_strokes;
    let get = |value: &JsValue, key: &str| js_sys::Reflect::get(value, &JsValue::from_str(key)).unwrap();
    let (xy, ends) = common::four_strokes();
    let result = preprocess_strokes(&f32s(&xy), &u32s(&ends), 280.0, 280.0).unwrap();
    assert_eq!(get(&result, "status").as_string().as_deref(), Some("digit"));
    let pixels = js_sys::Float32Array::from(get(&result, "pixels")).to_vec();
    assert_eq!(pixels.len(), 784);
    assert_eq!(common::fnv1a(&pixels), common::FOUR_STROKES_FNV1A, "{:#x}", common::fnv1a(&pixels));

    let status =
        |xy: &[f32], ends: &[u32]| get(&preprocess_strokes(&f32s(xy), &u32s(ends), 280.0, 280.0).unwrap(), "status");
    assert_eq!(status(&[], &[]).as_string().as_deref(), Some("empty"));
    assert_eq!(status(&[10.0, 10.0, 12.0, 11.0], &[2]).as_string().as_deref(), Some("too_small"));
    assert!(get(&preprocess_strokes(&f32s(&[10.0, 10.0]), &u32s(&[1]), 280.0, 280.0).unwrap(), "pixels").is_undefined());

    let message = |xy: &[f32], ends: &[u32], w: f64| {
        error_message(preprocess_strokes(&f32s(xy), &u32s(ends), w, 280.0).unwrap_err())
    };
    assert!(message(&[1.0, 2.0, 3.0], &[1], 280.0).contains("its length 3 is odd"));
    assert!(message(&[1.0, 2.0, 3.0, 4.0], &[2, 1], 280.0).contains("ends[1] = 1: ends must be non-decreasing"));
    assert!(message(&[1.0, 2.0, 3.0, 4.0], &[1], 280.0).contains("must end at xy.length / 2 = 2"));
    assert!(message(&[1.0, 2.0, 3.0, 4.0], &[3], 280.0).contains("at most 2"));
    assert!(message(&[1.0, f32::NAN], &[1], 280.0).contains("stroke 0, point 0 is (1, NaN), not finite"));
    assert!(message(&[1.0, 2.0], &[1], 1e300).contains("pad_width must be above 0"));
    assert!(message(&[1.0, 2.0], &[1], 0.0).contains("pad_width must be above 0"));
}

#[wasm_bindgen_test]
fn shards_computed_by_two_replicas_give_the_weights_of_step() {
    let settings = object(&[("batch_size", 40.into()), ("seed", 3.into())]);
    let mut reference = fixture_session(&settings);
    let mut replicas = [fixture_session(&settings), fixture_session(&settings)];
    assert_eq!(replicas[0].shard_count(), 3);
    let shard_bytes = replicas[0].shard_bytes() as usize;
    assert_eq!(shard_bytes, 28 + 4 * 61_706);
    for _ in 0..12 {
        let expected = reference.step().unwrap();
        // Replica 0 computes shards 0..2, replica 1 shard 2; both apply all three.
        let mut all = replicas[0].compute_shards(0.0, 2.0).unwrap();
        all.extend(replicas[1].compute_shards(2.0, 3.0).unwrap());
        assert_eq!(all.len(), 3 * shard_bytes);
        // compute_shards_into writes the same bytes into a part of a larger array, and nothing
        // around it.
        let into = js_sys::Uint8Array::new_with_length((3 * shard_bytes) as u32);
        into.fill(9, 0, into.length());
        replicas[1]
            .compute_shards_into(0.0, 2.0, &into.subarray(shard_bytes as u32, (3 * shard_bytes) as u32))
            .unwrap();
        let into = into.to_vec();
        assert!(into[..shard_bytes].iter().all(|&b| b == 9), "compute_shards_into wrote outside its part");
        assert!(
            into[shard_bytes..] == all[..2 * shard_bytes],
            "compute_shards_into wrote other bytes than compute_shards"
        );
        for replica in &mut replicas {
            let outcome = replica.apply_shards(&u8s(&all)).unwrap();
            assert_eq!(get(&outcome, "step").as_f64(), get(&expected, "step").as_f64());
            assert_eq!(get(&outcome, "loss").as_f64(), get(&expected, "loss").as_f64());
        }
    }
    for replica in &replicas {
        assert_eq!(replica.checkpoint().unwrap(), reference.checkpoint().unwrap());
    }

    // Bad shards throw, naming the problem, and change nothing.
    let replica = &mut replicas[0];
    let before = replica.checkpoint().unwrap();
    let message = error_message(replica.compute_shards(-1.0, 1.0).unwrap_err());
    assert!(message.contains("start must be a shard index") && message.contains("-1"), "{message}");
    let message = error_message(replica.compute_shards(0.0, 4.0).unwrap_err());
    assert!(message.contains("3 shards"), "{message}");
    let short = js_sys::Uint8Array::new_with_length(shard_bytes as u32);
    let message = error_message(replica.compute_shards_into(0.0, 2.0, &short).unwrap_err());
    let expected = format!(
        "out must hold (end − start) × shard_bytes() = {} bytes for shards 0..2; it holds {shard_bytes}",
        2 * shard_bytes
    );
    assert!(message.contains(&expected), "{message}");
    let message = error_message(replica.compute_shards_into(0.0, 1.0, &f32s(&[0.0])).unwrap_err());
    assert!(message.contains("out must be a Uint8Array, got a Float32Array"), "{message}");
    let message =
        error_message(replica.compute_shards_into(0.0, 1.0, &js_sys::ArrayBuffer::new(8).into()).unwrap_err());
    assert!(message.contains("wrap it as `new Uint8Array(buffer)`"), "{message}");
    // The range is the session's to check, whatever the length of `out`.
    for (start, end) in [(2.0, 1.0), (0.0, 4e9)] {
        let message = error_message(replica.compute_shards_into(start, end, &short).unwrap_err());
        assert!(message.contains(&format!("shards {start}..{end}")) && message.contains("3 shards"), "{message}");
    }
    let shards = replica.compute_shards(0.0, 3.0).unwrap();
    let message = error_message(replica.apply_shards(&u8s(&shards[..shards.len() - 4])).unwrap_err());
    // The length is checked before the bytes are copied into wasm memory.
    let expected = format!("this step's 3 shard records, {} bytes", 3 * shard_bytes);
    assert!(
        message.contains(&expected) && message.contains(&format!("got {} bytes", 3 * shard_bytes - 4)),
        "{message}"
    );
    let message = error_message(replica.apply_shards(&u8s(&shards[shard_bytes..])).unwrap_err());
    assert!(message.contains(&expected), "{message}");
    let message = error_message(replica.apply_shards(&f32s(&[0.0])).unwrap_err());
    assert!(message.contains("bytes must be a Uint8Array"), "{message}");
    assert_eq!(replica.checkpoint().unwrap(), before);
}

#[wasm_bindgen_test]
fn apply_shards_takes_the_share_written_by_compute_shards_into_from_its_own_copy() {
    let settings = object(&[("batch_size", 40.into()), ("seed", 3.into())]);
    let mut reference = fixture_session(&settings);
    let [mut a, mut b, mut twin] = [(); 3].map(|()| fixture_session(&settings));
    let shard_bytes = a.shard_bytes();
    // One buffer, as the workers' shared one: a writes shards 0..2 into it, b shard 2.
    let buffer = js_sys::Uint8Array::new_with_length(3 * shard_bytes);
    let share = |session: &mut SessionJs, start: u32, end: u32| {
        let part = buffer.subarray(start * shard_bytes, end * shard_bytes);
        session.compute_shards_into(f64::from(start), f64::from(end), &part).unwrap();
    };
    let loss = |outcome: &JsValue| get(outcome, "loss").as_f64().unwrap();
    for _ in 0..6 {
        let expected = loss(&reference.step().unwrap());
        share(&mut a, 0, 2);
        share(&mut b, 2, 3);
        // twin computes nothing, so it reads every shard from the buffer.
        for session in [&mut a, &mut b, &mut twin] {
            assert_eq!(loss(&session.apply_shards(&buffer).unwrap()), expected);
        }
    }
    for session in [&a, &b, &twin] {
        assert_eq!(session.checkpoint().unwrap(), reference.checkpoint().unwrap());
    }

    // a's share written over, in the buffer, by a session of another seed at the same step: a
    // reads the buffer whole, as twin does, and takes another step than the reference.
    let expected = loss(&reference.step().unwrap());
    share(&mut a, 0, 2);
    let mut other = fixture_session(&object(&[("batch_size", 40.into()), ("seed", 4.into())]));
    for _ in 0..6 {
        other.step().unwrap();
    }
    share(&mut other, 0, 2);
    share(&mut b, 2, 3);
    let from_buffer = loss(&twin.apply_shards(&buffer).unwrap());
    assert_ne!(from_buffer, expected);
    assert_eq!(loss(&a.apply_shards(&buffer).unwrap()), from_buffer);
    assert_eq!(a.checkpoint().unwrap(), twin.checkpoint().unwrap());
}
