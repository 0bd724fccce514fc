//! Every disclosure decision (requirements §4, §7), as pure functions: no I/O, no clock, no
//! randomness (time comes in as an argument). The relay and the client call these; nothing
//! else decides who learns what.
//!
//! Each decision returns a typed answer — the rules, legal bases and fields that permit a
//! disclosure — or a typed refusal whose variants hold what their message needs and whose
//! `Display` is the message the principal is told (and the audit log records).
//!
//! | decision | function | refusal |
//! |---|---|---|
//! | route a new alert | [`route_alert`] (on [`permits`], [`may_send`]) | [`RouteRefusal`] |
//! | who may follow an alert up | [`may_follow_up`], [`may_follow_up_purged`] | [`FollowUpRefusal`] |
//! | route a follow-up (update, located, cancel) | [`route_follow_up`] | [`FollowUpWithheld`] |
//! | re-check at delivery (push, mailbox page) | [`recheck_delivery`] | [`NotDelivered`] |
//! | what a closing notice carries | [`closing_notice`] | — |
//! | who may see an alert (`GetAlert`) | [`alert_view`], [`owner_party_view`] | [`NotVisible`] |
//! | who may ask an alert's status | [`status_access`] | [`NotOwnParty`] |
//! | which audit entries and proofs | [`audit_scope`], [`AuditScope::admits`], [`inclusion_access`] | [`AuditDenied`], [`NotConcerned`] |
//!
//! Routing is deny by default: a unit receives an alert only if some rule names the sender
//! in `from`, the recipient in `to` and the alert's category in `categories`; it gets the
//! union of the `fields` of every such rule. An agreement with no rules permits nothing.

use std::collections::BTreeMap;
use std::fmt;

use crate::agreement::Agreement;
use crate::alert::{AlertState, Category, Disclosed, Envelope, FieldSet, HistoryItem, Kind};
use crate::audit::{Event, RefusalReason};
use crate::id::AlertId;
use crate::principal::{Principal, Selector, UnitRef};
use crate::time::Timestamp;
use crate::wire::ErrorCode;

/// The legal basis of a closing notice: a `located` or `cancel` sent, envelope only, to a
/// unit that received the alert but that no rule permits any more (its rules are those of
/// the original disclosure). Audited as a `disclosed` entry with no fields.
pub const CLOSING_NOTICE: &str = "closing-notice";

// ---- route a new alert ---------------------------------------------------------------

/// A permitted disclosure to one recipient unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Disclosure {
    /// The recipient.
    pub recipient: UnitRef,
    /// Ids of every rule that permits it, in file order.
    pub rules: Vec<String>,
    /// Their legal bases, same order.
    pub legal_bases: Vec<String>,
    /// Union of the rules' fields.
    pub fields: FieldSet,
    /// Longest retention of the rules, in milliseconds.
    pub retention_ms: i64,
}

/// Why a new alert is refused by the agreement. The whole post is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteRefusal {
    /// No rule lets the sender send this category to anyone.
    #[error(
        "no rule of agreement {agreement} permits {sender} to send {category} alerts to anyone"
    )]
    NoRecipient {
        /// Agreement id.
        agreement: String,
        /// Sender unit.
        sender: UnitRef,
        /// Category.
        category: Category,
    },
    /// A named recipient is not permitted for this sender and category.
    #[error("no rule of agreement {agreement} permits {sender} to send {category} alerts to {recipient}; nothing was posted")]
    NotPermitted {
        /// Agreement id.
        agreement: String,
        /// Sender unit.
        sender: UnitRef,
        /// Category.
        category: Category,
        /// The recipient as named (`PARTY` or `PARTY/UNIT`).
        recipient: String,
    },
    /// A named recipient is not a party or unit of the agreement.
    #[error("{recipient} is not a party or unit of agreement {agreement}; nothing was posted")]
    UnknownRecipient {
        /// Agreement id.
        agreement: String,
        /// The recipient as named.
        recipient: String,
    },
}

impl RouteRefusal {
    /// The recipient at fault, as named, if one is.
    pub fn recipient(&self) -> Option<&str> {
        match self {
            RouteRefusal::NotPermitted { recipient, .. }
            | RouteRefusal::UnknownRecipient { recipient, .. } => Some(recipient),
            RouteRefusal::NoRecipient { .. } => None,
        }
    }

