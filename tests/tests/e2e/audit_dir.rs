//! Auditors' offline directories through the command line (requirements §7, client/src/audit_dir.rs):
//! `filet audit pull` keeps checkpoints, consistency proofs and entries; `filet audit verify
//! --dir` checks them with the relay stopped and names the first bad index of every kind of
//! tampering (exit 6); `filet audit report` counts from them; `filet audit prove` proves one
//! entry. Each tampering is done on a copy of a good directory pulled twice.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use filet_proto::audit::hex;
use filet_proto::checkpoint::{open_checkpoint, Checkpoint, NoteSigner, NoteVerifier};
use filet_proto::wire::Receipt;
use filet_proto::{Category, Selector};
use filet_tests::*;
use serde_json::{json, Value};

/// The log's origin (and its key's name).
fn origin() -> String {
    format!("filet.relay/{AGREEMENT_ID}")
}

/// `checkpoints/SIZE.note` as the directory names it.
fn note_name(size: u64) -> String {
    format!("checkpoints/{size:020}.note")
}

async fn post_runaway(net: &TestNet, relay: &TestRelay) -> Receipt {
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let r = esm.post(runaway()).await.unwrap();
    esm.close().await;
    r
}

/// `filet audit pull --dir DIR --verifier-key KEY` as `unit`.
async fn pull(net: &TestNet, relay: &TestRelay, unit: &str, dir: &Path, key: &str) -> Output {
    filet_as(
        net,
        unit,
        relay.addr,
        &[
            "audit",
            "pull",
            "--dir",
            path_str(dir),
            "--verifier-key",
            key,
        ],
    )
    .await
}

/// `filet audit ARGS...` with no profile: offline.
fn offline(args: &[&str]) -> Output {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    run("filet", &all)
}

/// `filet audit verify --dir DIR`.
fn verify(dir: &Path) -> Output {
    offline(&["verify", "--dir", path_str(dir)])
}

/// Asserts exit 6 and exactly this message.
fn assert_verify_fails(dir: &Path, message: &str) {
    let out = verify(dir);
    assert_eq!(out.code, Some(6), "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, format!("filet: {message}\n"));
}

/// A relay with one runaway alert posted (8 entries), pulled into `dir` by the full auditor,
/// then a second one (13 entries), pulled again. Returns both pulls' outputs.
async fn pulled_twice(net: &TestNet, relay: &TestRelay, dir: &Path) -> (Output, Output) {
    post_runaway(net, relay).await;
    let first = pull(net, relay, "TABLE/CONFORMITE", dir, &relay.verifier_key).await;
    post_runaway(net, relay).await;
    let second = pull(net, relay, "TABLE/CONFORMITE", dir, &relay.verifier_key).await;
    (first, second)
}

#[tokio::test]
async fn a_second_pull_proves_consistency_with_the_first_and_the_directory_verifies_offline_with_the_relay_stopped(
) {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let dir = net.path().join("audit-dir");

    let (first, second) = pulled_twice(&net, &relay, &dir).await;
    relay.stop().await;

    assert_eq!(first.code, Some(0), "{}", first.stderr);
    // relay_started, agreement_loaded, crl_loaded, posted, 4 disclosed.
    assert_eq!(
        first.stdout,
        "pulled 8 new entries; checkpoint of 8 entries kept\n"
    );
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert_eq!(
        second.stdout,
        "pulled 5 new entries; checkpoint of 13 entries kept (consistent with the previous one of 8)\n"
    );
    assert!(dir
        .join("consistency/00000000000000000008-00000000000000000013.proof")
        .is_file());
    for size in [8, 13] {
        assert!(dir.join(note_name(size)).is_file(), "{}", note_name(size));
    }
    let key = audit_key(&net, &net.data_dir());
    assert_eq!(
        std::fs::read_to_string(dir.join("verifier.key")).unwrap(),
        format!("{key}\n"),
        "pinned at the first pull"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("entries.jsonl"))
            .unwrap()
            .lines()
            .count(),
        13
    );
    assert_eq!(
        std::fs::metadata(dir.join("leaves.bin")).unwrap().len(),
        13 * 32
    );

    // The relay is stopped: this is offline.
    let out = tokio::task::spawn_blocking(move || verify(&dir))
        .await
        .unwrap();

    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!("verified offline: 2 checkpoint(s) signed by {}, consistent; 13 entries match the signed roots; newest tree 13 entries\n", origin())
    );
}

// ---- tampering with a copy of a good directory ----------------------------------------

