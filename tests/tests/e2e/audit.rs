//! Audit access (requirements §7): the full auditor reads and verifies every entry; a party's own
//! compliance unit reads only the entries of its party, each proven included; a unit
//! without audit rights is refused, and the refusal is itself logged.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::collections::BTreeSet;

use filet_client::audit::fetch_and_verify;
use filet_client::Node;
use filet_proto::audit::{Entry, Event, RefusalReason};
use filet_proto::checkpoint::open_checkpoint;
use filet_proto::merkle::{leaf_hash, verify_consistency, verify_inclusion, MemoryTree};
use filet_proto::wire::{ErrorCode, Receipt};
use filet_proto::{Category, Selector};
use filet_tests::*;

/// Some activity touching DPJ and some not: a runaway alert to the four permitted units
/// (DPJ/RTS among them), an alert to SPVQ/IKAT only, an acknowledgement by DPJ/RTS, and a
/// refused post by DPCP/PROCUREURS. Returns the receipts (the DPJ one first).
async fn activity(net: &TestNet, relay: &TestRelay) -> (Receipt, Receipt) {
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let dpcp = net.node("DPCP/PROCUREURS", relay.addr).await;
    let to_dpj = esm.post(runaway()).await.unwrap();
    let mut internal = alert(Category::Runaway, "SPVQ-INTERNE-1");
    internal.to = vec![Selector::Unit(unit("SPVQ/IKAT"))];
    let spvq_only = esm.post(internal).await.unwrap();
    rts.ack(to_dpj.alert).await.unwrap();
    refusal(dpcp.post(alert(Category::Runaway, "DPCP-1")).await);
    for n in [esm, rts, dpcp] {
        n.close().await;
    }
    (to_dpj, spvq_only)
}

#[tokio::test]
async fn the_full_auditor_reads_every_entry_and_the_recomputed_root_matches_the_signed_checkpoint()
{
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let verifier = relay.verifier();
    let (receipt, _) = activity(&net, &relay).await;
    let table = net.node("TABLE/CONFORMITE", relay.addr).await;

    let log = fetch_and_verify(&table, &verifier).await.unwrap();

    assert!(log.complete);
    let size = log.checkpoint.size;
    assert_eq!(
        log.entries.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (0..size).collect::<Vec<_>>(),
        "every index, in order"
    );
    // Recomputed here too, independently of the client library.
    let mut tree = MemoryTree::new();
    for (_, bytes) in &log.entries {
        tree.push_leaf(bytes);
    }
    assert_eq!(tree.root(), log.checkpoint.root);
    let names: Vec<&str> = log
        .entries
        .iter()
        .map(|(_, b)| Entry::from_bytes(b).unwrap().event.name())
        .collect();
    assert_eq!(
        names,
        [
            "relay_started",
            "agreement_loaded",
            "crl_loaded",
            "posted",
            "disclosed",
            "disclosed",
            "disclosed",
            "disclosed",
            "posted",
            "disclosed",
            "acknowledged",
            "refused",
        ]
    );
    // The log grew only by appending since the receipt's checkpoint.
    let old = open_checkpoint(&receipt.checkpoint, &verifier).unwrap();
    let proof = table.consistency_proof(old.size, size).await.unwrap();
    verify_consistency(old.size, size, &old.root, &log.checkpoint.root, &proof).unwrap();
    table.close().await;
    relay.stop().await;
}

