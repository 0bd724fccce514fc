//! Audit log entries (requirements §7).
//!
//! An entry is one event, stored and hashed as its exact bytes: compact JSON (UTF-8, no
//! whitespace, keys in the order below), e.g.
//!
//! ```json
//! {"v":1,"index":3,"time":"2026-11-29T03:00:00.120Z","event":"disclosed","alert":"01KB…",
//!  "sender":"SPVQ/ESM/esm-01","recipient":"DPJ/RTS","category":"runaway","status":"actual",
//!  "rules":["police-vers-protection"],"legal_bases":["LPJ art. 35.4 …"],"fields":["subject.reference",…]}
//! ```
//!
//! The Merkle leaf of entry `i` is `SHA-256(0x00 ‖ bytes)` (RFC 9162 §2.1.1), so a verifier
//! needs only the bytes; the JSON is for reading them. Entries hold metadata and a salted
//! commitment to the content, never the content: `commitment = SHA-256(salt ‖ content)`
//! where `content` is the alert's content as compact JSON (its note, when there is one, as
//! a last key `"note"`: see [`committed_content`]) and `salt` 32 random bytes kept
//! with the alert (and purged with it). `subject.reference` appears only as
//! `HMAC-SHA256(relay key, reference)` (`subject_ref`). `docs/audit-log.md` gives the format
//! with a worked example.

use serde::{Deserialize, Serialize};

use crate::alert::{Category, Content, FieldSet, Kind, Risk, Status};
use crate::id::AlertId;
use crate::principal::{Principal, UnitRef};
use crate::time::Timestamp;

/// Version of the entry format.
pub const ENTRY_VERSION: u8 = 1;

/// Largest entry, in bytes. An entry holds only metadata; this bounds the parser.
pub const MAX_ENTRY_LEN: usize = 64 * 1024;

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Format version, [`ENTRY_VERSION`].
    pub v: u8,
    /// Position in the log (0-based); equal to the leaf index in the Merkle tree.
    pub index: u64,
    /// When the relay appended it.
    pub time: Timestamp,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// Why something was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// A connection whose certificate is invalid, from another CA, revoked, malformed, or
    /// names a party or unit the agreement does not know.
    UnknownIdentity,
    /// The agreement does not permit the disclosure.
    NotPermitted,
    /// The alert breaks a limit of requirements §5.
    Invalid,
    /// An update, `located` or `cancel` from outside the alert's sender party.
    NotOwner,
    /// The referenced alert does not exist or is closed.
    UnknownAlert,
    /// A recipient's mailbox is full.
    MailboxFull,
    /// The principal posts faster than its limit.
    RateLimited,
    /// A unit without audit rights asked for the audit log.
    AuditDenied,
    /// An update, `located` or `cancel` of an alert that is already closed (located,
    /// cancelled or expired).
    Closed,
}

impl RefusalReason {
    /// The name as written in entries and reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            RefusalReason::UnknownIdentity => "unknown_identity",
            RefusalReason::NotPermitted => "not_permitted",
            RefusalReason::Invalid => "invalid",
            RefusalReason::NotOwner => "not_owner",
            RefusalReason::UnknownAlert => "unknown_alert",
            RefusalReason::MailboxFull => "mailbox_full",
            RefusalReason::RateLimited => "rate_limited",
            RefusalReason::AuditDenied => "audit_denied",
            RefusalReason::Closed => "closed",
        }
    }
}