/// A good directory (pulled twice: checkpoints of 8 and 13 entries), kept in memory, with
/// what a forger would need from the relay's data directory.
struct Good {
    files: Vec<(PathBuf, Vec<u8>)>,
    verifier_key: String,
    /// `DATA/keys/audit-ed25519.pk8`: the relay's checkpoint signing key.
    signing_key: Vec<u8>,
}

/// Built once per test process, on a thread of its own (it runs a relay).
fn good() -> &'static Good {
    static GOOD: OnceLock<Good> = OnceLock::new();
    GOOD.get_or_init(|| {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let net = TestNet::new();
                let relay = net.start_relay().await;
                let dir = net.path().join("audit-dir");
                let (first, second) = pulled_twice(&net, &relay, &dir).await;
                assert_eq!((first.code, second.code), (Some(0), Some(0)));
                let verifier_key = relay.verifier_key.clone();
                relay.stop().await;
                Good {
                    files: read_tree(&dir),
                    verifier_key,
                    signing_key: std::fs::read(net.data_dir().join("keys/audit-ed25519.pk8"))
                        .unwrap(),
                }
            })
        })
        .join()
        .unwrap()
    })
}

fn read_tree(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_owned();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    out
}

fn write_tree(root: &Path, files: &[(PathBuf, Vec<u8>)]) {
    for (rel, bytes) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

/// A fresh copy of the good directory (removed when dropped), verified good first.
fn copy_of_good() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit-dir");
    write_tree(&dir, &good().files);
    let out = verify(&dir);
    assert_eq!(out.code, Some(0), "the copy is good: {}", out.stderr);
    (tmp, dir)
}

