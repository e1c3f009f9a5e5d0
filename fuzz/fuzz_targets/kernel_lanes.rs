//! Fuzz target: see `graylane::fuzzing::kernel_lanes`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| graylane::fuzzing::kernel_lanes(data));