/// The events of the audit log, tagged by `"event"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The relay started with this log (first entry of every run).
    RelayStarted {
        /// The relay's software version.
        software: String,
        /// The log's origin (checkpoint origin line).
        origin: String,
    },
    /// The relay stopped cleanly: every post before this entry is stored.
    RelayStopped {
        /// The relay's software version.
        software: String,
    },
    /// An agreement was loaded (at start or reload).
    AgreementLoaded {
        /// Agreement id.
        agreement: String,
        /// Its version.
        version: u64,
        /// SHA-256 of the file, hex.
        sha256: String,
    },
    /// A certificate revocation list was put in force (at start, and at each reload that
    /// changed it), before any connection is checked against it.
    CrlLoaded {
        /// Its issuer (the agreement's CA), as a distinguished name.
        issuer: String,
        /// Its authority key identifier, hex, when it has one: which key of that CA
        /// signed it.
        authority_key_id: Option<String>,
        /// Its CRL number, decimal, when it has one.
        crl_number: Option<String>,
        /// SHA-256 of the CRL (DER), hex.
        sha256: String,
        /// When it was issued (`thisUpdate`).
        this_update: Timestamp,
        /// When the next one is due (`nextUpdate`); past it the list is stale.
        next_update: Timestamp,
        /// How many certificates it revokes.
        revoked: u64,
    },
    /// An alert (or update, located, cancel) was accepted.
    Posted {
        /// The alert id.
        alert: AlertId,
        /// What the message does.
        kind: Kind,
        /// For update/located/cancel: the alert it refers to.
        references: Option<AlertId>,
        /// Category.
        category: Category,
        /// Actual, exercise, test.
        status: Status,
        /// Risk.
        risk: Risk,
        /// Who posted it.
        sender: Principal,
        /// When it stops being delivered.
        expires_at: Timestamp,
        /// `SHA-256(salt ‖ content JSON)`, hex.
        commitment: String,
        /// `HMAC-SHA256(relay key, subject.reference)`, hex, when there is a reference.
        subject_ref: Option<String>,
        /// The recipient units, in order.
        recipients: Vec<UnitRef>,
    },
    /// A recipient unit is permitted to receive the alert: it was put in its mailbox.
    Disclosed {
        /// The alert.
        alert: AlertId,
        /// Who posted it.
        sender: Principal,
        /// The recipient unit.
        recipient: UnitRef,
        /// Category.
        category: Category,
        /// Actual, exercise, test.
        status: Status,
        /// The rules that permit it.
        rules: Vec<String>,
        /// Their legal bases.
        legal_bases: Vec<String>,
        /// The content fields the rules allow this recipient (those with a value in the
        /// alert are what it is told; an absent field is absent for it too).
        fields: FieldSet,
    },
    /// The alert was sent to a node of a recipient unit.
    Delivered {
        /// The alert.
        alert: AlertId,
        /// Who posted it.
        sender: Principal,
        /// The node it was sent to.
        recipient: Principal,
        /// The fields sent (those disclosed, narrowed if the agreement changed since).
        fields: FieldSet,
        /// The rules under which the check at delivery time permitted it (for a closing
        /// notice, those of its disclosure). Empty (the key absent) in entries written
        /// before deliveries recorded them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        rules: Vec<String>,
        /// The id of the agreement in force at delivery (absent in older entries).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agreement: Option<String>,
        /// Its version (absent in older entries).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agreement_version: Option<u64>,
    },
    /// A node acknowledged the alert for its unit.
    Acknowledged {
        /// The alert.
        alert: AlertId,
        /// Who posted it.
        sender: Principal,
        /// The node that acknowledged.
        recipient: Principal,
    },
    /// A waiting alert was not delivered because the current agreement no longer permits
    /// it (or it expired).
    Withheld {
        /// The alert.
        alert: AlertId,
        /// Who posted it.
        sender: Principal,
        /// The recipient unit.
        recipient: UnitRef,
        /// Why.
        reason: String,
    },
    /// Something was refused.
    Refused {
        /// The principal, if known (absent for a connection refused at the handshake).
        principal: Option<String>,
        /// Why, as a code.
        reason: RefusalReason,
        /// Why, for people (never alert content).
        detail: String,
        /// The category of a refused post.
        category: Option<Category>,
        /// The recipient at fault, for `not_permitted`.
        recipient: Option<String>,
        /// The alert concerned, when there is one.
        alert: Option<AlertId>,
    },
    /// An alert reached its expiry time.
    Expired {
        /// The alert.
        alert: AlertId,
        /// Who posted it.
        sender: Principal,
    },
    /// An alert's content was erased from the store at the end of its retention.
    Purged {
        /// The alert.
        alert: AlertId,
        /// Who posted it.
        sender: Principal,
    },
    /// A post whose entries were logged but whose store write did not complete before the
    /// relay stopped: no receipt was given and nothing was delivered.
    Voided {
        /// The alert.
        alert: AlertId,
        /// Who posted it.
        sender: Principal,
        /// What happened.
        reason: String,
    },
}

