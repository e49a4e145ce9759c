#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| detcd::fuzzing::backup_file(data));
