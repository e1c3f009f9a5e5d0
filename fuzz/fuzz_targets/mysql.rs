//! Fuzz target: see `graylane::fuzzing::mysql`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| graylane::fuzzing::mysql(data));
