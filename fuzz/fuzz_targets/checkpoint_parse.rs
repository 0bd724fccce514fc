//! Checkpoints and signed notes (C2SP): `Checkpoint::parse`, `NoteVerifier::parse`,
//! `NoteVerifier::open` with a fixed key, `open_checkpoint`; and the same text signed with
//! that key, which must open to itself.
#![no_main]

use std::sync::OnceLock;

use filet_proto::checkpoint::{open_checkpoint, Checkpoint, NoteSigner, NoteVerifier};
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static (NoteSigner, NoteVerifier) {
    static KEYS: OnceLock<(NoteSigner, NoteVerifier)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let signer = NoteSigner::from_seed("filet.relay/fuzz", &[7u8; 32]).expect("a signer");
        let verifier = NoteVerifier::parse(&signer.verifier_key()).expect("its verifier key");
        (signer, verifier)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (signer, verifier) = keys();
    if let Ok(cp) = Checkpoint::parse(text) {
        assert_eq!(Checkpoint::parse(&cp.to_text()).expect("re-parses"), cp);
    }
    let _ = NoteVerifier::parse(text);
    let _ = verifier.open(text);
    let _ = open_checkpoint(text, verifier);
    if let Ok(note) = signer.sign(text) {
        assert_eq!(verifier.open(&note).expect("a note it signed opens"), text);
        assert_eq!(
            open_checkpoint(&note, verifier).is_ok(),
            Checkpoint::parse(text).is_ok()
        );
    }
});