/// Rewrites `entries.jsonl` line by line.
fn edit_entries(dir: &Path, f: impl FnOnce(&mut Vec<String>)) {
    let path = dir.join("entries.jsonl");
    let mut lines: Vec<String> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    f(&mut lines);
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_changed_letter_in_an_entry_is_named_as_changed_at_its_index() {
    let (_tmp, dir) = copy_of_good();
    edit_entries(&dir, |lines| {
        // Entry 4 discloses the first alert to CJQ/PIVOT; it is still valid JSON after.
        assert!(lines[4].contains("\"rules\":[\"police-vers-protection\"]"));
        lines[4] = lines[4].replace("police-vers-protection", "police-vers-protectiom");
    });

    assert_verify_fails(
        &dir,
        "entry 4: its bytes differ from the entry under the signed root: it was changed",
    );
}

#[test]
fn a_changed_entry_whose_leaf_hash_was_changed_too_still_fails_against_the_signed_roots() {
    let (_tmp, dir) = copy_of_good();
    let mut changed = String::new();
    edit_entries(&dir, |lines| {
        lines[4] = lines[4].replace("police-vers-protection", "police-vers-protectiom");
        changed = lines[4].clone();
    });
    let leaves = dir.join("leaves.bin");
    let mut bytes = std::fs::read(&leaves).unwrap();
    bytes[4 * 32..5 * 32].copy_from_slice(&filet_proto::merkle::leaf_hash(changed.as_bytes()));
    std::fs::write(&leaves, bytes).unwrap();

    assert_verify_fails(
        &dir,
        &format!(
            "entry 0: entries 0..8 do not give the root signed in {}: one of them was changed",
            note_name(8)
        ),
    );
}

#[test]
fn a_changed_consistency_proof_is_named_with_both_sizes() {
    let (_tmp, dir) = copy_of_good();
    let path = dir.join("consistency/00000000000000000008-00000000000000000013.proof");
    let text = std::fs::read_to_string(&path).unwrap();
    let first = text.lines().next().unwrap();
    let forged = base64_of(&[0x42; 32]);
    std::fs::write(&path, text.replacen(first, &forged, 1)).unwrap();

    let out = verify(&dir);

    assert_eq!(out.code, Some(6), "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("filet: checkpoints of 8 and 13 entries are not consistent: "),
        "{}",
        out.stderr
    );
}

#[test]
fn a_malformed_hash_in_a_kept_proof_is_a_failed_verification_naming_the_file_and_line_not_a_key_error(
) {
    let (_tmp, dir) = copy_of_good();
    let path = dir.join("consistency/00000000000000000008-00000000000000000013.proof");
    let text = std::fs::read_to_string(&path).unwrap();
    let first = text.lines().next().unwrap();
    // Not base64, then base64 of 31 bytes.
    for (bad, why) in [
        ("not*base64".to_string(), "Invalid symbol"),
        (base64_of(&[0x42; 31]), "31"),
    ] {
        std::fs::write(&path, text.replacen(first, &bad, 1)).unwrap();

        let out = verify(&dir);

        assert_eq!(out.code, Some(6), "{}", out.stderr);
        let prefix = format!(
            "filet: {}: consistency proof 8 to 13: hash 1 is not a base64 SHA-256 hash (",
            path.display()
        );
        assert!(out.stderr.starts_with(&prefix), "{}", out.stderr);
        assert!(out.stderr.contains(why), "{}", out.stderr);
        assert!(
            out.stderr.ends_with("): the proof was changed\n"),
            "{}",
            out.stderr
        );
    }
}

/// Standard base64 with padding, as the directory writes hashes.
fn base64_of(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Entries past the newest signed checkpoint are under no signature: they are not part
/// of the verified log, so a forged one must not pass, nor be counted by `audit report`
/// (which verifies, then counts every line of `entries.jsonl`).
#[test]
fn an_entry_appended_past_the_newest_checkpoint_fails_verification() {
    let (_tmp, dir) = copy_of_good();
    edit_entries(&dir, |lines| {
        // A copy of the disclosure at 4, renumbered as the next entry.
        let forged = lines[4].replace("\"index\":4,", "\"index\":13,");
        assert_ne!(forged, lines[4]);
        lines.push(forged);
    });

    let out = verify(&dir);

    assert_eq!(out.code, Some(6), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.starts_with("filet: entry 13: "),
        "{}",
        out.stderr
    );
}

#[test]
fn a_removed_entry_is_named_at_the_index_where_it_is_missing() {
    let (_tmp, dir) = copy_of_good();
    edit_entries(&dir, |lines| {
        lines.remove(3);
    });

    assert_verify_fails(
        &dir,
        "entry 3: the entry at this position says it is entry 4: an entry was removed before it",
    );
}

#[test]
fn two_swapped_entries_are_named_as_reordered() {
    let (_tmp, dir) = copy_of_good();
    edit_entries(&dir, |lines| lines.swap(3, 4));

    assert_verify_fails(
        &dir,
        "entry 3: the entry at this position says it is entry 4: the order of the entries was changed",
    );
}

#[test]
fn truncated_entries_are_named_as_missing_from_the_first_absent_index() {
    let (_tmp, dir) = copy_of_good();
    edit_entries(&dir, |lines| lines.truncate(10));

    assert_verify_fails(
        &dir,
        "entry 10: missing: the directory holds 10 entries but the signed checkpoint covers 13: the log was truncated",
    );
}

#[test]
fn a_checkpoint_signed_by_another_key_is_named_by_its_file() {
    let (_tmp, dir) = copy_of_good();
    let pinned = NoteVerifier::parse(&good().verifier_key).unwrap();
    let path = dir.join(note_name(8));
    let cp = open_checkpoint(&std::fs::read_to_string(&path).unwrap(), &pinned).unwrap();
    // The same statement, signed by a key of the same name that is not the relay's.
    let other = NoteSigner::from_seed(&origin(), &[7; 32]).unwrap();
    std::fs::write(&path, other.sign(&cp.to_text()).unwrap()).unwrap();

    assert_verify_fails(
        &dir,
        &format!(
            "checkpoint {}: note has no signature by key {}+{}",
            note_name(8),
            pinned.name(),
            hex(&pinned.key_id())
        ),
    );
}

#[test]
fn a_second_checkpoint_of_the_same_size_with_another_root_signed_by_the_relays_key_is_a_fork() {
    let (_tmp, dir) = copy_of_good();
    let pinned = NoteVerifier::parse(&good().verifier_key).unwrap();
    let kept = open_checkpoint(
        &std::fs::read_to_string(dir.join(note_name(13))).unwrap(),
        &pinned,
    )
    .unwrap();
    // What a relay that showed another history to someone else would have signed.
    let signer = NoteSigner::from_pkcs8(&origin(), &good().signing_key).unwrap();
    assert_eq!(signer.verifier_key(), good().verifier_key);
    let forked = Checkpoint {
        root: [0x42; 32],
        ..kept.clone()
    };
    std::fs::write(
        dir.join("checkpoints/00000000000000000013.other.note"),
        signer.sign(&forked.to_text()).unwrap(),
    )
    .unwrap();

    let out = verify(&dir);

    assert_eq!(out.code, Some(6), "{}", out.stderr);
    // Which of the two is named first follows the directory listing.
    let (a, b) = (hex(&kept.root), hex(&forked.root));
    let message = |first: &str, second: &str| {
        format!("filet: fork: two checkpoints of 13 entries have different roots ({first} and {second}); keep this directory as evidence\n")
    };
    assert!(
        out.stderr == message(&a, &b) || out.stderr == message(&b, &a),
        "{}",
        out.stderr
    );
}

#[test]
fn a_verifier_key_other_than_the_pinned_one_exits_4_saying_the_directory_is_pinned() {
    let (_tmp, dir) = copy_of_good();
    let other = NoteSigner::from_seed(&origin(), &[7; 32])
        .unwrap()
        .verifier_key();

    let out = offline(&["verify", "--dir", path_str(&dir), "--verifier-key", &other]);

    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        format!(
            "filet: verifier key: {} is pinned to {}, not {other}: a different key means a different log\n",
            dir.display(),
            good().verifier_key
        )
    );
}

#[tokio::test]
async fn a_pull_from_a_relay_whose_log_was_rolled_back_exits_6_and_keeps_nothing() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    post_runaway(&net, &relay).await;
    relay.stop().await;
    // A backup of the data directory at 9 entries (8, then `relay_stopped`).
    let backup = net.path().join("data-backup");
    write_tree(&backup, &read_tree(&net.data_dir()));
    let relay = net.start_relay().await;
    post_runaway(&net, &relay).await;
    let dir = net.path().join("audit-dir");
    let first = pull(&net, &relay, "TABLE/CONFORMITE", &dir, &relay.verifier_key).await;
    assert_eq!(
        (first.code, first.stdout.as_str()),
        (
            Some(0),
            "pulled 17 new entries; checkpoint of 17 entries kept\n"
        ),
        "{}",
        first.stderr
    );
    relay.stop().await;
    // The operator restores the backup: same keys, an older log (12 entries after its start).
    let mut cfg = net.relay_config();
    cfg.data_dir = backup;
    let relay = TestRelay::start(cfg).await;
    let kept_before = read_tree(&dir);

    let out = pull(&net, &relay, "TABLE/CONFORMITE", &dir, &relay.verifier_key).await;

    assert_eq!(out.code, Some(6), "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        "filet: rollback: the relay's checkpoint has 12 entries but checkpoint 17 was kept before\n"
    );
    let mut after = read_tree(&dir);
    let mut before = kept_before;
    after.sort();
    before.sort();
    assert_eq!(after, before, "nothing was kept from the rolled-back relay");
    relay.stop().await;
}

