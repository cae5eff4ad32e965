//! Any text as a configuration file: loading and validation never panic, and an accepted file
//! always has a summary.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(loaded) = ferrolb::config::load_str("fuzz.toml", text) {
            let _ = loaded.config.summary();
        }
    }
});
