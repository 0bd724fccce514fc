//! Audit log entries (canonical JSON): `Entry::from_bytes`. Never a panic; an entry that
//! parses writes back to bytes that parse to the same entry and write the same bytes.
#![no_main]

use filet_proto::audit::Entry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = Entry::from_bytes(data) {
        let bytes = e.to_bytes();
        let again = Entry::from_bytes(&bytes).expect("written bytes parse");
        assert_eq!(again.to_bytes(), bytes);
    }
});
