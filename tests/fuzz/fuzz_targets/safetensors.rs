//! The safetensors loader on arbitrary files and on real tensor data behind arbitrary headers
//! (see `lenet_fuzz::safetensors`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lenet_fuzz::safetensors(data);
});
