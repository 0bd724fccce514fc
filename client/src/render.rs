//! Human and JSON renderings of what the relay returns, shared by `filet` and the demo.
//!
//! Exercise and test alerts are marked in every rendering: a banner in human output, the
//! `status` key in JSON.

use filet_proto::alert::{Disclosed, FieldSet, Status};
use filet_proto::wire::{Receipt, RecipientStatus};
use filet_proto::AlertId;
use serde_json::{json, Value};

/// `*** EXERCISE ***`, `*** TEST ***` or nothing.
pub fn status_banner(s: Status) -> &'static str {
    match s {
        Status::Actual => "",
        Status::Exercise => "*** EXERCISE — NOT A REAL ALERT *** ",
        Status::Test => "*** TEST — NOT A REAL ALERT *** ",
    }
}

fn fields_text(f: FieldSet) -> String {
    if f.is_all() {
        "all fields".into()
    } else if f.is_empty() {
        "no content field".into()
    } else {
        f.paths().join(", ")
    }
}

/// A receipt for people: alert id, then one line per recipient with its rule, fields and
/// audit index.
pub fn receipt_text(r: &Receipt) -> String {
    let mut s = format!(
        "{} {} — received {}, expires {}, audit entry #{}{}\n",
        if r.duplicate {
            "receipt (already posted)"
        } else {
            "receipt"
        },
        r.alert,
        r.received_at,
        r.expires_at,
        r.posted_index,
        if r.duplicate {
            " (same idempotency key)"
        } else {
            ""
        }
    );
    s.push_str(&format!("  {} recipient unit(s):\n", r.recipients.len()));
    for x in &r.recipients {
        s.push_str(&format!(
            "    {:<18} rule {:<28} {:<16} audit #{}\n",
            x.unit.to_string(),
            x.rules.join("+"),
            if x.fields.is_all() {
                "all fields".to_string()
            } else {
                format!("{} fields", x.fields.iter().count())
            },
            x.audit_index
        ));
    }
    s
}

/// A receipt as one JSON object.
pub fn receipt_json(r: &Receipt) -> Value {
    json!({
        "alert": r.alert.to_string(),
        "received_at": r.received_at.to_string(),
        "expires_at": r.expires_at.to_string(),
        "posted_index": r.posted_index,
        "duplicate": r.duplicate,
        "recipients": r.recipients.iter().map(|x| json!({
            "unit": x.unit.to_string(),
            "rules": x.rules,
            "rule": x.rules.first(),
            "fields": x.fields.paths(),
            "audit_index": x.audit_index,
        })).collect::<Vec<_>>(),
        "checkpoint": r.checkpoint,
    })
}

/// An alert for people: a header line, then each disclosed field on its own line; fields
/// the unit may not see are not shown at all.
pub fn alert_text(d: &Disclosed) -> String {
    let e = &d.envelope;
    let mut s = format!(
        "{}{} {} {} [{}] from {} — rule {}\n",
        status_banner(e.status),
        e.kind,
        e.category,
        e.id,
        e.risk,
        e.sender,
        d.rules.join("+")
    );
    if let Some(r) = e.references {
        s.push_str(&format!("  references      {r}\n"));
    }
    let c = &d.content;
    let mut line = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            s.push_str(&format!("  {k:<15} {v}\n"));
        }
    };
    line("reference", c.subject.reference.clone());
    line("given name", c.subject.given_name.clone());
    line("age", c.subject.age.map(|a| a.to_string()));
    line("description", c.subject.description.clone());
    line("last seen at", c.last_seen.at.map(|t| t.to_string()));
    line("last seen place", c.last_seen.place.clone());
    line(
        "last seen geo",
        c.last_seen.geo.map(|g| format!("{}, {}", g.0, g.1)),
    );
    line("instructions", c.instructions.clone());
    line("contact", c.contact.clone());
    line("note", d.note.clone());
    line("state", Some(d.state.to_string()));
    if d.history.len() > 1 || d.state.is_closed() {
        let steps: Vec<String> = d
            .history
            .iter()
            .map(|h| {
                format!(
                    "{} {}{}",
                    h.kind
                        .map(|k| k.to_string())
                        .unwrap_or_else(|| "expired".into()),
                    h.at,
                    h.note
                        .as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        line("history", Some(steps.join("; ")));
    }
    line("received", Some(e.received_at.to_string()));
    line("expires", Some(e.expires_at.to_string()));
    line("you may see", Some(fields_text(d.fields)));
    s
}

/// Where an alert stands with each recipient unit (`filet status`): one line per unit.
pub fn status_text(alert: AlertId, st: &[RecipientStatus]) -> String {
    let mut s = format!("alert {alert}: {} recipient unit(s)\n", st.len());
    for r in st {
        s.push_str(&format!(
            "    {:<18} rule {:<28} disclosed #{:<6} {}\n",
            r.unit.to_string(),
            r.rules.join("+"),
            r.disclosed_index,
            match &r.acked {
                Some((node, at, index)) => format!("acknowledged by {node} at {at} (#{index})"),
                None => "not acknowledged".to_owned(),
            }
        ));
    }
    s
}

/// [`status_text`] as one JSON object.
pub fn status_json(alert: AlertId, st: &[RecipientStatus]) -> Value {
    json!({
        "alert": alert.to_string(),
        "recipients": st.iter().map(|r| json!({
            "unit": r.unit.to_string(),
            "rules": r.rules,
            "legal_bases": r.legal_bases,
            "fields": r.fields.paths(),
            "disclosed_index": r.disclosed_index,
            "acked_by": r.acked.as_ref().map(|a| a.0.to_string()),
            "acked_at": r.acked.as_ref().map(|a| a.1.to_string()),
            "ack_index": r.acked.as_ref().map(|a| a.2),
        })).collect::<Vec<_>>(),
    })
}
