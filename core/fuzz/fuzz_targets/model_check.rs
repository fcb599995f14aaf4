//! The model check over any bytes: never panics, whatever the wire format holds.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    let _ = openautoglm::fuzzing::check_model(bytes);
});
