//! The requests of a node, one handler per kind (`handle` dispatches), and the check at
//! delivery time (`disclose`) that deliveries and answers share.
//!
//! A handler gets the connection's context (its principal and the relay's
//! [`Shared`](crate::state::Shared) state) and returns the answer; the alerts it puts in
//! the answer go in `sent`, logged `delivered` once the answer is written (see
//! `server::answer`). Changes go to the commit thread as [`Op`]s; reads use the published
//! mailboxes, the store and the audit log.

use filet_proto::alert::{Disclosed, Kind};
use filet_proto::audit::{Entry, Event, RefusalReason};
use filet_proto::codec::{self};
use filet_proto::policy::{self, AlertView, AuditRequest, AuditScope, Delivery, NotDelivered};
use filet_proto::wire::{
    EntryWithProof, ErrorCode, RelayError, Request, Response, WhoAmI, MAX_ENTRIES_PER_PAGE,
    MAX_INBOX_PAGE,
};
use filet_proto::{AlertDraft, AlertId};
use tokio::sync::oneshot;

use crate::commit::{Op, Route};
use crate::ratelimit::Refused;
use crate::store::AlertRecord;

use super::{Basis, ConnCtx, Sent, PAGE_BUDGET};
use crate::mailboxes::ThreadView;

/// The alert as this connection's unit may see it now, with the rules and agreement that
/// permit it, or `None` (gone, expired, or no longer permitted — then withheld and
/// audited).
pub(super) async fn disclose(
    ctx: &ConnCtx,
    rec: &AlertRecord,
    seq: u64,
) -> Option<(Disclosed, Basis)> {
    let id = rec.envelope.id;
    let unit = ctx.unit();
    let r = rec.recipients.iter().find(|r| r.unit == *unit)?;
    let content = rec.content.as_ref()?;
    // A follow-up is permitted under the original sender's rules (see commit.rs), and
    // carries the state, expiry and history of its alert: published by the commit thread
    // when the alert changes; an alert never changed is active with one step.
    let view = ctx.shared.mailboxes.thread(&rec.root());
    let expires_at = thread_expiry(rec, view.as_ref());
    let mut envelope = rec.envelope.clone();
    envelope.expires_at = expires_at;
    let agreement = ctx.shared.agreement();
    let sender_unit = view
        .as_ref()
        .map(|v| &v.sender_unit)
        .unwrap_or(&rec.envelope.sender.unit);
    let waiting = policy::Waiting {
        kind: rec.envelope.kind,
        category: rec.envelope.category,
        sender_unit,
        recipient: unit,
        legal_bases: &r.legal_bases,
        fields: r.fields,
        expires_at,
    };
    let decision = policy::recheck_delivery(&agreement, &waiting, ctx.shared.clock.now());
    let (state, history) = match view {
        Some(v) => (v.state, v.history),
        None => (rec.state, rec.history.clone()),
    };
    let basis = |rules| Basis {
        rules,
        agreement: agreement.id.clone(),
        version: agreement.version,
    };
    match decision {
        Err(NotDelivered::Expired) => None,
        Err(NotDelivered::NoLongerPermitted(why)) => {
            let _ = ctx
                .shared
                .op(Op::Withheld {
                    alert: id,
                    sender: rec.envelope.sender.clone(),
                    unit: unit.clone(),
                    reason: why.to_string(),
                })
                .await;
            None
        }
        // A closing notice to a unit that received the alert but that no rule permits
        // any more.
        Ok(Delivery::ClosingNotice) => Some((
            policy::closing_notice(envelope, r.rules.clone(), seq, state, history),
            basis(r.rules.clone()),
        )),
        // Never more than was disclosed (and logged) at posting time, nor than the
        // agreement in force allows now: content, note and the notes of the history alike.
        Ok(Delivery::Content { fields, rules }) => Some((
            Disclosed {
                envelope,
                content: content.clone(),
                note: rec.note.clone(),
                rules: r.rules.clone(),
                fields: r.fields,
                seq,
                state,
                history,
            }
            .narrowed(fields),
            basis(rules),
        )),
    }
}