impl Event {
    /// The event name, as in the `"event"` key.
    pub fn name(&self) -> &'static str {
        match self {
            Event::RelayStarted { .. } => "relay_started",
            Event::RelayStopped { .. } => "relay_stopped",
            Event::AgreementLoaded { .. } => "agreement_loaded",
            Event::CrlLoaded { .. } => "crl_loaded",
            Event::Posted { .. } => "posted",
            Event::Disclosed { .. } => "disclosed",
            Event::Delivered { .. } => "delivered",
            Event::Acknowledged { .. } => "acknowledged",
            Event::Withheld { .. } => "withheld",
            Event::Refused { .. } => "refused",
            Event::Expired { .. } => "expired",
            Event::Purged { .. } => "purged",
            Event::Voided { .. } => "voided",
        }
    }

    /// Whether a party's own auditor may read this entry: its party is the sender or a
    /// recipient (requirements §7), or it is the refused principal.
    pub fn concerns_party(&self, party: &str) -> bool {
        match self {
            Event::RelayStarted { .. }
            | Event::RelayStopped { .. }
            | Event::AgreementLoaded { .. }
            | Event::CrlLoaded { .. } => false,
            Event::Posted {
                sender, recipients, ..
            } => sender.party() == party || recipients.iter().any(|r| r.party == party),
            Event::Disclosed {
                sender, recipient, ..
            }
            | Event::Withheld {
                sender, recipient, ..
            } => sender.party() == party || recipient.party == party,
            Event::Delivered {
                sender, recipient, ..
            }
            | Event::Acknowledged {
                sender, recipient, ..
            } => sender.party() == party || recipient.party() == party,
            Event::Expired { sender, .. }
            | Event::Purged { sender, .. }
            | Event::Voided { sender, .. } => sender.party() == party,
            Event::Refused {
                principal,
                recipient,
                ..
            } => {
                let of = |s: &Option<String>| {
                    s.as_deref()
                        .and_then(|s| s.split('/').next())
                        .is_some_and(|p| p == party)
                };
                of(principal) || of(recipient)
            }
        }
    }

    /// The alert the event is about, if any.
    pub fn alert(&self) -> Option<AlertId> {
        match self {
            Event::Posted { alert, .. }
            | Event::Disclosed { alert, .. }
            | Event::Delivered { alert, .. }
            | Event::Acknowledged { alert, .. }
            | Event::Withheld { alert, .. }
            | Event::Expired { alert, .. }
            | Event::Purged { alert, .. }
            | Event::Voided { alert, .. } => Some(*alert),
            Event::Refused { alert, .. } => *alert,
            Event::RelayStarted { .. }
            | Event::RelayStopped { .. }
            | Event::AgreementLoaded { .. }
            | Event::CrlLoaded { .. } => None,
        }
    }
}

/// Why entry bytes could not be read as an [`Entry`].
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// Over [`MAX_ENTRY_LEN`].
    #[error("entry of {0} bytes is over the limit of {MAX_ENTRY_LEN}")]
    TooLong(usize),
    /// Not an entry of this format.
    #[error("entry is not valid: {0}")]
    Malformed(String),
    /// An entry of a later format.
    #[error("entry format version {0} is newer than this program understands ({ENTRY_VERSION})")]
    Version(u8),
}

impl Entry {
    /// A new entry of the current format.
    pub fn new(index: u64, time: Timestamp, event: Event) -> Self {
        Entry {
            v: ENTRY_VERSION,
            index,
            time,
            event,
        }
    }

    /// The entry's bytes as stored and hashed: compact JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing these types to JSON cannot fail: no maps with non-string keys,
        // no non-finite floats.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads an entry from its bytes.
    ///
    /// # Errors
    /// [`EntryError`] for oversized, malformed or newer-format entries.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EntryError> {
        if bytes.len() > MAX_ENTRY_LEN {
            return Err(EntryError::TooLong(bytes.len()));
        }
        let e: Entry =
            serde_json::from_slice(bytes).map_err(|e| EntryError::Malformed(e.to_string()))?;
        if e.v > ENTRY_VERSION {
            return Err(EntryError::Version(e.v));
        }
        Ok(e)
    }
}

/// The salted commitment to an alert's content: `SHA-256(salt ‖ content)`, lowercase hex.
pub fn commitment(salt: &[u8; 32], content_json: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(salt);
    ctx.update(content_json);
    hex(ctx.finish().as_ref())
}

/// The bytes an alert's commitment covers: its content as compact JSON, with the message's
/// note as a last key `"note"` when there is one (without a note, exactly the content's
/// JSON). The note is content: changing it changes the commitment.
pub fn committed_content(content: &Content, note: Option<&str>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Committed<'a> {
        #[serde(flatten)]
        content: &'a Content,
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<&'a str>,
    }
    // Serializing these types to JSON cannot fail (string keys, finite floats checked at
    // validation; a non-finite one would serialize as null).
    serde_json::to_vec(&Committed { content, note }).unwrap_or_default()
}

/// The commitment of a `posted` entry: [`commitment`] of [`committed_content`].
pub fn content_commitment(salt: &[u8; 32], content: &Content, note: Option<&str>) -> String {
    commitment(salt, &committed_content(content, note))
}

