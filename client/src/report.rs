//! Compliance reports from a verified audit directory (`filet audit report`).
//!
//! Disclosures are counted by status, sender party, recipient party, rule and legal basis
//! (a disclosure permitted by two rules counts once under each); refusals by reason;
//! alerts a recipient unit did not acknowledge within a delay are listed; so is any
//! delivery after an alert's expiry (there should be none). Exercise and test alerts are
//! never mixed with actual ones: status is the first key of every count. Posts voided by a
//! crash (never stored, never delivered) are left out.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use filet_proto::audit::{Entry, Event};
use filet_proto::policy::AuditScope;
use filet_proto::{AlertId, Timestamp, UnitRef};
use serde::Serialize;

/// What to include.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Only entries at or after this time.
    pub from: Option<Timestamp>,
    /// Only entries before this time.
    pub to: Option<Timestamp>,
    /// Only entries where this party is sender or recipient.
    pub party: Option<String>,
    /// A disclosure not acknowledged within this many milliseconds is listed.
    pub unacked_after_ms: i64,
    /// The time "now" for disclosures never acknowledged.
    pub now: Timestamp,
    /// Only the alerts about this subject: `HMAC-SHA256(relay key, subject.reference)`, hex,
    /// as the `posted` entries hold it (see [`subject_ref`]); their follow-ups included.
    pub subject_ref: Option<String>,
}

/// The keyed hash the log holds for a subject reference, from the relay's key
/// (`DATA/keys/subject-ref.key`, given to the auditor who may ask "who was told about file
/// X"): the same `HMAC-SHA256` as the relay's.
pub fn subject_ref(key: &[u8], reference: &str) -> String {
    filet_proto::audit::subject_ref_mac(key, reference)
}

/// The length of the relay's subject-reference key (`DATA/keys/subject-ref.key`): 32 raw
/// bytes, as the relay writes and requires it.
pub const SUBJECT_REF_KEY_LEN: usize = 32;

/// Checks a subject-reference key file's bytes: any other key would give hashes that match
/// nothing, and the report would silently say nobody was told.
///
/// # Errors
/// What is wrong, in words (the caller names the file).
pub fn check_subject_ref_key(key: &[u8]) -> Result<(), String> {
    if key.len() == SUBJECT_REF_KEY_LEN {
        return Ok(());
    }
    Err(format!(
        "{} bytes, expected the relay's key of {SUBJECT_REF_KEY_LEN} raw bytes (its DATA/keys/subject-ref.key, copied as is, not hex or base64)",
        key.len()
    ))
}

/// The parties named in the entries (as sender, recipient or refused principal): the
/// values `--party` can select, each an agreement party code (`[A-Z0-9_-]`, upper case).
pub fn parties(entries: &[Entry]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let first = |s: &str| s.split('/').next().unwrap_or_default().to_owned();
    for e in entries {
        match &e.event {
            Event::RelayStarted { .. }
            | Event::RelayStopped { .. }
            | Event::AgreementLoaded { .. }
            | Event::CrlLoaded { .. } => {}
            Event::Posted {
                sender, recipients, ..
            } => {
                out.insert(sender.party().to_owned());
                out.extend(recipients.iter().map(|r| r.party.clone()));
            }
            Event::Disclosed {
                sender, recipient, ..
            }
            | Event::Withheld {
                sender, recipient, ..
            } => {
                out.insert(sender.party().to_owned());
                out.insert(recipient.party.clone());
            }
            Event::Delivered {
                sender, recipient, ..
            }
            | Event::Acknowledged {
                sender, recipient, ..
            } => {
                out.insert(sender.party().to_owned());
                out.insert(recipient.party().to_owned());
            }
            Event::Expired { sender, .. }
            | Event::Purged { sender, .. }
            | Event::Voided { sender, .. } => {
                out.insert(sender.party().to_owned());
            }
            Event::Refused {
                principal,
                recipient,
                ..
            } => {
                out.extend(principal.as_deref().map(first));
                out.extend(recipient.as_deref().map(first));
            }
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

/// One row of the disclosure counts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct DisclosureKey {
    /// actual, exercise, test.
    pub status: String,
    /// The sender's party.
    pub sender_party: String,
    /// The recipient's party.
    pub recipient_party: String,
    /// The rule.
    pub rule: String,
    /// Its legal basis.
    pub legal_basis: String,
}

/// A disclosure that was not acknowledged in time.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Unacknowledged {
    /// actual, exercise, test.
    pub status: String,
    /// The alert.
    pub alert: String,
    /// The recipient unit.
    pub recipient: String,
    /// When it was disclosed.
    pub disclosed_at: String,
    /// When it was acknowledged, if ever.
    pub acknowledged_at: Option<String>,
    /// Minutes from disclosure to acknowledgement (or to now).
    pub delay_minutes: i64,
}

/// A delivery after the alert's expiry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LateDelivery {
    /// The alert.
    pub alert: String,
    /// The node.
    pub node: String,
    /// When delivered.
    pub delivered_at: String,
    /// When the alert expired.
    pub expires_at: String,
}

