//! The relay protocol's messages (`filet/1`), as carried in frames by [`crate::codec`].
//!
//! A node opens one bidirectional QUIC stream and sends [`ClientFrame`]s, each with a
//! request id of its choosing; the relay answers each with a [`ServerFrame::Response`]
//! carrying the same id, in any order (requests are pipelined). After a
//! [`Request::Subscribe`], the relay also pushes [`ServerFrame::Delivery`] frames on that
//! stream. `docs/protocol.md` describes the flows and the version rule.

use serde::{Deserialize, Serialize};

use crate::alert::{AlertDraft, Disclosed, FieldSet, InvalidAlert};
use crate::id::AlertId;
use crate::principal::{Principal, UnitRef};
use crate::time::Timestamp;

/// The ALPN protocol id of this version of the protocol. A change that an older peer
/// cannot decode takes a new ALPN id (`filet/2`); the relay may offer several.
pub const ALPN: &[u8] = b"filet/1";

/// Most alerts returned by one [`Request::Inbox`].
pub const MAX_INBOX_PAGE: usize = 100;

/// Most audit entries returned by one [`Request::AuditEntries`].
pub const MAX_ENTRIES_PER_PAGE: u64 = 1000;

/// A request from a node, with the node's request id (echoed in the response).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientFrame {
    /// Chosen by the node; the response carries it back.
    pub id: u64,
    /// What the node asks.
    pub request: Request,
}

/// What a node can ask of the relay.
// A request is decoded once and moved once; boxing the draft would cost an allocation
// per post for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Who am I, and what may I send? Answered with [`Response::WhoAmI`].
    WhoAmI,
    /// Post an alert (or an update, `located`, `cancel`). Answered with a
    /// [`Response::Receipt`] once everything is durable, or a refusal.
    Post {
        /// The alert.
        draft: AlertDraft,
        /// Random key chosen by the node for this post: posting again with the same key
        /// (after a lost connection) returns the first receipt instead of a second alert.
        idempotency_key: [u8; 16],
    },
    /// List what waits in this unit's mailbox (not yet acknowledged), oldest first, after
    /// mailbox position `after_seq` (0 for the start). Answered with [`Response::Inbox`].
    Inbox {
        /// Only entries with a higher [`Disclosed::seq`].
        after_seq: u64,
    },
    /// Push every waiting alert now and each new one as it arrives, as
    /// [`ServerFrame::Delivery`] frames on this stream. Answered with
    /// [`Response::Subscribed`].
    Subscribe,
    /// Acknowledge an alert for this unit. Answered with [`Response::Acked`].
    Ack {
        /// The alert.
        alert: AlertId,
    },
    /// The newest signed checkpoint. Answered with [`Response::Checkpoint`].
    AuditCheckpoint,
    /// One alert (or update, located, cancel): for the sender's party, the whole alert
    /// and its recipients; for a recipient unit, what it may see. Answered with
    /// [`Response::Alert`].
    GetAlert {
        /// The message id.
        alert: AlertId,
    },
    /// The audit entries of `start..end` that this principal may read (a full auditor:
    /// all; a party auditor: those where its party is sender or recipient), scanning at
    /// most [`MAX_ENTRIES_PER_PAGE`] indices and stopping early to keep the frame under
    /// its limit. Answered with [`Response::Entries`]; ask again from its `next`.
    AuditEntries {
        /// First index.
        start: u64,
        /// One past the last index (at most `tree_size`).
        end: u64,
        /// The tree size the inclusion proofs refer to (that of a checkpoint).
        tree_size: u64,
        /// Include an inclusion proof with each entry (always on for party auditors, who
        /// cannot recompute the tree).
        proofs: bool,
    },
    /// Inclusion proof of entry `index` in the tree of `tree_size` (RFC 9162 §2.1.3).
    /// Answered with [`Response::Proof`].
    AuditInclusion {
        /// The entry.
        index: u64,
        /// The tree size.
        tree_size: u64,
    },
    /// Consistency proof between tree sizes `old_size` and `new_size` (RFC 9162 §2.1.4).
    /// Answered with [`Response::Proof`].
    AuditConsistency {
        /// The older size.
        old_size: u64,
        /// The newer size.
        new_size: u64,
    },
    /// Where an alert of the asker's party stands with each recipient unit. Answered with
    /// [`Response::Status`]; `UnknownAlert` for an alert of another party.
    Status {
        /// The alert (or follow-up) id.
        alert: AlertId,
    },
}

/// A frame from the relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The answer to the request with this id.
    Response {
        /// The request id.
        id: u64,
        /// The outcome.
        result: Result<Response, RelayError>,
    },
    /// An alert pushed to a subscribed stream.
    Delivery(Disclosed),
    /// The relay is going away (shutdown); reconnect later.
    Closing {
        /// Why, for people.
        reason: String,
    },
}

/// A successful answer.
// Answers are encoded once and dropped: boxing the large ones buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// The principal of this connection and its place in the agreement.
    WhoAmI(WhoAmI),
    /// The post is durable: alert, mailbox entries and audit entries are flushed.
    Receipt(Receipt),
    /// What waits in this unit's mailbox, oldest first, at most [`MAX_INBOX_PAGE`].
    Inbox {
        /// The alerts.
        alerts: Vec<Disclosed>,
        /// More wait after the last one: ask again with its `seq`.
        more: bool,
    },
    /// Deliveries will follow on this stream.
    Subscribed,
    /// The acknowledgement is durable.
    Acked {
        /// The alert acknowledged.
        alert: AlertId,
        /// Index of the `acknowledged` audit entry.
        audit_index: u64,
    },
    /// A signed checkpoint (C2SP signed note holding a C2SP tlog-checkpoint), as text.
    Checkpoint(String),
    /// Audit entries (with their inclusion proofs when asked).
    Entries {
        /// The readable entries of the scanned range, in index order.
        entries: Vec<EntryWithProof>,
        /// The first index not scanned: continue from here (equal to `end` when done).
        next: u64,
    },
    /// A Merkle proof: the hashes, in RFC 9162 order.
    Proof(Vec<[u8; 32]>),
    /// One alert as this unit may see it.
    Alert {
        /// The alert.
        alert: Disclosed,
        /// Its recipient units (only for the sender's party; empty otherwise).
        recipients: Vec<UnitRef>,
    },
    /// The answer to [`Request::Status`].
    Status {
        /// The alert.
        alert: AlertId,
        /// One per recipient unit, in unit order.
        recipients: Vec<RecipientStatus>,
    },
}