/// When a message stops being delivered: the thread's current expiry (an update may move
/// it, and the records published before keep the old one), but for a closing message
/// (`located`, `cancel`), which lives at least as long and carries its own.
fn thread_expiry(rec: &AlertRecord, view: Option<&ThreadView>) -> filet_proto::Timestamp {
    match (rec.envelope.kind, view) {
        (Kind::Located | Kind::Cancel, _) | (_, None) => rec.envelope.expires_at,
        (_, Some(v)) => v.expires_at,
    }
}

/// `GetAlert`: the sender's own unit sees its whole alert and its recipients; a recipient
/// unit sees what it may (a delivery, logged as such); another unit of the sender's party
/// (which may update, locate or cancel it) sees the envelope, state and history but no
/// content and no recipients; anyone else learns nothing.
async fn get_alert(
    ctx: &ConnCtx,
    id: AlertId,
    sent: &mut Vec<Sent>,
) -> Result<Response, RelayError> {
    let unknown = || {
        RelayError::new(
            ErrorCode::UnknownAlert,
            format!("alert {id} is not visible to {}", ctx.unit()),
        )
    };
    let rec = ctx
        .shared
        .store
        .get(&id)
        .map_err(|e| RelayError::new(ErrorCode::Internal, e.to_string()))?
        // Only what the commit thread has made durable: the store may show a record of a
        // batch whose audit entries are not yet (it is written in parallel with the log).
        .filter(|r| ctx.shared.mailboxes.is_published(r))
        .ok_or_else(unknown)?;
    let view = ctx.shared.mailboxes.thread(&rec.root());
    let mut envelope = rec.envelope.clone();
    envelope.expires_at = thread_expiry(&rec, view.as_ref());
    let (state, history) = match view {
        Some(v) => (v.state, v.history),
        None => (rec.state, rec.history.clone()),
    };
    let seen = policy::alert_view(
        ctx.unit(),
        id,
        &rec.envelope.sender.unit,
        rec.recipients.iter().map(|r| &r.unit),
    )
    .map_err(|e| RelayError::new(ErrorCode::UnknownAlert, e.to_string()))?;
    if seen == AlertView::Sender {
        let content = rec.content.clone().unwrap_or_default();
        let mut fields = content.present();
        if rec.note.is_some() {
            fields = fields.with(filet_proto::FieldPath::Note);
        }
        return Ok(Response::Alert {
            alert: Disclosed {
                envelope,
                fields,
                content,
                note: rec.note.clone(),
                rules: Vec::new(),
                seq: 0,
                state,
                history,
            },
            recipients: rec.recipients.iter().map(|r| r.unit.clone()).collect(),
        });
    }
    if let Some(seq) = rec
        .recipients
        .iter()
        .find(|r| r.unit == *ctx.unit())
        .map(|r| r.seq)
        .filter(|_| seen == AlertView::Recipient)
    {
        let (d, basis) = disclose(ctx, &rec, seq).await.ok_or_else(|| {
            RelayError::new(
                ErrorCode::Closed,
                format!(
                    "alert {id} is expired, purged or no longer permitted for {}",
                    ctx.unit()
                ),
            )
        })?;
        sent.push(Sent {
            alert: id,
            sender: d.envelope.sender.clone(),
            fields: d.fields,
            basis,
            live: ctx.shared.mailboxes.live(ctx.unit(), seq),
        });
        return Ok(Response::Alert {
            alert: d,
            recipients: Vec::new(),
        });
    }
    if seen == AlertView::OwnerParty {
        // The owner party may follow the alert up; it learns nothing of its content here.
        return Ok(Response::Alert {
            alert: policy::owner_party_view(envelope, state, history),
            recipients: Vec::new(),
        });
    }
    Err(unknown())
}

pub(super) async fn handle(
    ctx: &ConnCtx,
    request: Request,
    sent: &mut Vec<Sent>,
) -> Result<Response, RelayError> {
    match request {
        Request::WhoAmI => Ok(Response::WhoAmI(whoami(ctx))),
        Request::Post {
            draft,
            idempotency_key,
        } => post(ctx, draft, idempotency_key).await,
        Request::Inbox { after_seq } => inbox(ctx, after_seq, sent).await,
        Request::Subscribe => Err(RelayError::new(
            ErrorCode::BadRequest,
            "subscribe is handled by the stream",
        )),
        Request::Ack { alert } => ack(ctx, alert).await,
        Request::GetAlert { alert } => get_alert(ctx, alert, sent).await,
        Request::AuditCheckpoint => Ok(audit_checkpoint(ctx)),
        Request::AuditEntries {
            start,
            end,
            tree_size,
            proofs,
        } => audit_entries(ctx, start, end, tree_size, proofs).await,
        Request::AuditInclusion { index, tree_size } => {
            audit_inclusion(ctx, index, tree_size).await
        }
        Request::AuditConsistency { old_size, new_size } => {
            audit_consistency(ctx, old_size, new_size).await
        }
        Request::Status { alert } => status(ctx, alert),
    }
}

