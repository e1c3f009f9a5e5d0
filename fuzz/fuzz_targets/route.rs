//! Fuzz target: see `graylane::fuzzing::route`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| graylane::fuzzing::route(data));