// ---- a party's own auditor --------------------------------------------------------------

#[tokio::test]
async fn a_party_auditor_pulls_and_verifies_its_partys_entries_and_a_changed_one_fails_its_inclusion_proof(
) {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let to_dpj = esm.post(runaway()).await.unwrap();
    // Nothing of this one concerns DPJ.
    let mut internal = alert(Category::Runaway, "SPVQ-INTERNE-1");
    internal.to = vec![Selector::Unit(unit("SPVQ/IKAT"))];
    esm.post(internal).await.unwrap();
    esm.close().await;
    let dir = net.path().join("dpj-audit");

    let pulled = pull(&net, &relay, "DPJ/CONFORMITE", &dir, &relay.verifier_key).await;
    relay.stop().await;

    assert_eq!(pulled.code, Some(0), "{}", pulled.stderr);
    // 3 + 5 + 2 entries; DPJ's: the post naming DPJ/RTS and the disclosure to it.
    assert_eq!(
        pulled.stdout,
        "pulled 2 new entries; checkpoint of 10 entries kept\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("scope")).unwrap(),
        "party\n"
    );
    let d = dir.clone();
    let out = tokio::task::spawn_blocking(move || verify(&d))
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        format!("verified offline: 1 checkpoint(s) signed by {}, consistent; 2 entries each proven included; newest tree 10 entries\n", origin())
    );

    let dpj_rts = to_dpj
        .recipients
        .iter()
        .find(|r| r.unit.to_string() == "DPJ/RTS")
        .unwrap()
        .audit_index;
    edit_entries(&dir, |lines| {
        assert!(
            lines[1].contains("\"recipient\":\"DPJ/RTS\""),
            "{}",
            lines[1]
        );
        lines[1] = lines[1].replace("police-vers-protection", "police-vers-protectiom");
    });
    let out = tokio::task::spawn_blocking(move || verify(&dir))
        .await
        .unwrap();

    assert_eq!(out.code, Some(6), "{}", out.stderr);
    assert_eq!(
        out.stderr,
        format!("filet: entry {dpj_rts}: inclusion proof fails (root mismatch: the inclusion proof does not lead to the expected root): it was changed\n")
    );
}