/// Where an alert stands with one recipient unit (for the sender's party).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientStatus {
    /// The recipient unit.
    pub unit: UnitRef,
    /// The rules that permitted the disclosure.
    pub rules: Vec<String>,
    /// Their legal bases.
    pub legal_bases: Vec<String>,
    /// The fields disclosed.
    pub fields: FieldSet,
    /// Index of the `disclosed` audit entry.
    pub disclosed_index: u64,
    /// The node that acknowledged for the unit, when and the audit index; `None` while
    /// unacknowledged.
    pub acked: Option<(Principal, Timestamp, u64)>,
}

/// The answer to [`Request::WhoAmI`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhoAmI {
    /// Derived from the connection's certificate.
    pub principal: Principal,
    /// The agreement's id.
    pub agreement_id: String,
    /// The agreement's version.
    pub agreement_version: u64,
    /// Rule ids whose `from` includes this unit.
    pub may_send_under: Vec<String>,
    /// Rule ids whose `to` includes this unit.
    pub may_receive_under: Vec<String>,
    /// `full`, `party` or `none`: this unit's right to read the audit log.
    pub audit_right: String,
}

/// The promise the relay makes for a post (requirements §6): everything below is durable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// The relay-assigned alert id.
    pub alert: AlertId,
    /// When the relay received it.
    pub received_at: Timestamp,
    /// When it stops being delivered.
    pub expires_at: Timestamp,
    /// Index of the `posted` audit entry.
    pub posted_index: u64,
    /// One per recipient unit, in unit order.
    pub recipients: Vec<ReceiptRecipient>,
    /// A signed checkpoint whose tree covers every index of this receipt.
    pub checkpoint: String,
    /// True when this answers a repeated post (same idempotency key): nothing new was done.
    pub duplicate: bool,
}

/// One recipient of a post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiptRecipient {
    /// The recipient unit.
    pub unit: UnitRef,
    /// The rules that permitted it.
    pub rules: Vec<String>,
    /// The fields it gets.
    pub fields: FieldSet,
    /// Index of the `disclosed` audit entry.
    pub audit_index: u64,
}

/// An audit entry (its exact bytes, canonical JSON) and its inclusion proof.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryWithProof {
    /// Position in the log.
    pub index: u64,
    /// The entry as hashed into the tree.
    pub entry: Vec<u8>,
    /// Inclusion proof in the tree of the requested size (empty when not asked).
    pub proof: Vec<[u8; 32]>,
}

/// Why the relay refused or failed a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayError {
    /// Machine-readable cause.
    pub code: ErrorCode,
    /// For people: what happened and what to do, naming the principal, field or rule.
    pub message: String,
    /// For [`ErrorCode::RateLimited`] and [`ErrorCode::Busy`]: retry after this many
    /// milliseconds.
    pub retry_after_ms: Option<u64>,
    /// For [`ErrorCode::InvalidAlert`]: each field and its problem.
    pub invalid: Option<InvalidAlert>,
}

/// The causes of a refusal. Stable: new causes are added at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The alert breaks a limit of requirements §5.
    InvalidAlert,
    /// The agreement does not permit this (sender, category, recipient).
    NotPermitted,
    /// The referenced alert does not exist (or is not visible to this unit).
    UnknownAlert,
    /// Only the sender's own party may update, locate or cancel an alert.
    NotOwner,
    /// The alert is closed (located, cancelled or expired).
    Closed,
    /// Too many posts from this principal; see `retry_after_ms`.
    RateLimited,
    /// A recipient's mailbox is full; nothing was posted.
    MailboxFull,
    /// The relay is overloaded or shutting down; see `retry_after_ms`.
    Busy,
    /// This unit may not read the audit log (or these entries).
    AuditDenied,
    /// A request argument is out of range (e.g. an index past the tree size).
    BadRequest,
    /// The relay failed to store; nothing was acknowledged.
    Internal,
}

impl RelayError {
    /// An error with a code and message and nothing else.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_ms: None,
            invalid: None,
        }
    }
}

impl std::fmt::Display for RelayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(ms) = self.retry_after_ms {
            write!(f, " (retry in {ms} ms)")?;
        }
        Ok(())
    }
}

impl std::error::Error for RelayError {}

/// QUIC application close codes the relay uses (`CONNECTION_CLOSE` with a reason text).
pub mod close {
    /// Normal close.
    pub const OK: u32 = 0;
    /// The certificate's principal is not in the agreement (or malformed, or revoked).
    pub const UNKNOWN_PRINCIPAL: u32 = 0x10;
    /// The certificate was revoked (CRL reload).
    pub const REVOKED: u32 = 0x11;
    /// The node broke the protocol (bad frame, oversized frame, timeout mid-frame).
    pub const PROTOCOL: u32 = 0x20;
    /// The relay is shutting down.
    pub const SHUTDOWN: u32 = 0x30;
    /// Too many connections or streams.
    pub const BUSY: u32 = 0x31;
}
