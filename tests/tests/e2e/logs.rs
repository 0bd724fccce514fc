//! The relay's logs (STYLE habit 9, docs/operations.md "Watch it"): at the most verbose
//! level, in text and in JSON, they never hold alert content or keys, and connection spans
//! carry the principal.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::path::Path;
use std::sync::Arc;

use filet_proto::wire::ErrorCode;
use filet_proto::{Category, Selector};
use filet_tests::*;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Standard base64 with padding (RFC 4648 §4), for looking for key bytes in the logs.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every form in which the bytes of a key file could leak: base64 and hex (both cases) of
/// the whole file and of each 16-byte piece (a seed, a secret key, wherever it sits).
fn key_forms(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let mut forms = vec![base64(&bytes), hex(&bytes), hex(&bytes).to_uppercase()];
    for piece in bytes.chunks_exact(16) {
        forms.push(hex(piece));
        forms.push(hex(piece).to_uppercase());
    }
    forms
}

/// The base64 lines of a PEM private key's body.
fn pem_body_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Runs the relay with `RUST_LOG=debug` (and `extra` flags before `serve`), posts
/// runaway.toml, delivers and acknowledges it, has a post refused and an invalid post
/// refused, reloads; then returns everything the relay wrote to stderr and the data
/// directory.
async fn a_busy_relay_log(extra: &'static [&'static str]) -> (String, Arc<TestNet>) {
    let net = Arc::new(TestNet::new());
    let relay = {
        let relay = extra
            .iter()
            .fold(ChildRelay::builder(), |b, a| b.global_arg(a))
            .net(&net)
            .data_dir(&net.data_dir())
            .env("RUST_LOG", "debug");
        blocking(move || relay.start()).await
    };
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let ikat = net.node("SPVQ/IKAT", relay.addr).await;
    let mut rx = rts.subscribe().await.unwrap();
    let r = esm.post(runaway()).await.unwrap();
    assert_eq!(next_delivery(&mut rx).await.envelope.id, r.alert);
    rts.ack(r.alert).await.unwrap();
    let (seen, _) = ikat.get_alert(r.alert).await.unwrap();
    assert!(seen.content.subject.given_name.is_some());
    let mut refused = runaway();
    refused.to = vec![Selector::Unit(unit("DPCP/PROCUREURS"))];
    assert_eq!(
        refusal(esm.post(refused).await).code,
        ErrorCode::NotPermitted
    );
    let mut invalid = runaway();
    invalid.content.subject.reference = Some("SPVQ-2026-04417 BIS".into());
    assert_eq!(
        refusal(esm.post(invalid).await).code,
        ErrorCode::InvalidAlert
    );
    let mut sighting = runaway();
    sighting.category = Category::Sighting;
    ikat.post(sighting).await.unwrap();
    std::fs::write(&net.agreement, agreement_without_ikat(2)).unwrap();
    let data_dir = path_str(&net.data_dir()).to_owned();
    let out = blocking(move || run("filet-relay", &["reload", "--data-dir", &data_dir])).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let why = tokio::time::timeout(WAIT, ikat.closed_reason())
        .await
        .unwrap();
    assert!(why.contains("is not a unit of party SPVQ"), "{why}");
    for n in [esm, rts] {
        n.close().await;
    }
    let (status, stderr) = blocking(move || relay.terminate_drained()).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    (stderr, net)
}

/// Asserts that `log` holds no alert content of runaway.toml and no key of the relay or of
/// the nodes that took part.
fn assert_no_content_nor_key(log: &str, net: &TestNet) {
    let a = runaway();
    let c = &a.content;
    let mut secrets: Vec<String> = [
        c.subject.given_name.clone(),
        c.subject.description.clone(),
        c.subject.reference.clone(),
        c.last_seen.place.clone(),
        c.instructions.clone(),
        c.contact.clone(),
    ]
    .into_iter()
    .map(Option::unwrap)
    .collect();
    assert_eq!(secrets[0], "Maëlle");
    assert_eq!(secrets[2], "SPVQ-2026-04417");
    // Distinctive pieces too, in case a field is logged truncated or escaped.
    secrets.extend(
        [
            "Ma\\u{eb}lle",
            "Ma\\u00eblle",
            "cheveux bruns",
            "sac à dos rose",
            "Marie-de-l",
            "555-0142",
            "2026-04417",
            "Ne pas intervenir",
            "46.8123",
            "-71.2345",
        ]
        .map(str::to_owned),
    );
    for s in &secrets {
        assert!(
            !log.contains(s.as_str()),
            "the log holds alert content {s:?}"
        );
    }
    let data = net.data_dir();
    for key in [
        data.join("keys/audit-ed25519.pk8"),
        data.join("keys/subject-ref.key"),
    ] {
        for form in key_forms(&key) {
            assert!(
                !log.contains(&form),
                "the log holds the bytes of {} ({form})",
                key.display()
            );
        }
    }
    for key in [
        "nodes/SPVQ-ESM.key.pem",
        "nodes/DPJ-RTS.key.pem",
        "nodes/SPVQ-IKAT.key.pem",
        "relay.key.pem",
        "ca.key.pem",
    ] {
        for line in pem_body_lines(&net.pki.join(key)) {
            assert!(!log.contains(&line), "the log holds a line of {key}");
        }
    }
}

#[tokio::test]
async fn debug_text_logs_hold_principals_but_no_alert_content_and_no_key() {
    let (log, net) = a_busy_relay_log(&[]).await;

    assert_no_content_nor_key(&log, &net);
    assert!(
        log.lines().any(|l| l.contains("conn{principal=SPVQ/ESM/spvq-esm-01 ")
            && l.ends_with("connected")),
        "no connection span with the principal:\n{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("principal=SPVQ/IKAT/spvq-ikat-01")
            && l.contains("closing: principal SPVQ/IKAT/spvq-ikat-01: unit IKAT is not a unit of party SPVQ")),
        "the reload's cut names the principal:\n{log}"
    );
}

#[tokio::test]
async fn debug_json_logs_hold_principals_but_no_alert_content_and_no_key() {
    let (log, net) = a_busy_relay_log(&["--log-json"]).await;

    assert_no_content_nor_key(&log, &net);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect();
    assert!(
        lines.iter().any(|v| v["fields"]["message"] == "connected"
            && v["span"]["principal"] == "SPVQ/ESM/spvq-esm-01"),
        "no connection span with the principal:\n{log}"
    );
}

#[tokio::test]
async fn when_a_node_leaves_the_relay_log_does_not_say_the_relay_closed_the_connection() {
    let (log, _net) = a_busy_relay_log(&[]).await;

    // SPVQ/ESM closed its own connection ("bye") at the end of the scenario.
    let line = log
        .lines()
        .find(|l| l.contains("conn{principal=SPVQ/ESM/spvq-esm-01 ") && l.contains("disconnected"))
        .unwrap_or_else(|| panic!("no disconnection of SPVQ/ESM logged:\n{log}"));
    assert!(
        !line.contains("the relay closed the connection"),
        "the relay blames itself for the node's close: {line}"
    );
}