// ---- reports and proofs -------------------------------------------------------------------

/// Some of everything for the report, pulled by the full auditor into `dir`: SPVQ/ESM posts
/// the runaway alert, updates it and marks it located; DPJ/RTS posts one of its own;
/// DPCP/PROCUREURS is refused.
async fn report_activity(net: &TestNet, relay: &TestRelay, dir: &Path) {
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let dpcp = net.node("DPCP/PROCUREURS", relay.addr).await;
    let id = esm.post(runaway()).await.unwrap().alert;
    let mut update = follow_up(filet_proto::Kind::Update, id, None);
    update.content.last_seen.place = Some("Place Laurier".into());
    esm.post(update).await.unwrap();
    esm.post(follow_up(filet_proto::Kind::Located, id, Some("retrouvée")))
        .await
        .unwrap();
    rts.post(alert(Category::Runaway, "DPJ-2026-0099"))
        .await
        .unwrap();
    refusal(dpcp.post(alert(Category::Runaway, "DPCP-1")).await);
    for n in [esm, rts, dpcp] {
        n.close().await;
    }
    let out = pull(net, relay, "TABLE/CONFORMITE", dir, &relay.verifier_key).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

/// RFC 4180 fields of each line (quoted fields may hold commas and doubled quotes).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|line| {
            let mut fields = Vec::new();
            let mut cur = String::new();
            let mut quoted = false;
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
                match (c, quoted) {
                    ('"', true) if chars.peek() == Some(&'"') => {
                        cur.push('"');
                        chars.next();
                    }
                    ('"', _) => quoted = !quoted,
                    (',', false) => fields.push(std::mem::take(&mut cur)),
                    _ => cur.push(c),
                }
            }
            assert!(!quoted, "unclosed quote in {line}");
            fields.push(cur);
            fields
        })
        .collect()
}

const POLICE: &str = "LPJ art. 35.4 et 72.7; Entente multisectorielle §4 (illustratif)";
const PROTECTION: &str = "LPJ art. 72.7 (illustratif)";
const INTERNAL: &str = "Partage interne au SPVQ (illustratif)";

/// The CSV rows of a section: `(status, sender, recipient, rule, basis, reason, count)`.
fn csv_rows(rows: &[Vec<String>], section: &str) -> Vec<[String; 7]> {
    rows.iter()
        .filter(|r| r[0] == section)
        .map(|r| {
            assert_eq!(r.len(), 12, "{r:?}");
            [1, 2, 3, 4, 5, 6, 11].map(|i| r[i].clone())
        })
        .collect()
}

fn row(cols: [&str; 7]) -> [String; 7] {
    cols.map(str::to_owned)
}

