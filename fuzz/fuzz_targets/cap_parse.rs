//! CAP 1.2 XML (safe parsing, no entities or DTDs): `cap::parse_bytes`, `cap::check`,
//! `cap::import`. Never a panic, whatever the bytes.
#![no_main]

use filet_proto::cap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cap::parse_bytes(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cap::check(text);
        if let Ok(imported) = cap::import(text) {
            let _ = imported;
        }
    }
});
