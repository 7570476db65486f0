#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| twirl_fuzz::prefixed_framer(data));