#[tokio::test]
async fn filet_audit_report_counts_disclosures_by_party_rule_and_legal_basis_in_csv_and_json_and_filters(
) {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let dir = net.path().join("audit-dir");
    report_activity(&net, &relay, &dir).await;
    relay.stop().await;
    let report = |extra: &[&str]| {
        let mut args = vec!["report", "--dir", path_str(&dir)];
        args.extend_from_slice(extra);
        let out = offline(&args);
        assert_eq!(out.code, Some(0), "{extra:?}: {}", out.stderr);
        out.stdout
    };

    let all = parse_csv(&report(&["--format", "csv"]));
    let dpj = parse_csv(&report(&["--format", "csv", "--party", "DPJ"]));
    let future = report(&["--format", "csv", "--from", "2999-01-01"]);
    let json: Value = serde_json::from_str(&report(&["--format", "json"])).unwrap();
    let future_json: Value =
        serde_json::from_str(&report(&["--format", "json", "--from", "2999-01-01"])).unwrap();

    let header = "section,status,sender_party,recipient_party,rule,legal_basis,reason,alert,recipient,time,detail,count";
    assert_eq!(all[0].join(","), header);
    assert_eq!(
        csv_rows(&all, "posts"),
        [row(["actual", "", "", "", "", "", "4"])]
    );
    // ESM's alert, update and located each to the same four units; DPJ/RTS's alert to
    // SPVQ/ESM, SPVQ/IJP, SQ/EILP and CIUSSS/PIVOT.
    assert_eq!(
        csv_rows(&all, "disclosures"),
        [
            row([
                "actual",
                "DPJ",
                "CIUSSS",
                "protection-vers-sante",
                PROTECTION,
                "",
                "1"
            ]),
            row([
                "actual",
                "DPJ",
                "SPVQ",
                "protection-vers-police",
                PROTECTION,
                "",
                "2"
            ]),
            row([
                "actual",
                "DPJ",
                "SQ",
                "protection-vers-police",
                PROTECTION,
                "",
                "1"
            ]),
            row([
                "actual",
                "SPVQ",
                "CJQ",
                "police-vers-protection",
                POLICE,
                "",
                "3"
            ]),
            row([
                "actual",
                "SPVQ",
                "DPJ",
                "police-vers-protection",
                POLICE,
                "",
                "3"
            ]),
            row([
                "actual",
                "SPVQ",
                "SPVQ",
                "enquete-vers-patrouille",
                INTERNAL,
                "",
                "6"
            ]),
        ]
    );
    assert_eq!(
        csv_rows(&all, "refusals"),
        [row(["", "", "", "", "", "not_permitted", "1"])]
    );
    assert_eq!(
        all.len(),
        1 + 1 + 6 + 1,
        "nothing unacknowledged for 60 minutes yet"
    );

    assert_eq!(dpj[0].join(","), header);
    assert_eq!(
        csv_rows(&dpj, "posts"),
        [row(["actual", "", "", "", "", "", "4"])]
    );
    assert_eq!(
        csv_rows(&dpj, "disclosures"),
        [
            row([
                "actual",
                "DPJ",
                "CIUSSS",
                "protection-vers-sante",
                PROTECTION,
                "",
                "1"
            ]),
            row([
                "actual",
                "DPJ",
                "SPVQ",
                "protection-vers-police",
                PROTECTION,
                "",
                "2"
            ]),
            row([
                "actual",
                "DPJ",
                "SQ",
                "protection-vers-police",
                PROTECTION,
                "",
                "1"
            ]),
            row([
                "actual",
                "SPVQ",
                "DPJ",
                "police-vers-protection",
                POLICE,
                "",
                "3"
            ]),
        ]
    );
    assert!(csv_rows(&dpj, "refusals").is_empty(), "DPCP's is not DPJ's");

    assert_eq!(future, format!("{header}\n"));
    assert_eq!(future_json["entries"], 0);
    assert_eq!(future_json["disclosures"], json!([]));

    assert_eq!(
        json["lifecycle"],
        json!({"actual alert": 2, "actual update": 1, "actual located": 1})
    );
    assert_eq!(json["posts"], json!({"actual": 4}));
    assert_eq!(json["refusals"], json!({"not_permitted": 1}));
    assert_eq!(json["expired"], 0);
    assert_eq!(json["purged"], 0);
    assert_eq!(json["voided"], 0);
}

#[tokio::test]
async fn filet_audit_prove_shows_a_receipts_disclosure_included_and_an_index_past_the_tree_exits_4()
{
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let receipt = post_runaway(&net, &relay).await;
    let index = receipt.recipients[1].audit_index;
    assert_eq!(receipt.recipients[1].unit.to_string(), "DPJ/RTS");
    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    let size = 8;
    let hashes = table.inclusion_proof(index, size).await.unwrap().len();
    table.close().await;
    let key = relay.verifier_key.clone();

    let proved = filet_as(
        &net,
        "TABLE/CONFORMITE",
        relay.addr,
        &[
            "audit",
            "prove",
            "--index",
            &index.to_string(),
            "--verifier-key",
            &key,
        ],
    )
    .await;
    let past = filet_as(
        &net,
        "TABLE/CONFORMITE",
        relay.addr,
        &["audit", "prove", "--index", "12", "--verifier-key", &key],
    )
    .await;

    assert_eq!(proved.code, Some(0), "{}", proved.stderr);
    let lines: Vec<&str> = proved.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", proved.stdout);
    assert!(
        lines[0].starts_with(&format!("#{index:<6} ")),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].ends_with(&format!(
            "{} disclosed to DPJ/RTS under police-vers-protection (all fields)",
            receipt.alert
        )),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1],
        format!(
            "included: inclusion proof of {hashes} hashes verifies against the checkpoint of {size} entries signed by {}",
            origin()
        )
    );
    // Not a verification failure: a request out of range (exit 4).
    assert_eq!(past.code, Some(4), "{}", past.stderr);
    assert_eq!(past.stdout, "");
    assert_eq!(
        past.stderr,
        format!("filet: audit entry 12 does not exist yet: the newest checkpoint covers {size} entries\n")
    );
    relay.stop().await;
}