/// `Ack`: the commit thread records the acknowledgement (audited) and takes the alert out
/// of the unit's mailbox.
async fn ack(ctx: &ConnCtx, alert: AlertId) -> Result<Response, RelayError> {
    let (tx, rx) = oneshot::channel();
    ctx.shared
        .op(Op::Ack {
            principal: ctx.principal.clone(),
            alert,
            reply: tx,
        })
        .await?;
    let audit_index = rx
        .await
        .map_err(|_| RelayError::new(ErrorCode::Busy, "the relay is stopping; retry later"))??;
    Ok(Response::Acked { alert, audit_index })
}

/// `AuditCheckpoint`: the newest signed checkpoint, public to every member (to check
/// receipts).
fn audit_checkpoint(ctx: &ConnCtx) -> Response {
    Response::Checkpoint(
        ctx.shared
            .latest_checkpoint
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
    )
}

/// `AuditInclusion`: the proof that entry `index` is in the tree of `tree_size`, for an
/// auditor whose scope covers that entry.
async fn audit_inclusion(
    ctx: &ConnCtx,
    index: u64,
    tree_size: u64,
) -> Result<Response, RelayError> {
    let scope = audit_scope(ctx, AuditRequest::InclusionProof).await?;
    if scope != AuditScope::Full {
        let entry = ctx
            .shared
            .audit
            .entry(index)
            .ok()
            .and_then(|b| Entry::from_bytes(&b).ok());
        policy::inclusion_access(&scope, index, entry.as_ref().map(|e| &e.event))
            .map_err(|e| RelayError::new(ErrorCode::AuditDenied, e.to_string()))?;
    }
    let proof = ctx
        .shared
        .audit
        .inclusion_proof(index, tree_size)
        .map_err(|e| RelayError::new(ErrorCode::BadRequest, e.to_string()))?;
    Ok(Response::Proof(proof))
}

/// `AuditConsistency`: the proof that the tree of `old_size` is a prefix of that of
/// `new_size`, for auditors.
async fn audit_consistency(
    ctx: &ConnCtx,
    old_size: u64,
    new_size: u64,
) -> Result<Response, RelayError> {
    // Its hashes include single entries' leaf hashes: audit rights only (the
    // signed checkpoint stays public to every member, to check receipts).
    audit_scope(ctx, AuditRequest::ConsistencyProof).await?;
    let proof = ctx
        .shared
        .audit
        .consistency_proof(old_size, new_size)
        .map_err(|e| RelayError::new(ErrorCode::BadRequest, e.to_string()))?;
    Ok(Response::Proof(proof))
}

/// Where an alert of the asker's party stands with each recipient unit: what the receipt
/// said, and who acknowledged and when. Another party learns nothing, not even that the
/// alert exists.
fn status(ctx: &ConnCtx, id: AlertId) -> Result<Response, RelayError> {
    let rec = ctx
        .shared
        .store
        .get(&id)
        .map_err(|e| RelayError::new(ErrorCode::Internal, e.to_string()))?
        .ok_or_else(|| policy::NotOwnParty {
            alert: id,
            unit: ctx.unit().clone(),
        })
        .and_then(|r| policy::status_access(ctx.unit(), id, &r.envelope.sender.unit).map(|()| r))
        .map_err(|e| RelayError::new(ErrorCode::UnknownAlert, e.to_string()))?;
    let mut recipients = Vec::with_capacity(rec.recipients.len());
    for r in &rec.recipients {
        // Acknowledgements are kept under their own keys (the record is not rewritten).
        let acked = match &r.acked {
            Some(a) => Some(a.clone()),
            None => ctx
                .shared
                .store
                .ack(&id, &r.unit)
                .map_err(|e| RelayError::new(ErrorCode::Internal, e.to_string()))?,
        };
        recipients.push(filet_proto::wire::RecipientStatus {
            unit: r.unit.clone(),
            rules: r.rules.clone(),
            legal_bases: r.legal_bases.clone(),
            fields: r.fields,
            disclosed_index: r.disclosed_index,
            acked: acked.map(|a| (a.node, a.at, a.audit_index)),
        });
    }
    Ok(Response::Status {
        alert: id,
        recipients,
    })
}