    /// The reason the audit log records.
    pub fn reason(&self) -> RefusalReason {
        RefusalReason::NotPermitted
    }

    /// The error code the principal is told.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::NotPermitted
    }
}

/// Whether the agreement permits `sender` to send `category` to `recipient`, and if so
/// under which rules and with which fields. A unit never sends to itself.
pub fn permits(
    agreement: &Agreement,
    sender: &UnitRef,
    recipient: &UnitRef,
    category: Category,
) -> Option<Disclosure> {
    if sender == recipient {
        return None;
    }
    let mut d: Option<Disclosure> = None;
    for r in &agreement.rules {
        if r.categories.contains(&category)
            && r.from.iter().any(|s| s.matches(sender))
            && r.to.iter().any(|s| s.matches(recipient))
        {
            let d = d.get_or_insert_with(|| Disclosure {
                recipient: recipient.clone(),
                rules: Vec::new(),
                legal_bases: Vec::new(),
                fields: FieldSet::EMPTY,
                retention_ms: 0,
            });
            d.rules.push(r.id.clone());
            d.legal_bases.push(r.legal_basis.clone());
            d.fields = d.fields.union(r.fields);
            d.retention_ms = d.retention_ms.max(r.retention_ms);
        }
    }
    d
}

/// Whether some rule lets `sender` send alerts of `category` (to anyone).
pub fn may_send(agreement: &Agreement, sender: &UnitRef, category: Category) -> bool {
    agreement
        .rules
        .iter()
        .any(|r| r.categories.contains(&category) && r.from.iter().any(|s| s.matches(sender)))
}

/// Ids of the rules that name `unit` among their senders, in file order.
pub fn rules_sending_from(agreement: &Agreement, unit: &UnitRef) -> Vec<String> {
    agreement
        .rules
        .iter()
        .filter(|r| r.from.iter().any(|s| s.matches(unit)))
        .map(|r| r.id.clone())
        .collect()
}

/// Ids of the rules that name `unit` among their recipients, in file order.
pub fn rules_received_by(agreement: &Agreement, unit: &UnitRef) -> Vec<String> {
    agreement
        .rules
        .iter()
        .filter(|r| r.to.iter().any(|s| s.matches(unit)))
        .map(|r| r.id.clone())
        .collect()
}

/// The recipients of a new alert by `sender` of `category` (requirements §4). With no explicit
/// recipients (`to` empty), every unit some rule permits; otherwise exactly the named
/// units (a party names every unit of the party that some rule permits), each of which
/// must be permitted. Recipients are in unit order.
///
/// # Errors
/// [`RouteRefusal`] naming the sender, the category and the first recipient at fault; the
/// whole post is refused.
pub fn route_alert(
    agreement: &Agreement,
    sender: &UnitRef,
    category: Category,
    to: &[Selector],
) -> Result<Vec<Disclosure>, RouteRefusal> {
    let permitted: Vec<Disclosure> = agreement
        .units()
        .filter_map(|u| permits(agreement, sender, &u, category))
        .collect();
    if to.is_empty() {
        if permitted.is_empty() {
            return Err(RouteRefusal::NoRecipient {
                agreement: agreement.id.clone(),
                sender: sender.clone(),
                category,
            });
        }
        return Ok(permitted);
    }
    let mut chosen: BTreeMap<UnitRef, Disclosure> = BTreeMap::new();
    for sel in to {
        let known = match sel {
            Selector::Party(p) => agreement.parties.contains_key(p),
            Selector::Unit(u) => agreement.has_unit(u),
        };
        if !known {
            return Err(RouteRefusal::UnknownRecipient {
                agreement: agreement.id.clone(),
                recipient: sel.to_string(),
            });
        }
        let hits: Vec<&Disclosure> = permitted
            .iter()
            .filter(|d| sel.matches(&d.recipient))
            .collect();
        if hits.is_empty() {
            return Err(RouteRefusal::NotPermitted {
                agreement: agreement.id.clone(),
                sender: sender.clone(),
                category,
                recipient: sel.to_string(),
            });
        }
        for d in hits {
            chosen.insert(d.recipient.clone(), d.clone());
        }
    }
    Ok(chosen.into_values().collect())
}

// ---- follow-ups ----------------------------------------------------------------------

