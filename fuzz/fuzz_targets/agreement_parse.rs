//! Agreement files: parse and validate; a valid agreement routes every unit's posts of
//! every category without panicking, never to the sender's own unit.
#![no_main]

use filet_proto::agreement::Agreement;
use filet_proto::policy;
use filet_proto::Category;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(a) = Agreement::parse(text, "fuzz.toml") else { return };
    for sender in a.units().take(32) {
        for c in Category::ALL {
            if let Ok(ds) = policy::route_alert(&a, &sender, *c, &[]) {
                assert!(ds.iter().all(|d| d.recipient != sender));
                assert!(ds.iter().all(|d| !d.rules.is_empty()));
            }
        }
    }
});