/// One disclosure, as the log records it: the answer to "who was told" (with
/// [`ReportOptions::subject_ref`], about one file) and the points of the charts over time.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DisclosureRecord {
    /// The `disclosed` entry's index in the log (its inclusion proof can be checked).
    pub index: u64,
    /// When the relay disclosed it (UTC, as the log holds it).
    pub time: Timestamp,
    /// The alert or follow-up.
    pub alert: String,
    /// alert, update, located, cancel (from its `posted` entry; empty if not in the copy).
    pub kind: String,
    /// actual, exercise, test.
    pub status: String,
    /// Who posted it.
    pub sender: String,
    /// The recipient unit.
    pub recipient: String,
    /// The fields disclosed (`all`, or the field paths).
    pub fields: String,
    /// The rules that permit it.
    pub rules: Vec<String>,
    /// Their legal bases, in the same order.
    pub legal_bases: Vec<String>,
    /// The recipient unit's nodes it was delivered to, and when.
    pub delivered: Vec<(String, Timestamp)>,
}

impl DisclosureRecord {
    /// Its counting keys: one per rule (a disclosure permitted by two rules counts once
    /// under each, as in [`Report::disclosures`]).
    pub fn keys(&self) -> Vec<DisclosureKey> {
        let sender_party = self.sender.split('/').next().unwrap_or_default();
        let recipient_party = self.recipient.split('/').next().unwrap_or_default();
        self.rules
            .iter()
            .zip(&self.legal_bases)
            .map(|(rule, basis)| DisclosureKey {
                status: self.status.clone(),
                sender_party: sender_party.to_owned(),
                recipient_party: recipient_party.to_owned(),
                rule: rule.clone(),
                legal_basis: basis.clone(),
            })
            .collect()
    }
}

/// The disclosures counted by day and key, for a chart over time: `day_of` names the day
/// of a time (the caller's local calendar day); rows sorted by day, then key.
pub fn disclosures_by_day(
    r: &Report,
    day_of: impl Fn(Timestamp) -> String,
) -> Vec<(String, DisclosureKey, u64)> {
    let mut counts: BTreeMap<(String, DisclosureKey), u64> = BTreeMap::new();
    for d in &r.disclosed {
        let day = day_of(d.time);
        for k in d.keys() {
            *counts.entry((day.clone(), k)).or_default() += 1;
        }
    }
    counts.into_iter().map(|((d, k), n)| (d, k, n)).collect()
}

/// The report.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    /// Entries considered (after the filters).
    pub entries: u64,
    /// Posts by status.
    pub posts: BTreeMap<String, u64>,
    /// Messages by status and kind (alert, update, located, cancel): the alerts' lives.
    pub lifecycle: BTreeMap<String, u64>,
    /// Alerts that reached their expiry.
    pub expired: u64,
    /// Alerts whose content was purged at the end of retention.
    pub purged: u64,
    /// Disclosures counted by key.
    pub disclosures: Vec<(DisclosureKey, u64)>,
    /// Refusals by status-less reason.
    pub refusals: BTreeMap<String, u64>,
    /// Disclosures not acknowledged within the delay.
    pub unacknowledged: Vec<Unacknowledged>,
    /// Deliveries after expiry.
    pub late_deliveries: Vec<LateDelivery>,
    /// Posts voided after a crash (left out of the counts).
    pub voided: u64,
    /// Each disclosure counted, in log order.
    pub disclosed: Vec<DisclosureRecord>,
}

