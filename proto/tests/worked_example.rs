//! The worked example of `docs/audit-log.md`: three entries, their leaf hashes, the root,
//! and the checkpoint signed with a fixed test key. Ed25519 is deterministic, so every value
//! is pinned; the same values were recomputed independently with Python's hashlib and
//! PyNaCl when the document was written (see the document).

// A test: a panic is the failure, with its message.
#![allow(clippy::unwrap_used)]

use filet_proto::audit::hex;
use filet_proto::checkpoint::{open_checkpoint, Checkpoint, NoteSigner, NoteVerifier};
use filet_proto::merkle::{self, MemoryTree};

const E0: &str = r#"{"v":1,"index":0,"time":"2026-11-29T03:00:00.000Z","event":"relay_started","software":"filet-relay 0.1.0","origin":"filet.example/worked-example"}"#;
const E1: &str = r#"{"v":1,"index":1,"time":"2026-11-29T03:00:00.000Z","event":"agreement_loaded","agreement":"table-regionale-quebec-esj","version":1,"sha256":"8b00baa597b762d6a11e2bb3a5cd1f6d4d5e0d9b5b8b6c0a1c7f3d2e4f5a6b7c"}"#;
const E2: &str = r#"{"v":1,"index":2,"time":"2026-11-29T03:00:01.250Z","event":"refused","principal":"SPVQ/ESM/spvq-esm-01","reason":"not_permitted","detail":"no rule permits SPVQ/ESM to send runaway alerts to ULAVAL/RECHERCHE","category":"runaway","recipient":"ULAVAL/RECHERCHE","alert":null}"#;

fn signer() -> NoteSigner {
    NoteSigner::from_seed("filet.example/worked-example", &[7u8; 32])
        .expect("a fixed 32-byte seed is a valid Ed25519 key")
}

#[test]
fn worked_example_values() {
    for (i, e) in [E0, E1, E2].iter().enumerate() {
        let parsed = filet_proto::audit::Entry::from_bytes(e.as_bytes()).unwrap();
        assert_eq!(parsed.index, i as u64);
    }
    let leaves: Vec<String> = [E0, E1, E2]
        .iter()
        .map(|e| hex(&merkle::leaf_hash(e.as_bytes())))
        .collect();
    let mut t = MemoryTree::new();
    for e in [E0, E1, E2] {
        t.push_leaf(e.as_bytes());
    }
    let root = t.root();
    let cp = Checkpoint {
        origin: "filet.example/worked-example".into(),
        size: 3,
        root,
        extensions: Vec::new(),
    };
    let note = signer().sign(&cp.to_text()).unwrap();
    let vkey = signer().verifier_key();
    assert_eq!(leaves, WANT_LEAVES);
    assert_eq!(hex(&root), WANT_ROOT);
    assert_eq!(vkey, WANT_VKEY);
    assert_eq!(note, WANT_NOTE);
    let v = NoteVerifier::parse(&vkey).unwrap();
    assert_eq!(open_checkpoint(&note, &v).unwrap(), cp);
    let proof = merkle::inclusion_proof(&t, 2, 3).unwrap();
    assert_eq!(
        proof.iter().map(|h| hex(h)).collect::<Vec<_>>(),
        WANT_PROOF_2
    );
}

const WANT_LEAVES: [&str; 3] = [
    "0c63f23e44ed957b2a886f1bbd8d6423b9bed84ef4eab1ff7d9168783f62b06d",
    "e61e15e3956c16bc0ccf4150575c86b0c0163eb5f4fafad6c0e5ce32977a35b8",
    "3f578e5b3a5ff2bf9ffc4ed7be087f8aa1ea44fa3b548763ea773238188eac25",
];
const WANT_ROOT: &str = "9b9bb4da949c3d692cadb6f873d82070ffa522b8af46f3af12f0c1939e9c5fa9";
const WANT_VKEY: &str =
    "filet.example/worked-example+4db8c5e5+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs";
const WANT_NOTE: &str = "filet.example/worked-example\n3\nm5u02pScPWksrbb4c9ggcP+lIrivRvOvEvDBk56cX6k=\n\n\u{2014} filet.example/worked-example TbjF5ZXxV0FsOkqzcTW13dbq8WpQEXQ6Ldr0HSrC9fKcH8RmGwgSl7pvodmRzlTzEnt0jQCZhNLs82IbxhKucU0sXgE=\n";
const WANT_PROOF_2: [&str; 1] =
    ["768b51c0f68d0fb1c5e4e442b91b47f8351ab026c9cee1a5baead4bddf61f4c9"];
