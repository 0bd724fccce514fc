//! Alerts as files (TOML) and as frames (bincode): parse, validate. Never a panic; what
//! validation accepts holds no forbidden character, is within every limit, and validates
//! again to itself (validation is idempotent).
#![no_main]

use filet_proto::alert::{is_forbidden_char, AlertDraft, AlertFile};
use filet_proto::codec::{decode_value, encode_value};
use filet_proto::Timestamp;
use libfuzzer_sys::fuzz_target;

/// The relay's clock in this target: 2026-11-29T03:00:00Z.
const NOW: Timestamp = Timestamp(1_795_921_200_000);

fn check(d: &AlertDraft) {
    let Ok(v) = d.validate(NOW) else { return };
    let texts = [
        &v.content.subject.reference,
        &v.content.subject.given_name,
        &v.content.subject.description,
        &v.content.last_seen.place,
        &v.content.instructions,
        &v.content.contact,
        &v.note,
    ];
    for t in texts.into_iter().flatten() {
        assert!(!t.chars().any(is_forbidden_char), "{t:?}");
        assert_eq!(t.trim(), t);
        assert!(t.chars().count() <= 280);
    }
    assert!(v.to.len() <= filet_proto::alert::MAX_RECIPIENTS);
    assert_eq!(v.validate(NOW).expect("a valid draft validates again"), v);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(file) = AlertFile::from_toml(text) {
            let d = file.into_draft();
            check(&d);
            if let Ok(bytes) = encode_value(&d) {
                let back: AlertDraft = decode_value(&bytes).expect("an encoded draft decodes");
                check(&back);
            }
        }
    }
    if let Ok(d) = decode_value::<AlertDraft>(data) {
        check(&d);
    }
});