/// Builds the report from verified entries.
pub fn build(entries: &[Entry], o: &ReportOptions) -> Report {
    let in_range =
        |e: &Entry| o.from.is_none_or(|f| e.time >= f) && o.to.is_none_or(|t| e.time < t);
    let voided: HashSet<AlertId> = entries
        .iter()
        .filter_map(|e| match &e.event {
            Event::Voided { alert, .. } => Some(*alert),
            _ => None,
        })
        .collect();
    let mut expires: HashMap<AlertId, Timestamp> = HashMap::new();
    let mut acks: HashMap<(AlertId, UnitRef), Timestamp> = HashMap::new();
    let mut kinds: HashMap<AlertId, String> = HashMap::new();
    let mut delivered: HashMap<(AlertId, UnitRef), Vec<(String, Timestamp)>> = HashMap::new();
    for e in entries {
        match &e.event {
            Event::Posted {
                alert,
                expires_at,
                kind,
                ..
            } => {
                expires.insert(*alert, *expires_at);
                kinds.insert(*alert, kind.to_string());
            }
            Event::Delivered {
                alert, recipient, ..
            } => {
                delivered
                    .entry((*alert, recipient.unit.clone()))
                    .or_default()
                    .push((recipient.to_string(), e.time));
            }
            Event::Acknowledged {
                alert, recipient, ..
            } => {
                acks.entry((*alert, recipient.unit.clone()))
                    .or_insert(e.time);
            }
            _ => {}
        }
    }
    // The alerts of one subject, and their follow-ups.
    let about: Option<HashSet<AlertId>> = o.subject_ref.as_ref().map(|mac| {
        let mut ids = HashSet::new();
        for e in entries {
            if let Event::Posted {
                alert,
                references,
                subject_ref,
                ..
            } = &e.event
            {
                if subject_ref.as_deref() == Some(mac.as_str())
                    || references.is_some_and(|r| ids.contains(&r))
                {
                    ids.insert(*alert);
                }
            }
        }
        ids
    });
    let mut r = Report {
        voided: voided.len() as u64,
        ..Report::default()
    };
    // `--party`: what the party's own auditor may read.
    let scope = o.party.clone().map_or(AuditScope::Full, AuditScope::Party);
    let mut counts: BTreeMap<DisclosureKey, u64> = BTreeMap::new();
    for e in entries.iter().filter(|e| in_range(e)) {
        if !scope.admits(&e.event) {
            continue;
        }
        if e.event.alert().is_some_and(|a| voided.contains(&a)) {
            continue;
        }
        if let Some(ids) = &about {
            if !e.event.alert().is_some_and(|a| ids.contains(&a)) {
                continue;
            }
        }
        r.entries += 1;
        match &e.event {
            Event::Posted { status, kind, .. } => {
                *r.posts.entry(status.to_string()).or_default() += 1;
                *r.lifecycle.entry(format!("{status} {kind}")).or_default() += 1;
            }
            Event::Expired { .. } => r.expired += 1,
            Event::Purged { .. } => r.purged += 1,
            Event::Disclosed {
                alert,
                sender,
                recipient,
                status,
                rules,
                legal_bases,
                fields,
                ..
            } => {
                r.disclosed.push(DisclosureRecord {
                    index: e.index,
                    time: e.time,
                    alert: alert.to_string(),
                    kind: kinds.get(alert).cloned().unwrap_or_default(),
                    status: status.to_string(),
                    sender: sender.to_string(),
                    recipient: recipient.to_string(),
                    fields: fields.to_string(),
                    rules: rules.clone(),
                    legal_bases: legal_bases.clone(),
                    delivered: delivered
                        .get(&(*alert, recipient.clone()))
                        .cloned()
                        .unwrap_or_default(),
                });
                for (rule, basis) in rules.iter().zip(legal_bases) {
                    *counts
                        .entry(DisclosureKey {
                            status: status.to_string(),
                            sender_party: sender.party().to_owned(),
                            recipient_party: recipient.party.clone(),
                            rule: rule.clone(),
                            legal_basis: basis.clone(),
                        })
                        .or_default() += 1;
                }
                let acked = acks.get(&(*alert, recipient.clone())).copied();
                let delay = acked.unwrap_or(o.now).ms_since(e.time);
                if delay > o.unacked_after_ms {
                    r.unacknowledged.push(Unacknowledged {
                        status: status.to_string(),
                        alert: alert.to_string(),
                        recipient: recipient.to_string(),
                        disclosed_at: e.time.to_string(),
                        acknowledged_at: acked.map(|t| t.to_string()),
                        delay_minutes: delay / 60_000,
                    });
                }
            }
            Event::Refused { reason, .. } => {
                *r.refusals.entry(reason.as_str().to_owned()).or_default() += 1
            }
            Event::Delivered {
                alert, recipient, ..
            } => {
                if let Some(x) = expires.get(alert) {
                    if e.time >= *x {
                        r.late_deliveries.push(LateDelivery {
                            alert: alert.to_string(),
                            node: recipient.to_string(),
                            delivered_at: e.time.to_string(),
                            expires_at: x.to_string(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    r.disclosures = counts.into_iter().collect();
    r
}

fn status_order(s: &str) -> u8 {
    match s {
        "actual" => 0,
        "exercise" => 1,
        _ => 2,
    }
}

/// The report for people.
pub fn to_table(r: &Report, o: &ReportOptions) -> String {
    let mut s = String::new();
    let range = format!(
        "{} to {}",
        o.from
            .map(|t| t.to_string())
            .unwrap_or_else(|| "the beginning".into()),
        o.to.map(|t| t.to_string()).unwrap_or_else(|| "now".into())
    );
    s.push_str(&format!("Audit report, {range}"));
    if let Some(p) = &o.party {
        s.push_str(&format!(", party {p}"));
    }
    s.push_str(&format!("\n{} entries considered", r.entries));
    if r.voided > 0 {
        s.push_str(&format!(
            " ({} posts voided by a relay crash left out)",
            r.voided
        ));
    }
    s.push_str("\n\nMessages by status and kind (each alert's life)\n");
    for (k, v) in &r.lifecycle {
        let k = if k.starts_with("actual") {
            k.clone()
        } else {
            format!("{} (NOT REAL)", k.to_uppercase())
        };
        s.push_str(&format!("  {k:<28} {v}\n"));
    }
    s.push_str(&format!(
        "  {:<28} {}\n  {:<28} {}\n",
        "expired", r.expired, "content purged", r.purged
    ));
    let mut statuses: Vec<&str> = r
        .disclosures
        .iter()
        .map(|(k, _)| k.status.as_str())
        .collect();
    statuses.sort_by_key(|s| status_order(s));
    statuses.dedup();
    for st in statuses {
        let banner = match st {
            "actual" => String::new(),
            other => format!(" — {} (NOT REAL ALERTS)", other.to_uppercase()),
        };
        s.push_str(&format!("\nDisclosures{banner}\n"));
        s.push_str(&format!(
            "  {:<8} {:<10} {:<28} {:>6}  {}\n",
            "sender", "recipient", "rule", "count", "legal basis"
        ));
        for (k, v) in r.disclosures.iter().filter(|(k, _)| k.status == st) {
            s.push_str(&format!(
                "  {:<8} {:<10} {:<28} {:>6}  {}\n",
                k.sender_party, k.recipient_party, k.rule, v, k.legal_basis
            ));
        }
    }
    s.push_str("\nRefusals by reason\n");
    if r.refusals.is_empty() {
        s.push_str("  none\n");
    }
    for (k, v) in &r.refusals {
        s.push_str(&format!("  {k:<18} {v}\n"));
    }
    s.push_str(&format!(
        "\nNot acknowledged within {} minutes\n",
        o.unacked_after_ms / 60_000
    ));
    if r.unacknowledged.is_empty() {
        s.push_str("  none\n");
    }
    for u in &r.unacknowledged {
        s.push_str(&format!(
            "  {}{} to {:<16} disclosed {}  {}\n",
            if u.status == "actual" {
                String::new()
            } else {
                format!("[{}] ", u.status.to_uppercase())
            },
            u.alert,
            u.recipient,
            u.disclosed_at,
            match &u.acknowledged_at {
                Some(a) => format!("acknowledged {a} ({} min)", u.delay_minutes),
                None => format!("never acknowledged ({} min so far)", u.delay_minutes),
            }
        ));
    }
    s.push_str("\nDeliveries after expiry\n");
    if r.late_deliveries.is_empty() {
        s.push_str("  none\n");
    }
    for l in &r.late_deliveries {
        s.push_str(&format!(
            "  {} to {} at {} (expired {})\n",
            l.alert, l.node, l.delivered_at, l.expires_at
        ));
    }
    s
}

fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_owned()
    }
}

/// The report as one CSV table (RFC 4180) with a `section` column, for a spreadsheet.
pub fn to_csv(r: &Report) -> String {
    let mut s = String::from("section,status,sender_party,recipient_party,rule,legal_basis,reason,alert,recipient,time,detail,count\n");
    let mut row = |cols: [&str; 12]| {
        let line: Vec<String> = cols.iter().map(|c| csv_field(c)).collect();
        s.push_str(&line.join(","));
        s.push('\n');
    };
    for (k, v) in &r.posts {
        row([
            "posts",
            k,
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            &v.to_string(),
        ]);
    }
    for (k, v) in &r.disclosures {
        row([
            "disclosures",
            &k.status,
            &k.sender_party,
            &k.recipient_party,
            &k.rule,
            &k.legal_basis,
            "",
            "",
            "",
            "",
            "",
            &v.to_string(),
        ]);
    }
    for (k, v) in &r.refusals {
        row([
            "refusals",
            "",
            "",
            "",
            "",
            "",
            k,
            "",
            "",
            "",
            "",
            &v.to_string(),
        ]);
    }
    for u in &r.unacknowledged {
        row([
            "unacknowledged",
            &u.status,
            "",
            "",
            "",
            "",
            "",
            &u.alert,
            &u.recipient,
            &u.disclosed_at,
            &u.acknowledged_at.clone().unwrap_or_else(|| "never".into()),
            &u.delay_minutes.to_string(),
        ]);
    }
    for l in &r.late_deliveries {
        row([
            "late_deliveries",
            "",
            "",
            "",
            "",
            "",
            "",
            &l.alert,
            &l.node,
            &l.delivered_at,
            &format!("expired {}", l.expires_at),
            "1",
        ]);
    }
    s
}

/// The report as JSON.
pub fn to_json(r: &Report) -> serde_json::Value {
    serde_json::json!({
        "entries": r.entries,
        "posts": r.posts,
        "lifecycle": r.lifecycle,
        "expired": r.expired,
        "purged": r.purged,
        "disclosures": r.disclosures.iter().map(|(k, v)| serde_json::json!({
            "status": k.status, "sender_party": k.sender_party, "recipient_party": k.recipient_party,
            "rule": k.rule, "legal_basis": k.legal_basis, "count": v,
        })).collect::<Vec<_>>(),
        "refusals": r.refusals,
        "unacknowledged": r.unacknowledged,
        "late_deliveries": r.late_deliveries,
        "voided": r.voided,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use filet_proto::alert::{Category, FieldSet, Kind, Risk, Status};
    use filet_proto::audit::RefusalReason;
    use filet_proto::Principal;

    fn p(s: &str) -> Principal {
        s.parse().unwrap()
    }

    fn t(min: i64) -> Timestamp {
        Timestamp(1_800_000_000_000 + min * 60_000)
    }

    fn entries() -> Vec<Entry> {
        let a = AlertId([1; 16]);
        let b = AlertId([2; 16]);
        let posted = |alert, status, at| Event::Posted {
            alert,
            kind: Kind::Alert,
            references: None,
            category: Category::Runaway,
            status,
            risk: Risk::Severe,
            sender: p("SPVQ/ESM/n1"),
            expires_at: t(at),
            commitment: String::new(),
            subject_ref: None,
            recipients: vec!["DPJ/RTS".parse().unwrap()],
        };
        let disclosed = |alert, status| Event::Disclosed {
            alert,
            sender: p("SPVQ/ESM/n1"),
            recipient: "DPJ/RTS".parse().unwrap(),
            category: Category::Runaway,
            status,
            rules: vec!["police-vers-protection".into()],
            legal_bases: vec!["LPJ, art. 35.4".into()],
            fields: FieldSet::all(),
        };
        let ev = vec![
            (0, posted(a, Status::Actual, 100)),
            (0, disclosed(a, Status::Actual)),
            (1, posted(b, Status::Exercise, 100)),
            (1, disclosed(b, Status::Exercise)),
            (
                5,
                Event::Acknowledged {
                    alert: a,
                    sender: p("SPVQ/ESM/n1"),
                    recipient: p("DPJ/RTS/r1"),
                },
            ),
            (
                6,
                Event::Refused {
                    principal: Some("SPVQ/ESM/n1".into()),
                    reason: RefusalReason::NotPermitted,
                    detail: "d".into(),
                    category: Some(Category::Runaway),
                    recipient: Some("ULAVAL/RECHERCHE".into()),
                    alert: None,
                },
            ),
            (
                200,
                Event::Delivered {
                    alert: b,
                    sender: p("SPVQ/ESM/n1"),
                    recipient: p("DPJ/RTS/r1"),
                    fields: FieldSet::all(),
                    rules: vec!["r".into()],
                    agreement: Some("a".into()),
                    agreement_version: Some(1),
                },
            ),
        ];
        ev.into_iter()
            .enumerate()
            .map(|(i, (m, e))| Entry::new(i as u64, t(m), e))
            .collect()
    }

    fn opts() -> ReportOptions {
        ReportOptions {
            from: None,
            to: None,
            party: None,
            unacked_after_ms: 60 * 60_000,
            now: t(300),
            subject_ref: None,
        }
    }

    #[test]
    fn counts_by_status_party_rule_and_lists_what_is_late() {
        let r = build(&entries(), &opts());
        assert_eq!(r.posts.get("actual"), Some(&1));
        assert_eq!(r.posts.get("exercise"), Some(&1));
        assert_eq!(r.disclosures.len(), 2);
        assert_eq!(r.disclosures[0].0.status, "actual");
        assert_eq!(r.disclosures[0].0.recipient_party, "DPJ");
        assert_eq!(r.disclosures[0].1, 1);
        assert_eq!(r.refusals.get("not_permitted"), Some(&1));
        // The exercise alert was never acknowledged: 299 minutes by now.
        assert_eq!(r.unacknowledged.len(), 1);
        assert_eq!(r.unacknowledged[0].status, "exercise");
        assert_eq!(r.unacknowledged[0].delay_minutes, 299);
        // Delivered at minute 200, expired at minute 100.
        assert_eq!(r.late_deliveries.len(), 1);
        let table = to_table(&r, &opts());
        assert!(
            table.contains("Disclosures — EXERCISE (NOT REAL ALERTS)"),
            "{table}"
        );
        let csv = to_csv(&r);
        assert!(
            csv.contains(
                "disclosures,actual,SPVQ,DPJ,police-vers-protection,\"LPJ, art. 35.4\",,,,,,1"
            ),
            "{csv}"
        );
    }

    #[test]
    fn answers_who_was_told_about_one_file_with_the_key() {
        let key = [7u8; 32];
        let mut es = entries();
        if let Event::Posted { subject_ref, .. } = &mut es[0].event {
            *subject_ref = Some(subject_ref_of(&key, "SPVQ-2026-04417"));
        }
        let mut o = opts();
        o.subject_ref = Some(subject_ref(&key, "SPVQ-2026-04417"));
        let r = build(&es, &o);
        assert_eq!(r.posts.get("actual"), Some(&1));
        assert_eq!(
            r.posts.get("exercise"),
            None,
            "the other alert is about another file"
        );
        assert_eq!(r.disclosures.len(), 1);
        o.subject_ref = Some(subject_ref(&key, "SPVQ-2026-00000"));
        assert_eq!(build(&es, &o).entries, 0);
    }

    #[test]
    fn each_disclosure_is_kept_with_its_deliveries_and_counted_by_day() {
        let mut es = entries();
        // The actual alert is delivered to a DPJ/RTS node at minute 2.
        es.insert(
            2,
            Entry::new(
                0,
                t(2),
                Event::Delivered {
                    alert: AlertId([1; 16]),
                    sender: p("SPVQ/ESM/n1"),
                    recipient: p("DPJ/RTS/r1"),
                    fields: FieldSet::all(),
                    rules: vec!["police-vers-protection".into()],
                    agreement: None,
                    agreement_version: None,
                },
            ),
        );
        let es: Vec<Entry> = es
            .into_iter()
            .enumerate()
            .map(|(i, e)| Entry::new(i as u64, e.time, e.event))
            .collect();
        let r = build(&es, &opts());
        assert_eq!(r.disclosed.len(), 2);
        let d = &r.disclosed[0];
        assert_eq!(d.index, 1);
        assert_eq!(d.time, t(0));
        assert_eq!(d.kind, "alert");
        assert_eq!(d.status, "actual");
        assert_eq!(d.recipient, "DPJ/RTS");
        assert_eq!(d.fields, "all");
        assert_eq!(d.rules, ["police-vers-protection"]);
        assert_eq!(d.legal_bases, ["LPJ, art. 35.4"]);
        assert_eq!(d.delivered, [("DPJ/RTS/r1".to_owned(), t(2))]);
        // Deliveries come from the whole copy: the exercise's, long after, is named too.
        assert_eq!(
            r.disclosed[1].delivered,
            [("DPJ/RTS/r1".to_owned(), t(200))]
        );
        // By day: both on one day, or on two when the day changes between them.
        let one = disclosures_by_day(&r, |_| "2027-01-15".into());
        assert_eq!(one.len(), 2, "two keys (actual and exercise) on one day");
        assert_eq!(one.iter().map(|x| x.2).sum::<u64>(), 2);
        let two = disclosures_by_day(&r, |x| if x < t(1) { "a".into() } else { "b".into() });
        assert_eq!(
            two.iter()
                .map(|(d, k, n)| (d.as_str(), k.status.as_str(), *n))
                .collect::<Vec<_>>(),
            [("a", "actual", 1), ("b", "exercise", 1)]
        );
        // The counts by key are the records' counts.
        let total: u64 = r.disclosures.iter().map(|x| x.1).sum();
        assert_eq!(
            total,
            r.disclosed
                .iter()
                .map(|d| d.keys().len() as u64)
                .sum::<u64>()
        );
    }

    #[test]
    fn parties_are_those_the_party_filter_selects() {
        let es = entries();
        let seen = parties(&es);
        assert_eq!(
            seen.iter().map(String::as_str).collect::<Vec<_>>(),
            ["DPJ", "SPVQ", "ULAVAL"]
        );
        for p in &seen {
            assert!(es.iter().any(|e| e.event.concerns_party(p)), "{p}");
        }
    }

    #[test]
    fn a_subject_ref_key_of_another_size_is_refused_with_the_expected_format() {
        assert_eq!(check_subject_ref_key(&[7; 32]), Ok(()));
        assert_eq!(
            check_subject_ref_key(&[b'a'; 64]),
            Err("64 bytes, expected the relay's key of 32 raw bytes (its DATA/keys/subject-ref.key, copied as is, not hex or base64)".into())
        );
    }

    fn subject_ref_of(key: &[u8], r: &str) -> String {
        filet_proto::audit::subject_ref_mac(key, r)
    }

    #[test]
    fn filters_by_time_and_party() {
        let mut o = opts();
        o.from = Some(t(2));
        let r = build(&entries(), &o);
        assert!(r.posts.is_empty());
        assert_eq!(r.refusals.get("not_permitted"), Some(&1));
        let mut o = opts();
        o.party = Some("CJQ".into());
        let r = build(&entries(), &o);
        assert_eq!(r.entries, 0);
    }
}