/// The keyed hash of a subject reference: `HMAC-SHA256(key, reference)`, lowercase hex.
/// Only holders of the relay's key can link an entry to a file number.
pub fn subject_ref_mac(key: &[u8], reference: &str) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    hex(ring::hmac::sign(&k, reference.as_bytes()).as_ref())
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Principal {
        s.parse().unwrap()
    }

    #[test]
    fn entries_are_compact_json_with_a_fixed_key_order() {
        let e = Entry::new(
            3,
            "2026-11-29T03:00:00.120Z".parse().unwrap(),
            Event::Delivered {
                alert: AlertId([0; 16]),
                sender: p("SPVQ/ESM/esm-01"),
                recipient: p("DPJ/RTS/rts-01"),
                fields: FieldSet::EMPTY.with(crate::alert::FieldPath::Contact),
                rules: vec!["police-vers-protection".into()],
                agreement: Some("table".into()),
                agreement_version: Some(2),
            },
        );
        let bytes = e.to_bytes();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"v":1,"index":3,"time":"2026-11-29T03:00:00.120Z","event":"delivered","alert":"00000000000000000000000000","sender":"SPVQ/ESM/esm-01","recipient":"DPJ/RTS/rts-01","fields":["contact"],"rules":["police-vers-protection"],"agreement":"table","agreement_version":2}"#
        );
        assert_eq!(Entry::from_bytes(&bytes).unwrap(), e);
    }

    #[test]
    fn a_delivered_entry_written_before_rules_and_agreement_were_recorded_still_reads_and_keeps_its_bytes(
    ) {
        let old = r#"{"v":1,"index":3,"time":"2026-11-29T03:00:00.120Z","event":"delivered","alert":"00000000000000000000000000","sender":"SPVQ/ESM/esm-01","recipient":"DPJ/RTS/rts-01","fields":["contact"]}"#;
        let e = Entry::from_bytes(old.as_bytes()).unwrap();
        assert_eq!(
            e.event,
            Event::Delivered {
                alert: AlertId([0; 16]),
                sender: p("SPVQ/ESM/esm-01"),
                recipient: p("DPJ/RTS/rts-01"),
                fields: FieldSet::EMPTY.with(crate::alert::FieldPath::Contact),
                rules: Vec::new(),
                agreement: None,
                agreement_version: None,
            }
        );
        assert_eq!(e.to_bytes(), old.as_bytes());
    }

    #[test]
    fn party_auditors_see_their_party_only() {
        let ev = Event::Disclosed {
            alert: AlertId([1; 16]),
            sender: p("SPVQ/ESM/esm-01"),
            recipient: "DPJ/RTS".parse().unwrap(),
            category: Category::Runaway,
            status: Status::Actual,
            rules: vec!["r".into()],
            legal_bases: vec!["l".into()],
            fields: FieldSet::all(),
        };
        assert!(ev.concerns_party("SPVQ"));
        assert!(ev.concerns_party("DPJ"));
        assert!(!ev.concerns_party("CJQ"));
        let refused = Event::Refused {
            principal: Some("CSSC/PIVOT/x".into()),
            reason: RefusalReason::AuditDenied,
            detail: "d".into(),
            category: None,
            recipient: None,
            alert: None,
        };
        assert!(refused.concerns_party("CSSC"));
        assert!(!refused.concerns_party("SPVQ"));
    }

    #[test]
    fn known_answer_commitment_and_mac() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            subject_ref_mac(b"Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // SHA-256 of 32 zero bytes followed by "{}".
        let c = commitment(&[0; 32], b"{}");
        assert_eq!(c.len(), 64);
        assert_ne!(c, commitment(&[1; 32], b"{}"));
    }

    #[test]
    fn the_note_is_committed_content_and_a_note_change_changes_the_commitment() {
        let content = Content {
            contact: Some("418".into()),
            ..Content::default()
        };
        let plain = serde_json::to_vec(&content).unwrap();
        // Without a note: exactly the content's JSON, as before notes were committed.
        assert_eq!(committed_content(&content, None), plain);
        let with = committed_content(&content, Some("vue au parc"));
        assert_eq!(
            std::str::from_utf8(&with).unwrap(),
            format!(
                "{},\"note\":\"vue au parc\"}}",
                std::str::from_utf8(&plain[..plain.len() - 1]).unwrap()
            )
        );
        let salt = [7; 32];
        let a = content_commitment(&salt, &content, Some("vue au parc"));
        assert_ne!(a, content_commitment(&salt, &content, Some("vue au parc.")));
        assert_ne!(a, content_commitment(&salt, &content, None));
        assert_eq!(a, commitment(&salt, &with));
    }

    #[test]
    fn refuses_oversized_and_newer_entries() {
        assert!(matches!(
            Entry::from_bytes(&vec![b' '; MAX_ENTRY_LEN + 1]),
            Err(EntryError::TooLong(_))
        ));
        let newer = br#"{"v":9,"index":0,"time":"2026-11-29T03:00:00Z","event":"relay_started","software":"x","origin":"o"}"#;
        assert!(matches!(
            Entry::from_bytes(newer),
            Err(EntryError::Version(9))
        ));
    }
}
