//! The drawing preprocessing on arbitrary canvases and ink images (see `lenet_fuzz::preprocess`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lenet_fuzz::preprocess(data);
});
