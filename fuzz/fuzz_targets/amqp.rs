//! Fuzz target: see `graylane::fuzzing::amqp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| graylane::fuzzing::amqp(data));
