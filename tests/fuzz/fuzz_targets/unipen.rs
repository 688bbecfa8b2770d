//! The UNIPEN reader on arbitrary segment files and includes (see `lenet_fuzz::unipen`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = lenet_fuzz::unipen(data);
});