/// What a follow-up does, as a verb: "update", "mark as located", "cancel".
pub fn verb(k: Kind) -> &'static str {
    match k {
        Kind::Alert => "post",
        Kind::Update => "update",
        Kind::Located => "mark as located",
        Kind::Cancel => "cancel",
    }
}

/// The alert a follow-up refers to, as the policy needs to know it.
#[derive(Debug, Clone, Copy)]
pub struct Thread<'a> {
    /// The original alert's id.
    pub alert: AlertId,
    /// The original's sender unit: follow-ups are routed with its rules, whichever unit
    /// of its party posts them.
    pub sender_unit: &'a UnitRef,
    /// The original's category (its follow-ups keep it).
    pub category: Category,
    /// The original's recipient units.
    pub recipients: &'a [UnitRef],
}

/// Why a principal may not post a follow-up (update, located, cancel) of an alert.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowUpRefusal {
    /// The principal is not of the alert's sender party.
    #[error("{principal}: only party {owner} may {} alert {alert}; nothing was posted", verb(*.kind))]
    NotOwner {
        /// Who asked.
        principal: Principal,
        /// The alert's sender party.
        owner: String,
        /// The follow-up's kind.
        kind: Kind,
        /// The original alert.
        alert: AlertId,
    },
    /// A unit of the party other than the sender, that no rule lets send the category.
    #[error("{principal}: no rule of agreement {agreement} v{version} lets {} send {category} alerts, so it may not {} alert {alert} of {sender_unit}; its sender, or another unit of {} that may send {category} alerts, can; nothing was posted", principal.unit, verb(*.kind), sender_unit.party)]
    MayNotSend {
        /// Who asked.
        principal: Principal,
        /// Agreement id.
        agreement: String,
        /// Agreement version.
        version: u64,
        /// The alert's category.
        category: Category,
        /// The follow-up's kind.
        kind: Kind,
        /// The original alert.
        alert: AlertId,
        /// The original's sender unit.
        sender_unit: UnitRef,
    },
}

impl FollowUpRefusal {
    /// The reason the audit log records.
    pub fn reason(&self) -> RefusalReason {
        match self {
            FollowUpRefusal::NotOwner { .. } => RefusalReason::NotOwner,
            FollowUpRefusal::MayNotSend { .. } => RefusalReason::NotPermitted,
        }
    }

    /// The error code the principal is told.
    pub fn code(&self) -> ErrorCode {
        match self {
            FollowUpRefusal::NotOwner { .. } => ErrorCode::NotOwner,
            FollowUpRefusal::MayNotSend { .. } => ErrorCode::NotPermitted,
        }
    }
}

/// Whether `principal` may post a follow-up of `kind` of an alert whose content is purged
/// and whose sender party is `owner`: the party alone is checked (the alert is closed and
/// the follow-up refused as such anyway; [`may_follow_up`] for a live alert).
///
/// # Errors
/// [`FollowUpRefusal::NotOwner`].
pub fn may_follow_up_purged(
    principal: &Principal,
    kind: Kind,
    alert: AlertId,
    owner: &str,
) -> Result<(), Box<FollowUpRefusal>> {
    if principal.party() == owner {
        return Ok(());
    }
    Err(Box::new(FollowUpRefusal::NotOwner {
        principal: principal.clone(),
        owner: owner.to_owned(),
        kind,
        alert,
    }))
}

/// Whether `principal` may post a follow-up of `kind` of a live alert: only its sender
/// party, and a unit of the party other than the sender only if the agreement lets it send
/// the category itself (a unit that may only receive it, a patrol told a subset of the
/// fields, may not speak for the alert to its recipients).
///
/// # Errors
/// [`FollowUpRefusal`] naming the principal, the alert and what it lacks.
pub fn may_follow_up(
    agreement: &Agreement,
    principal: &Principal,
    kind: Kind,
    thread: &Thread<'_>,
) -> Result<(), Box<FollowUpRefusal>> {
    may_follow_up_purged(principal, kind, thread.alert, &thread.sender_unit.party)?;
    if principal.unit != *thread.sender_unit
        && !may_send(agreement, &principal.unit, thread.category)
    {
        return Err(Box::new(FollowUpRefusal::MayNotSend {
            principal: principal.clone(),
            agreement: agreement.id.clone(),
            version: agreement.version,
            category: thread.category,
            kind,
            alert: thread.alert,
            sender_unit: thread.sender_unit.clone(),
        }));
    }
    Ok(())
}