#[tokio::test]
async fn an_auditor_given_the_relays_key_answers_who_was_told_about_one_file_and_only_that_file() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let about = post_runaway(&net, &relay).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let mut other = runaway();
    other.content.subject.reference = Some("SPVQ-2026-09999".into());
    other.to = vec![Selector::Unit("DPJ/RTS".parse().unwrap())];
    esm.post(other).await.unwrap();
    esm.close().await;
    let dir = net.path().join("audit-dir");
    let out = pull(&net, &relay, "TABLE/CONFORMITE", &dir, &relay.verifier_key).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let key = net.data_dir().join("keys").join("subject-ref.key");

    let out = offline(&[
        "report",
        "--dir",
        path_str(&dir),
        "--format",
        "json",
        "--subject-ref",
        "SPVQ-2026-04417",
        "--subject-ref-key",
        path_str(&key),
    ]);

    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    // The runaway alert went to its four units; the other file's alert is not counted.
    let told: u64 = v["disclosures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["count"].as_u64().unwrap())
        .sum();
    assert_eq!(told, about.recipients.len() as u64);
    assert_eq!(v["posts"], json!({"actual": 1}));
    // Without the key, the question cannot be asked.
    let out = offline(&[
        "report",
        "--dir",
        path_str(&dir),
        "--subject-ref",
        "SPVQ-2026-04417",
    ]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    relay.stop().await;
}

// ---- regressions from the auditor's-tools review ------------------------------------------

/// Lines of a file of the directory.
fn lines_of(dir: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(name))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Rewrites a file of the directory, keeping the lines `keep` accepts by position.
fn keep_lines(dir: &Path, name: &str, keep: impl Fn(usize) -> bool) {
    let text: String = lines_of(dir, name)
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join(name), text).unwrap();
}

#[tokio::test]
async fn a_party_copy_names_an_entry_removed_from_both_entries_and_proofs_by_the_indices_its_pulls_received(
) {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let dir = net.path().join("dpj-audit");
    post_runaway(&net, &relay).await;
    let first = pull(&net, &relay, "DPJ/CONFORMITE", &dir, &relay.verifier_key).await;
    post_runaway(&net, &relay).await;
    let second = pull(&net, &relay, "DPJ/CONFORMITE", &dir, &relay.verifier_key).await;
    relay.stop().await;
    assert_eq!(
        (first.code, second.code),
        (Some(0), Some(0)),
        "{}{}",
        first.stderr,
        second.stderr
    );
    // Each pull appended the indices it received, in the order of the entries.
    let held: Vec<String> = lines_of(&dir, "proofs.jsonl")
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["index"].to_string())
        .collect();
    assert_eq!(held.len(), 4, "two posts and two disclosures to DPJ/RTS");
    assert_eq!(lines_of(&dir, "indices"), held);
    let good = read_tree(&dir);
    let d = dir.clone();
    let out = tokio::task::spawn_blocking(move || verify(&d))
        .await
        .unwrap();
    assert_eq!(out.code, Some(0), "{}", out.stderr);

    // The same line removed from both files: every remaining proof still verifies.
    // A middle entry, then the last one.
    for removed in [1, 3] {
        write_tree(&dir, &good);
        keep_lines(&dir, "entries.jsonl", |i| i != removed);
        keep_lines(&dir, "proofs.jsonl", |i| i != removed);

        assert_verify_fails(
            &dir,
            &format!(
                "entry {}: missing from entries.jsonl and proofs.jsonl: a pull received it (indices lists it) but the copy holds 3 of the 4 entries received: it was removed or lost",
                held[removed]
            ),
        );
    }
    // Without the list, nothing tells a removal: it is required.
    write_tree(&dir, &good);
    std::fs::remove_file(dir.join("indices")).unwrap();
    assert_verify_fails(
        &dir,
        &format!(
            "{}: missing: it lists the entries each pull received, without it a removed entry cannot be seen (pull again into a new directory)",
            dir.join("indices").display()
        ),
    );
}

#[tokio::test]
async fn a_refused_pull_leaves_no_directory_and_an_auditor_can_pull_there_after() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    post_runaway(&net, &relay).await;
    let dir = net.path().join("audit-dir");

    let refused = pull(&net, &relay, "DPJ/RTS", &dir, &relay.verifier_key).await;
    let made = dir.exists();
    let after = pull(&net, &relay, "TABLE/CONFORMITE", &dir, &relay.verifier_key).await;
    relay.stop().await;

    assert_eq!(refused.code, Some(3), "{}", refused.stderr);
    assert_eq!(
        refused.stderr,
        "filet: DPJ/RTS/dpj-rts-01 asked for audit entries but DPJ/RTS has no audit right in the agreement\n"
    );
    assert!(!made, "the refused pull made {}", dir.display());
    assert_eq!(after.code, Some(0), "{}", after.stderr);
    // 8 entries of the post, then the refusal of DPJ/RTS's pull (audit_denied).
    assert_eq!(
        after.stdout,
        "pulled 9 new entries; checkpoint of 9 entries kept\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("scope")).unwrap(),
        "full\n"
    );
}