#[tokio::test]
async fn a_party_auditor_reads_only_its_partys_entries_each_with_an_inclusion_proof_that_verifies()
{
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let verifier = relay.verifier();
    let (to_dpj, spvq_only) = activity(&net, &relay).await;
    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    let dpj = net.node("DPJ/CONFORMITE", relay.addr).await;
    let all = full_log(&table, &verifier).await;

    let cp = open_checkpoint(&dpj.checkpoint().await.unwrap(), &verifier).unwrap();
    assert_eq!(cp.size, all.len() as u64, "nothing was logged in between");
    let mut seen = Vec::new();
    let mut start = 0;
    while start < cp.size {
        let (page, next) = dpj
            .audit_entries(start, cp.size, cp.size, false)
            .await
            .unwrap();
        for e in page {
            // Proofs come with every entry for a party auditor, even unasked.
            verify_inclusion(&leaf_hash(&e.entry), e.index, cp.size, &e.proof, &cp.root)
                .unwrap_or_else(|err| panic!("entry {}: {err}", e.index));
            let entry = Entry::from_bytes(&e.entry).unwrap();
            assert!(entry.event.concerns_party("DPJ"), "{:?}", entry.event);
            seen.push(e.index);
        }
        assert!(next > start);
        start = next;
    }

    let expected: Vec<u64> = all
        .iter()
        .filter(|e| e.event.concerns_party("DPJ"))
        .map(|e| e.index)
        .collect();
    assert_eq!(seen, expected);
    // Exactly: the post that named DPJ/RTS among its recipients, the disclosure to
    // DPJ/RTS (not those to CJQ or SPVQ units), and DPJ/RTS's acknowledgement. Nothing of
    // the SPVQ-only alert, of the DPCP refusal, or of the relay's own start.
    let dpj_disclosure = to_dpj
        .recipients
        .iter()
        .find(|r| r.unit.to_string() == "DPJ/RTS")
        .unwrap()
        .audit_index;
    let ack = all
        .iter()
        .find(|e| e.event.name() == "acknowledged")
        .unwrap()
        .index;
    assert_eq!(seen, [to_dpj.posted_index, dpj_disclosure, ack]);
    let hidden: BTreeSet<u64> = std::iter::once(spvq_only.posted_index)
        .chain(spvq_only.recipients.iter().map(|r| r.audit_index))
        .collect();
    assert!(hidden.iter().all(|i| !seen.contains(i)));
    // Nor can it ask for the proof of an entry of another party.
    let other = *hidden.iter().next().unwrap();
    let e = refusal(dpj.inclusion_proof(other, cp.size).await);
    assert_refusal(
        &e,
        ErrorCode::AuditDenied,
        &format!("audit entry {other} does not concern party DPJ"),
    );
    // The client library's verification agrees: per-entry proofs, not a recomputed root.
    let log = fetch_and_verify(&dpj, &verifier).await.unwrap();
    assert!(!log.complete);
    assert_eq!(
        log.entries.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        seen
    );
    for n in [table, dpj] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn a_unit_without_audit_rights_is_refused_and_the_refusal_is_logged() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let cssc = net.node("CSSC/PIVOT", relay.addr).await;

    let entries = refusal(cssc.audit_entries(0, 1, 1, false).await);
    let proof = refusal(cssc.inclusion_proof(0, 1).await);
    // A consistency proof holds leaf hashes of single entries (from n to n + 1, the hash
    // of entry n): audit rights only. The signed checkpoint stays readable by every member.
    let consistency = refusal(cssc.consistency_proof(1, 2).await);
    assert!(cssc.checkpoint().await.is_ok());

    assert_refusal(
        &entries,
        ErrorCode::AuditDenied,
        "CSSC/PIVOT/cssc-pivot-01 asked for audit entries but CSSC/PIVOT has no audit right in the agreement",
    );
    assert_refusal(
        &proof,
        ErrorCode::AuditDenied,
        "CSSC/PIVOT/cssc-pivot-01 asked for an inclusion proof but CSSC/PIVOT has no audit right in the agreement",
    );
    assert_refusal(
        &consistency,
        ErrorCode::AuditDenied,
        "CSSC/PIVOT/cssc-pivot-01 asked for a consistency proof but CSSC/PIVOT has no audit right in the agreement",
    );
    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&table, &relay.verifier()).await;
    let refusals: Vec<&Event> = events(&log, "refused").iter().map(|e| &e.event).collect();
    let denied = |detail: &str| Event::Refused {
        principal: Some("CSSC/PIVOT/cssc-pivot-01".into()),
        reason: RefusalReason::AuditDenied,
        detail: detail.into(),
        category: None,
        recipient: None,
        alert: None,
    };
    assert_eq!(
        refusals,
        [
            &denied(&entries.message),
            &denied(&proof.message),
            &denied(&consistency.message)
        ]
    );
    for n in [cssc, table] {
        n.close().await;
    }
    relay.stop().await;
}