/// What the original alert disclosed to one unit: the closing notice keeps its rules.
#[derive(Debug, Clone, Copy)]
pub struct Told<'a> {
    /// The recipient unit.
    pub unit: &'a UnitRef,
    /// The rules of the original disclosure.
    pub rules: &'a [String],
    /// Their longest retention, ms.
    pub retention_ms: i64,
}

/// A unit the agreement in force no longer permits to receive the sender's alerts of this
/// category.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no rule of agreement {agreement} v{version} permits {sender_unit} to send {category} alerts to {recipient} any more")]
pub struct NoLongerPermitted {
    /// Agreement id.
    pub agreement: String,
    /// Agreement version.
    pub version: u64,
    /// The original's sender unit.
    pub sender_unit: UnitRef,
    /// The alert's category.
    pub category: Category,
    /// The unit.
    pub recipient: UnitRef,
}

impl NoLongerPermitted {
    fn new(
        agreement: &Agreement,
        sender_unit: &UnitRef,
        category: Category,
        recipient: &UnitRef,
    ) -> Self {
        NoLongerPermitted {
            agreement: agreement.id.clone(),
            version: agreement.version,
            sender_unit: sender_unit.clone(),
            category,
            recipient: recipient.clone(),
        }
    }
}

/// A recipient of the original that a follow-up is not sent to (audited as withheld).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{why}: the {kind} is not sent")]
pub struct FollowUpWithheld {
    /// Why.
    pub why: NoLongerPermitted,
    /// The follow-up's kind.
    pub kind: Kind,
}

/// Who hears a follow-up.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FollowUpRoute {
    /// The disclosures, in the order of the original's recipients.
    pub disclosures: Vec<Disclosure>,
    /// The original's recipients it is not sent to, and why.
    pub withheld: Vec<FollowUpWithheld>,
}

/// The recipients of a follow-up of `kind` posted by `poster`: every recipient of the
/// original (never another unit) that the agreement still permits the original's sender
/// unit to send the category to, with today's rules and fields. A closing message
/// (`located`, `cancel`) also reaches a recipient of the original that no rule permits
/// any more, as a closing notice: the envelope only, under [`CLOSING_NOTICE`] and the
/// rules of the original disclosure (`told`). A unit never receives its own messages.
pub fn route_follow_up(
    agreement: &Agreement,
    poster: &UnitRef,
    kind: Kind,
    thread: &Thread<'_>,
    told: &[Told<'_>],
) -> FollowUpRoute {
    let closing = matches!(kind, Kind::Located | Kind::Cancel);
    let mut route = FollowUpRoute::default();
    for unit in thread.recipients.iter().filter(|u| *u != poster) {
        let notice = told.iter().find(|r| r.unit == unit).filter(|_| closing);
        match (
            permits(agreement, thread.sender_unit, unit, thread.category),
            notice,
        ) {
            (Some(x), _) => route.disclosures.push(x),
            // Everyone who was told of the alert hears that it ended, even a unit no rule
            // permits any more: the envelope only, no content.
            (None, Some(r)) => route.disclosures.push(Disclosure {
                recipient: unit.clone(),
                rules: r.rules.to_vec(),
                legal_bases: vec![CLOSING_NOTICE.to_string()],
                fields: FieldSet::EMPTY,
                retention_ms: r.retention_ms,
            }),
            (None, None) => route.withheld.push(FollowUpWithheld {
                why: NoLongerPermitted::new(agreement, thread.sender_unit, thread.category, unit),
                kind,
            }),
        }
    }
    route
}

// ---- delivery ------------------------------------------------------------------------

/// A message waiting in a unit's mailbox, as the delivery re-check needs to know it.
#[derive(Debug, Clone, Copy)]
pub struct Waiting<'a> {
    /// The message's kind.
    pub kind: Kind,
    /// The alert's category.
    pub category: Category,
    /// The original's sender unit (a follow-up is permitted under its rules).
    pub sender_unit: &'a UnitRef,
    /// The recipient unit.
    pub recipient: &'a UnitRef,
    /// The legal bases logged when it was disclosed.
    pub legal_bases: &'a [String],
    /// The fields disclosed (and logged) when it was posted.
    pub fields: FieldSet,
    /// When it stops being delivered.
    pub expires_at: Timestamp,
}