fn whoami(ctx: &ConnCtx) -> WhoAmI {
    let a = ctx.shared.agreement();
    let unit = ctx.unit();
    WhoAmI {
        principal: ctx.principal.clone(),
        agreement_id: a.id.clone(),
        agreement_version: a.version,
        may_send_under: policy::rules_sending_from(&a, unit),
        may_receive_under: policy::rules_received_by(&a, unit),
        audit_right: policy::audit_right(&a, unit)
            .map_or("none", |s| s.name())
            .into(),
    }
}

async fn post(
    ctx: &ConnCtx,
    draft: AlertDraft,
    idempotency_key: [u8; 16],
) -> Result<Response, RelayError> {
    let now = ctx.shared.clock.now();
    if let Err(wait_ms) = ctx.shared.rate.check(&ctx.principal, now) {
        // Not audited per refusal: a flood must not flood the log. The limiter counts them.
        return Err(RelayError {
            code: ErrorCode::RateLimited,
            message: format!(
                "{} posts faster than the limit of {} per minute; nothing was posted",
                ctx.principal, ctx.shared.limits.posts_per_minute
            ),
            retry_after_ms: Some(wait_ms),
            invalid: None,
        });
    }
    let refuse = |reason, detail: String, recipient: Option<String>| Event::Refused {
        principal: Some(ctx.principal.to_string()),
        reason,
        detail,
        category: Some(draft.category),
        recipient,
        alert: draft.references,
    };
    let valid = match draft.validate(now) {
        Ok(v) => v,
        Err(invalid) => {
            // The audit names the fields at fault, never their content.
            let paths: Vec<&str> = invalid.errors.iter().map(|e| e.path.as_str()).collect();
            ctx.shared
                .audit(refuse(
                    RefusalReason::Invalid,
                    format!("invalid alert: {}", paths.join(", ")),
                    None,
                ))
                .await?;
            return Err(RelayError {
                code: ErrorCode::InvalidAlert,
                message: format!("invalid alert: {invalid}"),
                retry_after_ms: None,
                invalid: Some(invalid),
            });
        }
    };
    let agreement = ctx.shared.agreement();
    if valid.kind != Kind::Alert {
        // The commit thread knows the alert's life: it routes the follow-up.
        return commit_post(ctx, valid, Route::FollowUp(agreement), idempotency_key, now).await;
    }
    let disclosures = match policy::route_alert(&agreement, ctx.unit(), valid.category, &valid.to) {
        Ok(d) => d,
        Err(refusal) => {
            let message = format!("{}: {refusal}", ctx.principal);
            ctx.shared
                .audit(refuse(
                    refusal.reason(),
                    message.clone(),
                    refusal.recipient().map(str::to_owned),
                ))
                .await?;
            return Err(RelayError::new(refusal.code(), message));
        }
    };
    commit_post(ctx, valid, Route::New(disclosures), idempotency_key, now).await
}

async fn commit_post(
    ctx: &ConnCtx,
    draft: AlertDraft,
    route: Route,
    idempotency_key: [u8; 16],
    received_at: filet_proto::Timestamp,
) -> Result<Response, RelayError> {
    let started = std::time::Instant::now();
    let (tx, rx) = oneshot::channel();
    ctx.shared
        .op(Op::Post {
            principal: ctx.principal.clone(),
            draft,
            route,
            idempotency_key,
            received_at,
            reply: tx,
        })
        .await?;
    let receipt = rx
        .await
        .map_err(|_| RelayError::new(ErrorCode::Busy, "the relay is stopping; retry later"))??;
    ctx.shared
        .metrics
        .post_receipt
        .observe(started.elapsed().as_secs_f64());
    Ok(Response::Receipt(receipt))
}

