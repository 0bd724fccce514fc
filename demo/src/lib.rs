//! `filet-demo` (run as `filet-relay demo`): the whole story in one process, on a temporary
//! directory, with a real relay and real QUIC clients, printed as a transcript. Every step
//! is checked; the demo fails (exit 3) if any did not happen as described.
//!
//! Its own crate so that the relay stays a server: this one depends on `filet-relay` and on
//! `filet-client` (the nodes, the auditor's verification, the report); the relay does not
//! depend on the client.
//!
//! The agreement and the alert are embedded from the repository's `examples/agreement.toml`
//! and `examples/alerts/runaway.toml`, the files the README's tour uses.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use filet_client::audit::{entry_line, fetch_and_verify};
use filet_client::render::{alert_text, receipt_text};
use filet_client::{Node, NodeConfig};
use filet_proto::alert::{AlertFile, AlertState, Disclosed, FieldPath, Kind};
use filet_proto::checkpoint::NoteVerifier;
use filet_proto::wire::{ErrorCode, Receipt};
use filet_proto::{AlertDraft, AlertId, Selector, UnitRef};
use filet_relay::clock::SystemClock;
use filet_relay::config::{Overrides, RelayConfig};
use filet_relay::Relay;
use tokio::sync::mpsc;

/// The example agreement, as embedded.
pub const AGREEMENT: &str = include_str!("../../examples/agreement.toml");
/// The example runaway alert, as embedded.
pub const RUNAWAY: &str = include_str!("../../examples/alerts/runaway.toml");

/// How long the demo waits for a pushed alert before calling the step failed.
const PUSH_WAIT: Duration = Duration::from_secs(10);

struct Transcript {
    failures: Vec<String>,
}

impl Transcript {
    fn say(&self, who: &str, what: &str) {
        let mut lines = what.lines();
        if let Some(first) = lines.next() {
            println!("[{who}] {first}");
        }
        for l in lines {
            println!("{:width$} {l}", "", width = who.len() + 2);
        }
    }

    fn check(&mut self, ok: bool, what: &str) {
        if ok {
            println!("    ✔ {what}");
        } else {
            println!("    ✘ {what}");
            self.failures.push(what.to_owned());
        }
    }
}

async fn node(pki: &Path, unit: &str, relay: &str) -> anyhow::Result<Node> {
    let stem = unit.replace('/', "-");
    let mut cfg =
        NodeConfig::from_profile_file(&pki.join("profiles").join(format!("{stem}.toml")))?;
    cfg.relay = relay.to_owned();
    Ok(Node::connect(&cfg).await?)
}

async fn next_push(rx: &mut mpsc::Receiver<Disclosed>) -> Option<Disclosed> {
    tokio::time::timeout(PUSH_WAIT, rx.recv())
        .await
        .ok()
        .flatten()
}

/// Acknowledges `id` from the node named `who`.
async fn n_ack(who: &str, rts: &Node, ikat: &Node, cjq: &Node, id: AlertId) -> anyhow::Result<()> {
    let n = match who {
        "DPJ/RTS" => rts,
        "SPVQ/IKAT" => ikat,
        _ => cjq,
    };
    n.ack(id).await?;
    Ok(())
}

fn u(s: &str) -> UnitRef {
    s.parse().unwrap_or_else(|_| UnitRef {
        party: s.into(),
        unit: String::new(),
    })
}

