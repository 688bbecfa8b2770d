//! The IDX reader on arbitrary bytes, plain and gzipped (see `lenet_fuzz::idx`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lenet_fuzz::idx(data);
});
