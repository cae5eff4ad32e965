//! Any text as a pool address: parsing never panics, and what parses prints back to itself.
#![no_main]
use ferrolb::ipam::IpRange;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(range) = text.parse::<IpRange>() {
            let again: IpRange = range.to_string().parse().expect("Display output parses");
            assert_eq!(again, range);
            let total: u128 = range
                .to_cidrs()
                .iter()
                .map(|net| IpRange::from_net(*net).size())
                .fold(0u128, |a, b| a.saturating_add(b));
            assert_eq!(total, range.size());
        }
    }
});
