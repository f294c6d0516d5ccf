#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| filter_user::fuzz_targets::frame(data));