/// One page of the unit's mailbox: at most [`MAX_INBOX_PAGE`] alerts and at most
/// [`PAGE_BUDGET`] bytes of them (`more` says that others wait). A page holds at least
/// one alert: the thread limits (commit.rs) keep every alert within a frame.
async fn inbox(
    ctx: &ConnCtx,
    after_seq: u64,
    sent: &mut Vec<Sent>,
) -> Result<Response, RelayError> {
    let pending = ctx
        .shared
        .mailboxes
        .pending_after(ctx.unit(), after_seq, MAX_INBOX_PAGE + 1);
    let mut more = pending.len() > MAX_INBOX_PAGE;
    let mut alerts = Vec::new();
    let mut used = 0usize;
    for p in pending.into_iter().take(MAX_INBOX_PAGE) {
        let (seq, rec) = (p.seq, p.rec);
        let id = rec.envelope.id;
        let Some((d, basis)) = disclose(ctx, &rec, seq).await else {
            continue;
        };
        let size = codec::encode_value(&d).map_or(usize::MAX, |v| v.len());
        if used.saturating_add(size) > PAGE_BUDGET {
            if alerts.is_empty() {
                return Err(RelayError::new(
                    ErrorCode::Internal,
                    format!("alert {id} at mailbox position {seq} of {} does not fit in a frame; it cannot be delivered", ctx.unit()),
                ));
            }
            more = true;
            break;
        }
        used += size;
        sent.push(Sent {
            alert: id,
            sender: d.envelope.sender.clone(),
            fields: d.fields,
            basis,
            live: Some(p.live),
        });
        alerts.push(d);
    }
    Ok(Response::Inbox { alerts, more })
}

async fn audit_scope(ctx: &ConnCtx, request: AuditRequest) -> Result<AuditScope, RelayError> {
    match policy::audit_scope(&ctx.shared.agreement(), &ctx.principal, request) {
        Ok(s) => Ok(s),
        Err(denied) => {
            let detail = denied.to_string();
            ctx.shared
                .audit_refusal(
                    Refused::Principal(ctx.principal.to_string()),
                    Some(ctx.principal.to_string()),
                    RefusalReason::AuditDenied,
                    detail.clone(),
                    true,
                )
                .await?;
            Err(RelayError::new(ErrorCode::AuditDenied, detail))
        }
    }
}

async fn audit_entries(
    ctx: &ConnCtx,
    start: u64,
    end: u64,
    tree_size: u64,
    proofs: bool,
) -> Result<Response, RelayError> {
    let scope = audit_scope(ctx, AuditRequest::Entries).await?;
    let audit = &ctx.shared.audit;
    let size = audit.size();
    if tree_size > size || end > tree_size || start > end {
        return Err(RelayError::new(
            ErrorCode::BadRequest,
            format!("entries {start}..{end} of a tree of {tree_size} are out of range (the log has {size})"),
        ));
    }
    let proofs = proofs || scope.proofs_required();
    let stop = end.min(start.saturating_add(MAX_ENTRIES_PER_PAGE));
    let mut used = 0usize;
    let mut entries = Vec::new();
    let mut next = start;
    while next < stop {
        let bytes = audit
            .entry(next)
            .map_err(|e| RelayError::new(ErrorCode::Internal, e.to_string()))?;
        if scope != AuditScope::Full {
            let visible = Entry::from_bytes(&bytes).is_ok_and(|e| scope.admits(&e.event));
            if !visible {
                next += 1;
                continue;
            }
        }
        let proof = if proofs {
            audit
                .inclusion_proof(next, tree_size)
                .map_err(|e| RelayError::new(ErrorCode::Internal, e.to_string()))?
        } else {
            Vec::new()
        };
        let item = EntryWithProof {
            index: next,
            entry: bytes,
            proof,
        };
        let cost = codec::encode_value(&item).map_or(usize::MAX, |v| v.len());
        if used.saturating_add(cost) > PAGE_BUDGET {
            if entries.is_empty() {
                return Err(RelayError::new(
                    ErrorCode::Internal,
                    format!("audit entry {next} with its proof does not fit in a frame"),
                ));
            }
            break;
        }
        used += cost;
        entries.push(item);
        next += 1;
    }
    Ok(Response::Entries { entries, next })
}