/// Issue 10, item 7: every audit request of a unit without audit rights appended (and
/// fsynced) an entry: 30 requests, 30 entries.
#[tokio::test]
async fn refusals_past_the_limit_per_principal_are_counted_in_one_entry_not_logged_one_by_one() {
    let net = TestNet::new();
    // The clock stands still while the requests are refused: no token comes back.
    let clock = filet_relay::clock::ManualClock::new(filet_proto::Timestamp::now());
    let relay =
        TestRelay::start_with_clock(net.relay_config(), std::sync::Arc::new(clock.clone())).await;
    let cssc = net.node("CSSC/PIVOT", relay.addr).await;
    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    let denied_entries = |log: &[Entry]| -> Vec<String> {
        log.iter()
            .filter_map(|e| match &e.event {
                Event::Refused {
                    principal: Some(p),
                    reason: RefusalReason::AuditDenied,
                    detail,
                    ..
                } if p == "CSSC/PIVOT/cssc-pivot-01" => Some(detail.clone()),
                _ => None,
            })
            .collect()
    };

    for _ in 0..30 {
        let e = refusal(cssc.audit_entries(0, 1, 1, false).await);
        assert_eq!(e.code, ErrorCode::AuditDenied, "{e:?}");
    }
    let itemized = denied_entries(&full_log(&table, &relay.verifier()).await);
    // A minute later, the 20 not itemized are logged in one entry.
    clock.advance(61_000);
    let deadline = std::time::Instant::now() + WAIT;
    let log = loop {
        let log = denied_entries(&full_log(&table, &relay.verifier()).await);
        if log.len() > itemized.len() || std::time::Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };

    assert_eq!(
        itemized.len(),
        10,
        "30 refused audit requests made {} entries",
        itemized.len()
    );
    assert_eq!(log.len(), 11, "{log:#?}");
    let last = &log[10];
    assert!(
        last.starts_with(
            "20 more refusals of principal CSSC/PIVOT/cssc-pivot-01 for audit_denied since "
        ) && last.ends_with("were not itemized: over the limit of 10 itemized per minute"),
        "{last}"
    );
    for n in [cssc, table] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn every_audit_entry_of_a_post_matches_its_receipt() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    let receipt = esm.post(runaway()).await.unwrap();

    let log = full_log(&table, &relay.verifier()).await;

    let Event::Posted {
        alert,
        sender,
        recipients,
        category,
        commitment,
        subject_ref,
        ..
    } = at(&log, receipt.posted_index)
    else {
        panic!("entry {} is not `posted`", receipt.posted_index)
    };
    assert_eq!(*alert, receipt.alert);
    assert_eq!(sender.to_string(), "SPVQ/ESM/spvq-esm-01");
    assert_eq!(*category, Category::Runaway);
    let units: Vec<_> = receipt.recipients.iter().map(|r| r.unit.clone()).collect();
    assert_eq!(*recipients, units);
    assert_eq!(commitment.len(), 64, "a SHA-256 commitment, hex");
    let subject_ref = subject_ref.as_deref().unwrap();
    assert_eq!(subject_ref.len(), 64, "an HMAC of the reference, hex");
    for r in &receipt.recipients {
        let Event::Disclosed {
            alert,
            recipient,
            rules,
            legal_bases,
            fields,
            ..
        } = at(&log, r.audit_index)
        else {
            panic!("entry {} is not `disclosed`", r.audit_index)
        };
        assert_eq!(
            (alert, recipient, rules, fields),
            (&receipt.alert, &r.unit, &r.rules, &r.fields)
        );
        assert_eq!(legal_bases.len(), rules.len());
    }
    // No entry holds the alert's content.
    for e in &log {
        let text = String::from_utf8(e.to_bytes()).unwrap();
        for content in ["SPVQ-2026-04417", "Maëlle", "Terminus", "46.8123"] {
            assert!(!text.contains(content), "{content:?} in entry {}", e.index);
        }
    }
    for n in [esm, table] {
        n.close().await;
    }
    relay.stop().await;
}

/// The checkpoint is public (any node may hold the relay to it); the entries are not.
#[tokio::test]
async fn any_node_may_read_the_signed_checkpoint_which_verifies_with_the_relays_key() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let cssc: Node = net.node("CSSC/PIVOT", relay.addr).await;

    let cp = open_checkpoint(&cssc.checkpoint().await.unwrap(), &relay.verifier()).unwrap();

    assert_eq!(cp.origin, format!("filet.relay/{AGREEMENT_ID}"));
    assert_eq!(cp.size, 3, "relay_started, agreement_loaded and crl_loaded");
    cssc.close().await;
    relay.stop().await;
}