/// Runs the demo in `dir` (a temporary directory when `None`). Returns whether every step
/// happened as described.
///
/// # Errors
/// Setup failures (PKI, relay start, connections) as errors; failed checks make it return
/// `Ok(false)`.
pub async fn run(dir: Option<PathBuf>) -> anyhow::Result<bool> {
    let tmp;
    let dir = match dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_owned()
        }
    };
    let mut t = Transcript {
        failures: Vec::new(),
    };
    println!("== Filet demo: a runaway alert crosses the relay, per the agreement ==");
    println!("   working directory {}", dir.display());

    // 1. The agreement and its PKI.
    let agreement_path = dir.join("agreement.toml");
    std::fs::write(&agreement_path, AGREEMENT)?;
    let pki = dir.join("pki");
    let report = filet_certs::dev(&pki, &agreement_path, "127.0.0.1:4433", false)?;
    t.say(
        "pki",
        &format!(
            "dev PKI for agreement table-regionale-quebec-esj: a CA, the relay ({}), {} node certificates and profiles",
            report.relay_names.join(", "),
            report.nodes.len()
        ),
    );

    // 2. The relay, on a free loopback port.
    let cfg = RelayConfig::load(
        None,
        Overrides {
            listen: Some("127.0.0.1:0".parse()?),
            data_dir: Some(dir.join("data")),
            agreement: Some(agreement_path.clone()),
            pki_dir: Some(pki.clone()),
        },
    )?;
    let relay = Relay::start(cfg, Arc::new(SystemClock)).await?;
    let addr = relay.local_addr()?.to_string();
    let verifier = NoteVerifier::parse(relay.verifier_key())?;
    let relay_key = relay.verifier_key().to_owned();
    t.say(
        "relay",
        &format!("listening on {addr} (QUIC, ALPN filet/1, TLS 1.3, client certificates required)"),
    );
    t.say(
        "relay",
        &format!("audit verifier key {}", relay.verifier_key()),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(relay.run(async {
        let _ = stop_rx.await;
    }));

    // 3. Nodes connect; recipients follow their mailboxes.
    let esm = node(&pki, "SPVQ/ESM", &addr).await?;
    let rts = node(&pki, "DPJ/RTS", &addr).await?;
    let ikat = node(&pki, "SPVQ/IKAT", &addr).await?;
    let cssc = node(&pki, "CSSC/PIVOT", &addr).await?;
    for (n, who) in [
        (&esm, "SPVQ/ESM"),
        (&rts, "DPJ/RTS"),
        (&ikat, "SPVQ/IKAT"),
        (&cssc, "CSSC/PIVOT"),
    ] {
        let w = n.whoami().await?;
        t.say(
            who,
            &format!(
                "connected as {} (may send under: {})",
                w.principal,
                if w.may_send_under.is_empty() {
                    "no rule".into()
                } else {
                    w.may_send_under.join(", ")
                }
            ),
        );
    }
    let mut rts_rx = rts.subscribe().await?;
    let mut ikat_rx = ikat.subscribe().await?;
    let mut cssc_rx = cssc.subscribe().await?;
    t.say("CJQ/PIVOT", "offline for now");

    // 4. SPVQ/ESM posts the runaway alert.
    let draft = AlertFile::from_toml(RUNAWAY)
        .map_err(anyhow::Error::msg)?
        .into_draft();
    t.say(
        "SPVQ/ESM",
        "posts the runaway alert SPVQ-2026-04417 (risk severe)",
    );
    let receipt: Receipt = esm.post(draft.clone()).await?;
    t.say("SPVQ/ESM", &receipt_text(&receipt));
    let units: Vec<String> = receipt
        .recipients
        .iter()
        .map(|r| r.unit.to_string())
        .collect();
    t.check(
        units == ["CJQ/PIVOT", "DPJ/RTS", "SPVQ/GRIPP", "SPVQ/IKAT"],
        "the receipt names exactly CJQ/PIVOT, DPJ/RTS, SPVQ/GRIPP and SPVQ/IKAT, each with its rule",
    );
    let id = receipt.alert;

    // 5. DPJ/RTS gets every field.
    let got = next_push(&mut rts_rx).await;
    if let Some(d) = &got {
        t.say("DPJ/RTS", &format!("pushed:\n{}", alert_text(d)));
    }
    t.check(
        got.as_ref().is_some_and(|d| {
            d.envelope.id == id
                && d.content == draft.content
                && d.rules == ["police-vers-protection"]
        }),
        "DPJ/RTS received every field, under police-vers-protection",
    );

    // 6. SPVQ/IKAT gets the reduced set.
    let got = next_push(&mut ikat_rx).await;
    if let Some(d) = &got {
        t.say("SPVQ/IKAT", &format!("pushed:\n{}", alert_text(d)));
    }
    t.check(
        got.as_ref().is_some_and(|d| {
            d.envelope.id == id
                && d.content.subject.reference.is_none()
                && d.content.last_seen.geo.is_none()
                && d.content.last_seen.place.is_some()
                && !d.fields.contains(FieldPath::SubjectReference)
                && d.rules == ["enquete-vers-patrouille"]
        }),
        "SPVQ/IKAT received the reduced alert: no subject.reference, no last_seen.geo",
    );

    // 7. CSSC/PIVOT gets nothing: its mailbox is empty although the post is published.
    let cssc_inbox = cssc.inbox().await?;
    t.say(
        "CSSC/PIVOT",
        &format!("mailbox holds {} alert(s)", cssc_inbox.len()),
    );
    t.check(
        cssc_inbox.is_empty() && cssc_rx.try_recv().is_err(),
        "CSSC/PIVOT received nothing: no rule lets SPVQ/ESM send to schools",
    );

    // 8. A post naming ULAVAL/RECHERCHE is refused whole.
    let mut to_research = draft.clone();
    to_research.to = vec![Selector::Unit(u("ULAVAL/RECHERCHE"))];
    t.say("SPVQ/ESM", "posts the same alert to ULAVAL/RECHERCHE");
    match esm.post(to_research).await {
        Err(e) => {
            t.say("SPVQ/ESM", &format!("refused: {e}"));
            t.check(
                e.relay_error().is_some_and(|r| {
                    r.code == ErrorCode::NotPermitted && r.message.contains("ULAVAL/RECHERCHE")
                }),
                "the post to ULAVAL/RECHERCHE was refused, naming the recipient and the category",
            );
        }
        Ok(r) => t.check(
            false,
            &format!(
                "the post to ULAVAL/RECHERCHE was refused (it got receipt {})",
                r.alert
            ),
        ),
    }

    // 9. CJQ/PIVOT connects later and receives it (store and forward).
    let cjq = node(&pki, "CJQ/PIVOT", &addr).await?;
    let mut cjq_rx = cjq.subscribe().await?;
    let got = next_push(&mut cjq_rx).await;
    if let Some(d) = &got {
        t.say(
            "CJQ/PIVOT",
            &format!("connects and is pushed what waited:\n{}", alert_text(d)),
        );
    }
    t.check(
        got.as_ref()
            .is_some_and(|d| d.envelope.id == id && d.content == draft.content),
        "CJQ/PIVOT, offline at posting time, received the alert when it connected",
    );

    // 10. Recipients acknowledge.
    for (n, who) in [(&rts, "DPJ/RTS"), (&ikat, "SPVQ/IKAT"), (&cjq, "CJQ/PIVOT")] {
        let idx = n.ack(id).await?;
        t.say(who, &format!("acknowledges {id} (audit entry #{idx})"));
    }
    let rts_left = rts.inbox().await?;
    t.check(
        rts_left.is_empty(),
        "an acknowledged alert leaves the unit's mailbox",
    );

    // 10b. Partners' other systems speak CAP 1.2: the sender exports, and the export
    // imports back to the same alert.
    let (own, recipients) = esm.get_alert(id).await?;
    let xml = filet_proto::cap::export(&filet_proto::cap::ExportInput {
        envelope: &own.envelope,
        content: &own.content,
        note: own.note.as_deref(),
        recipients: &recipients,
        references_sent: None,
    });
    let back = filet_proto::cap::import(&xml);
    t.say(
        "SPVQ/ESM",
        &format!(
            "exports {id} as CAP 1.2 ({} bytes, scope Private, addresses {})",
            xml.len(),
            recipients
                .iter()
                .map(|u| u.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    t.check(
        filet_proto::cap::check(&xml).is_ok()
            && back.as_ref().is_ok_and(|b| b.draft.content == draft.content && b.recipients == recipients),
        "the CAP 1.2 export passes the CAP checks and imports back to the same content and recipients",
    );

    // 11. The investigator refines the alert, then the youth is located.
    let mut update = draft.clone();
    update.kind = Kind::Update;
    update.references = Some(id);
    update.risk = filet_proto::Risk::Extreme;
    update.content.last_seen.place = Some("Gare du Palais, quai 2".into());
    update.content.last_seen.geo = None;
    t.say(
        "SPVQ/ESM",
        "updates the alert: seen at Gare du Palais, risk now extreme",
    );
    let up = esm.post(update).await?;
    t.say("SPVQ/ESM", &receipt_text(&up));
    let mut seen_update = Vec::new();
    for (rx, who) in [
        (&mut rts_rx, "DPJ/RTS"),
        (&mut ikat_rx, "SPVQ/IKAT"),
        (&mut cjq_rx, "CJQ/PIVOT"),
    ] {
        if let Some(d) = next_push(rx).await {
            t.say(who, &format!("pushed:\n{}", alert_text(&d)));
            seen_update.push(
                d.envelope.references == Some(id)
                    && d.state == AlertState::Updated
                    && d.envelope.kind == Kind::Update,
            );
        }
    }
    t.check(
        seen_update.len() == 3 && seen_update.iter().all(|x| *x),
        "every recipient that received the alert received the update (state updated)",
    );
    let mut located = AlertDraft::new(draft.category, draft.risk, "", "");
    located.content = Default::default();
    located.kind = Kind::Located;
    located.references = Some(id);
    located.note = Some("Retrouvée saine et sauve, prise en charge par la DPJ".into());
    t.say("SPVQ/ESM", "marks the youth located");
    let loc = esm.post(located).await?;
    t.say("SPVQ/ESM", &receipt_text(&loc));
    let mut seen_located = Vec::new();
    for (rx, who) in [
        (&mut rts_rx, "DPJ/RTS"),
        (&mut ikat_rx, "SPVQ/IKAT"),
        (&mut cjq_rx, "CJQ/PIVOT"),
    ] {
        if let Some(d) = next_push(rx).await {
            t.say(who, &format!("pushed:\n{}", alert_text(&d)));
            seen_located.push(d.envelope.kind == Kind::Located && d.state == AlertState::Located);
            n_ack(who, &rts, &ikat, &cjq, d.envelope.id).await?;
        }
    }
    n_ack("DPJ/RTS", &rts, &ikat, &cjq, up.alert).await?;
    n_ack("SPVQ/IKAT", &rts, &ikat, &cjq, up.alert).await?;
    n_ack("CJQ/PIVOT", &rts, &ikat, &cjq, up.alert).await?;
    t.check(
        seen_located.len() == 3 && seen_located.iter().all(|x| *x),
        "every recipient of the original was told the youth is located: nobody keeps searching",
    );

    // 12. The auditor lists and verifies the log.
    let auditor = node(&pki, "TABLE/CONFORMITE", &addr).await?;
    let log = fetch_and_verify(&auditor, &verifier).await?;
    t.say(
        "TABLE/CONFORMITE",
        &format!(
            "audit log ({} entries, checkpoint signed by {}):",
            log.checkpoint.size,
            verifier.name()
        ),
    );
    for (i, b) in &log.entries {
        println!("      {}", entry_line(*i, b));
    }
    let text: Vec<String> = log.entries.iter().map(|(i, b)| entry_line(*i, b)).collect();
    let has = |needle: &str| text.iter().any(|l| l.contains(needle));
    t.check(log.complete, "the auditor recomputed the Merkle root from every entry and it matches the signed checkpoint");
    t.check(
        has(&format!("{id} disclosed to DPJ/RTS under police-vers-protection"))
            && has(&format!("{id} disclosed to SPVQ/IKAT under enquete-vers-patrouille"))
            && has("refused (not_permitted)")
            && has(&format!("{id} acknowledged by CJQ/PIVOT"))
            && !text.iter().any(|l| l.contains("CSSC/PIVOT") && l.contains("disclosed")),
        "the log holds each disclosure with its rule, the refusal and the acknowledgements, and nothing for CSSC/PIVOT",
    );
    let proof = auditor
        .inclusion_proof(receipt.recipients[1].audit_index, log.checkpoint.size)
        .await?;
    let (di, dbytes) = log
        .entries
        .iter()
        .find(|(i, _)| *i == receipt.recipients[1].audit_index)
        .cloned()
        .unwrap_or_default();
    t.check(
        filet_proto::merkle::verify_inclusion(
            &filet_proto::merkle::leaf_hash(&dbytes),
            di,
            log.checkpoint.size,
            &proof,
            &log.checkpoint.root,
        )
        .is_ok(),
        "the inclusion proof of the disclosure to DPJ/RTS verifies against the signed root",
    );
    let unit_auditor = node(&pki, "CSSC/PIVOT", &addr).await?;
    let denied = unit_auditor.audit_entries(0, 1, 1, false).await;
    t.check(
        denied
            .as_ref()
            .err()
            .and_then(|e| e.relay_error())
            .is_some_and(|r| r.code == ErrorCode::AuditDenied),
        "a unit without audit rights (CSSC/PIVOT) is refused the log",
    );

    // 13. The auditor keeps an offline copy, verifies it without the relay, and reports.
    let audit_dir = dir.join("audit-table");
    let pulled =
        filet_client::audit_dir::pull(&auditor, &audit_dir, Some(relay_key.as_str())).await?;
    let offline = filet_client::audit_dir::verify(&audit_dir, None)?;
    t.say(
        "TABLE/CONFORMITE",
        &format!(
            "pulled {} entries into {}; verified offline: checkpoint of {} entries",
            pulled.new_entries,
            audit_dir.display(),
            offline.checkpoint.size
        ),
    );
    let entries = filet_client::audit_dir::AuditDir::open(&audit_dir)?.entries()?;
    let opts = filet_client::report::ReportOptions {
        from: None,
        to: None,
        party: None,
        unacked_after_ms: 60 * 60_000,
        now: filet_proto::Timestamp::now(),
        subject_ref: None,
    };
    let report = filet_client::report::build(&entries, &opts);
    t.say(
        "TABLE/CONFORMITE",
        &format!(
            "report:\n{}",
            filet_client::report::to_table(&report, &opts)
        ),
    );
    t.check(
        report.lifecycle.get("actual alert") == Some(&1)
            && report.lifecycle.get("actual update") == Some(&1)
            && report.lifecycle.get("actual located") == Some(&1)
            && report.refusals.get("not_permitted") == Some(&1),
        "the report shows the whole life of the alert (alert, update, located) and the refusal",
    );

    for n in [esm, rts, ikat, cssc, cjq, auditor, unit_auditor] {
        n.close().await;
    }
    let _ = stop_tx.send(());
    server.await??;
    let ok = t.failures.is_empty();
    println!();
    if ok {
        println!("== demo complete: every step happened as described ==");
    } else {
        println!(
            "== demo FAILED: {} step(s) did not happen as described ==",
            t.failures.len()
        );
        for f in &t.failures {
            println!("   - {f}");
        }
    }
    Ok(ok)
}