/// What a delivery may carry now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A closing notice: see [`closing_notice`].
    ClosingNotice,
    /// The message, cut to `fields`, under the agreement's rules `rules` in force now.
    Content {
        /// What may be sent: the fields disclosed at posting time that the agreement in
        /// force still allows.
        fields: FieldSet,
        /// The rules that permit it now (logged in the `delivered` entry).
        rules: Vec<String>,
    },
}

/// Why a waiting message is not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotDelivered {
    /// It has expired (not audited: the expiry is).
    #[error("expired")]
    Expired,
    /// No rule permits it any more (audited as withheld).
    #[error(transparent)]
    NoLongerPermitted(Box<NoLongerPermitted>),
}

/// The re-check before a message is delivered (pushed or in a mailbox page): never more
/// than was disclosed (and logged) at posting time, nor than the agreement in force
/// allows at `now`.
///
/// # Errors
/// [`NotDelivered`]: expired, or no longer permitted.
pub fn recheck_delivery(
    agreement: &Agreement,
    m: &Waiting<'_>,
    now: Timestamp,
) -> Result<Delivery, NotDelivered> {
    if now >= m.expires_at {
        return Err(NotDelivered::Expired);
    }
    if matches!(m.kind, Kind::Located | Kind::Cancel)
        && m.legal_bases.iter().any(|b| b == CLOSING_NOTICE)
    {
        return Ok(Delivery::ClosingNotice);
    }
    let Some(d) = permits(agreement, m.sender_unit, m.recipient, m.category) else {
        return Err(NotDelivered::NoLongerPermitted(Box::new(
            NoLongerPermitted::new(agreement, m.sender_unit, m.category, m.recipient),
        )));
    };
    Ok(Delivery::Content {
        fields: m.fields.intersection(d.fields),
        rules: d.rules,
    })
}

/// What a closing notice carries, to a unit that received the alert but that no rule
/// permits any more: the envelope, the state, and the alert's and this step's times only
/// (no content, no note, no other step).
pub fn closing_notice(
    envelope: Envelope,
    rules: Vec<String>,
    seq: u64,
    state: AlertState,
    history: Vec<HistoryItem>,
) -> Disclosed {
    let id = envelope.id;
    Disclosed {
        envelope,
        content: crate::alert::Content::default(),
        note: None,
        rules,
        fields: FieldSet::EMPTY,
        seq,
        state,
        history: history
            .into_iter()
            .filter(|h| h.kind == Some(Kind::Alert) || h.id == id)
            .map(|mut h| {
                h.note = None;
                h
            })
            .collect(),
    }
}

// ---- who may see an alert, its status ------------------------------------------------

/// What a unit may see of an alert (`GetAlert`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertView {
    /// The sender's own unit: the whole alert and its recipients.
    Sender,
    /// A recipient: what the delivery re-check allows (a delivery, logged as such).
    Recipient,
    /// Another unit of the sender's party (which may follow the alert up): the envelope,
    /// state and history, no content and no recipients.
    OwnerParty,
}

/// What [`AlertView::OwnerParty`] carries: the envelope, the state and the history (its
/// steps' kinds and times, no note); no content, no rules, no recipients.
pub fn owner_party_view(
    envelope: Envelope,
    state: AlertState,
    history: Vec<HistoryItem>,
) -> Disclosed {
    Disclosed {
        envelope,
        content: crate::alert::Content::default(),
        fields: FieldSet::EMPTY,
        note: None,
        rules: Vec::new(),
        seq: 0,
        state,
        history,
    }
    .narrowed(FieldSet::EMPTY)
}

/// An alert that is not visible to a unit: it learns nothing, not even that it exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("alert {alert} is not visible to {unit}")]
pub struct NotVisible {
    /// The alert asked for.
    pub alert: AlertId,
    /// Who asked.
    pub unit: UnitRef,
}

/// What `viewer` may see of alert `alert` sent by `sender` to `recipients`.
///
/// # Errors
/// [`NotVisible`] for a unit that is neither the sender, a recipient nor of the sender's
/// party.
pub fn alert_view<'a>(
    viewer: &UnitRef,
    alert: AlertId,
    sender: &UnitRef,
    mut recipients: impl Iterator<Item = &'a UnitRef>,
) -> Result<AlertView, NotVisible> {
    if sender == viewer {
        Ok(AlertView::Sender)
    } else if recipients.any(|r| r == viewer) {
        Ok(AlertView::Recipient)
    } else if sender.party == viewer.party {
        Ok(AlertView::OwnerParty)
    } else {
        Err(NotVisible {
            alert,
            unit: viewer.clone(),
        })
    }
}

