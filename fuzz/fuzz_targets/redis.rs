//! Fuzz target: see `graylane::fuzzing::redis`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| graylane::fuzzing::redis(data));
