//! What the relay keeps about each alert: the records the [`crate::ledger`] produces and
//! the [`crate::storage`] keeps (sled encodes them with `proto::codec`). Plain data.

use filet_proto::alert::{AlertState, Content, Envelope, FieldSet, HistoryItem};
use filet_proto::policy::Disclosure;
use filet_proto::{AlertId, Principal, Timestamp, UnitRef};
use serde::{Deserialize, Serialize};

/// The acknowledgement of one recipient unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckRecord {
    /// The node that acknowledged.
    pub node: Principal,
    /// When.
    pub at: Timestamp,
    /// Index of its audit entry.
    pub audit_index: u64,
}

/// One recipient unit of an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientRecord {
    /// The unit.
    pub unit: UnitRef,
    /// The rules that permitted the disclosure.
    pub rules: Vec<String>,
    /// Their legal bases.
    pub legal_bases: Vec<String>,
    /// Fields disclosed.
    pub fields: FieldSet,
    /// Longest retention of the rules, ms.
    pub retention_ms: i64,
    /// Position in the unit's mailbox.
    pub seq: u64,
    /// Index of the `disclosed` audit entry.
    pub disclosed_index: u64,
    /// Set once a node of the unit acknowledges.
    pub acked: Option<AckRecord>,
}

impl RecipientRecord {
    /// A recipient from a routing decision.
    pub fn new(d: &Disclosure, seq: u64, disclosed_index: u64) -> Self {
        RecipientRecord {
            unit: d.recipient.clone(),
            rules: d.rules.clone(),
            legal_bases: d.legal_bases.clone(),
            fields: d.fields,
            retention_ms: d.retention_ms,
            seq,
            disclosed_index,
            acked: None,
        }
    }
}

/// Everything the relay keeps about one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// Always kept.
    pub envelope: Envelope,
    /// The whole content; `None` once purged at the end of retention.
    pub content: Option<Content>,
    /// Note of a located / cancel.
    pub note: Option<String>,
    /// Salt of the audit commitment (zeroed when purged).
    pub salt: [u8; 32],
    /// The sender's idempotency key.
    pub idempotency_key: [u8; 16],
    /// Index of the `posted` audit entry.
    pub posted_index: u64,
    /// Recipient units, in unit order.
    pub recipients: Vec<RecipientRecord>,
    /// For an original alert: its current state (follow-ups keep `Active`).
    pub state: AlertState,
    /// For an original alert: its life so far (follow-ups keep it empty).
    pub history: Vec<HistoryItem>,
    /// For an original alert: when it was closed (located, cancelled, expired).
    pub closed_at: Option<Timestamp>,
    /// The content was purged at the end of retention.
    pub purged: bool,
}

impl AlertRecord {
    /// The original alert of this message's thread (itself for an original).
    pub fn root(&self) -> AlertId {
        self.envelope.references.unwrap_or(self.envelope.id)
    }
}