/// An alert's status asked by a unit of another party than its sender's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("alert {alert} is not an alert of {unit}'s party")]
pub struct NotOwnParty {
    /// The alert asked about.
    pub alert: AlertId,
    /// Who asked.
    pub unit: UnitRef,
}

/// Whether `asker` may learn where alert `alert` of `sender` stands with each recipient:
/// the sender's party only; another party learns nothing, not even that it exists.
///
/// # Errors
/// [`NotOwnParty`].
pub fn status_access(asker: &UnitRef, alert: AlertId, sender: &UnitRef) -> Result<(), NotOwnParty> {
    if sender.party == asker.party {
        Ok(())
    } else {
        Err(NotOwnParty {
            alert,
            unit: asker.clone(),
        })
    }
}

// ---- audit ---------------------------------------------------------------------------

/// What a unit may read of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditScope {
    /// Every entry.
    Full,
    /// Entries where this party is sender or recipient.
    Party(String),
}

impl AuditScope {
    /// Whether an entry with this event is within the scope.
    pub fn admits(&self, event: &Event) -> bool {
        match self {
            AuditScope::Full => true,
            AuditScope::Party(p) => event.concerns_party(p),
        }
    }

    /// Whether every entry must come with its inclusion proof (a party's reader sees a
    /// subset, and proves each entry against the checkpoint).
    pub fn proofs_required(&self) -> bool {
        matches!(self, AuditScope::Party(_))
    }

    /// The right's name, as `whoami` says it: `full` or `party`.
    pub fn name(&self) -> &'static str {
        match self {
            AuditScope::Full => "full",
            AuditScope::Party(_) => "party",
        }
    }
}

/// What a unit asks of the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditRequest {
    /// A range of entries.
    Entries,
    /// An inclusion proof of one entry.
    InclusionProof,
    /// A consistency proof between two tree sizes (its hashes include single entries'
    /// leaf hashes: audit rights only; the signed checkpoint stays public to every member).
    ConsistencyProof,
}

impl fmt::Display for AuditRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuditRequest::Entries => "audit entries",
            AuditRequest::InclusionProof => "an inclusion proof",
            AuditRequest::ConsistencyProof => "a consistency proof",
        })
    }
}

/// A request to the audit log by a unit without audit right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{principal} asked for {request} but {} has no audit right in the agreement", principal.unit)]
pub struct AuditDenied {
    /// Who asked.
    pub principal: Principal,
    /// What.
    pub request: AuditRequest,
}

/// What `unit` may read of the audit log under the agreement's `[audit]` rights, if
/// anything.
pub fn audit_right(agreement: &Agreement, unit: &UnitRef) -> Option<AuditScope> {
    if agreement.audit.full.contains(unit) {
        Some(AuditScope::Full)
    } else if agreement.audit.party.contains(unit) {
        Some(AuditScope::Party(unit.party.clone()))
    } else {
        None
    }
}

/// The scope `principal` may read for `request`: entries, inclusion proofs and consistency
/// proofs all need an audit right.
///
/// # Errors
/// [`AuditDenied`] for a unit without one.
pub fn audit_scope(
    agreement: &Agreement,
    principal: &Principal,
    request: AuditRequest,
) -> Result<AuditScope, AuditDenied> {
    audit_right(agreement, &principal.unit).ok_or_else(|| AuditDenied {
        principal: principal.clone(),
        request,
    })
}

/// An inclusion proof asked, under a party's scope, for an entry of another party.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit entry {index} does not concern party {party}")]
pub struct NotConcerned {
    /// The entry's index.
    pub index: u64,
    /// The asker's party.
    pub party: String,
}

/// Whether an inclusion proof of entry `index` (its event, `None` if it cannot be read)
/// may be given under `scope`: a party's reader only for entries that concern the party.
///
/// # Errors
/// [`NotConcerned`].
pub fn inclusion_access(
    scope: &AuditScope,
    index: u64,
    event: Option<&Event>,
) -> Result<(), NotConcerned> {
    match scope {
        AuditScope::Party(p) if !event.is_some_and(|e| scope.admits(e)) => Err(NotConcerned {
            index,
            party: p.clone(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