#[test]
fn a_subject_ref_key_of_the_wrong_size_exits_4_naming_the_file_and_the_expected_format() {
    let (tmp, dir) = copy_of_good();
    // The key written as hex: 64 bytes.
    let key = tmp.path().join("subject-ref.hex");
    std::fs::write(&key, "ab".repeat(32)).unwrap();

    let out = offline(&[
        "report",
        "--dir",
        path_str(&dir),
        "--subject-ref",
        "SPVQ-2026-04417",
        "--subject-ref-key",
        path_str(&key),
    ]);

    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        format!(
            "filet: --subject-ref-key {}: 64 bytes, expected the relay's key of 32 raw bytes (its DATA/keys/subject-ref.key, copied as is, not hex or base64)\n",
            key.display()
        )
    );
}

#[test]
fn report_party_is_matched_in_any_case_and_a_party_named_in_no_entry_exits_4_listing_those_seen() {
    let (_tmp, dir) = copy_of_good();
    let report = |extra: &[&str]| {
        let mut args = vec!["report", "--dir", path_str(&dir), "--format", "json"];
        args.extend_from_slice(extra);
        offline(&args)
    };

    let upper = report(&["--party", "DPJ"]);
    let lower = report(&["--party", "dpj"]);
    let nope = report(&["--party", "NOPE"]);

    assert_eq!(upper.code, Some(0), "{}", upper.stderr);
    let v: Value = serde_json::from_str(&upper.stdout).unwrap();
    assert_eq!(v["posts"], json!({"actual": 2}));
    assert_eq!(
        (lower.code, &lower.stdout),
        (Some(0), &upper.stdout),
        "{}",
        lower.stderr
    );
    assert_eq!(nope.code, Some(4), "{}", nope.stderr);
    assert_eq!(nope.stdout, "");
    assert_eq!(
        nope.stderr,
        format!(
            "filet: --party NOPE: no entry of {} names this party (parties named: CJQ, DPJ, SPVQ)\n",
            dir.display()
        )
    );
}

#[test]
fn report_from_after_to_exits_4_naming_both() {
    let (_tmp, dir) = copy_of_good();

    let out = offline(&[
        "report",
        "--dir",
        path_str(&dir),
        "--from",
        "2026-12-01",
        "--to",
        "2026-11-01",
    ]);

    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        "filet: --from 2026-12-01T00:00:00.000Z is not before --to 2026-11-01T00:00:00.000Z: the range is empty\n"
    );
}

#[tokio::test]
async fn a_deleted_leaves_file_is_named_missing_and_pulling_again_rebuilds_it() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    post_runaway(&net, &relay).await;
    let dir = net.path().join("audit-dir");
    let first = pull(&net, &relay, "TABLE/CONFORMITE", &dir, &relay.verifier_key).await;
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let leaves = std::fs::read(dir.join("leaves.bin")).unwrap();
    std::fs::remove_file(dir.join("leaves.bin")).unwrap();

    let d = dir.clone();
    let out = tokio::task::spawn_blocking(move || verify(&d))
        .await
        .unwrap();
    let again = pull(&net, &relay, "TABLE/CONFORMITE", &dir, &relay.verifier_key).await;
    relay.stop().await;

    assert_eq!(out.code, Some(6), "{}", out.stderr);
    assert_eq!(
        out.stderr,
        format!(
            "filet: {}: missing, although every entry matches the signed roots: this copy's hash file was deleted (the entries are intact; pull again to rebuild it)\n",
            dir.join("leaves.bin").display()
        )
    );
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(std::fs::read(dir.join("leaves.bin")).unwrap(), leaves);
    let out = verify(&dir);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn verify_and_report_of_a_directory_that_does_not_exist_exit_4_as_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nonexistent");

    let verified = verify(&missing);
    let reported = offline(&["report", "--dir", path_str(&missing)]);

    let message = format!(
        "filet: {}: no such audit directory (make one with `filet audit pull --dir`)\n",
        missing.display()
    );
    assert_eq!(
        (verified.code, verified.stderr.as_str()),
        (Some(4), message.as_str())
    );
    assert_eq!(
        (reported.code, reported.stderr.as_str()),
        (Some(4), message.as_str())
    );
    assert!(!missing.exists(), "nothing was made");
}
