//! Fuzz target: see `graylane::fuzzing::nats`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| graylane::fuzzing::nats(data));
