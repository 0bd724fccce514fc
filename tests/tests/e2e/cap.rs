//! CAP 1.2 through the command line (requirements §5 "CAP 1.2 interop", docs/cap.md): `filet cap
//! check` on the public samples of `proto/tests/data/cap` and on hostile XML that points at a
//! local file; `filet export --cap` of a sender's and of a recipient's view; `filet post
//! --cap` of an export (a round trip) and its refusals, which post nothing.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use filet_proto::AlertId;
use filet_tests::*;
use serde_json::Value;

/// `proto/tests/data/cap`.
fn cap_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/tests/data/cap")
}

/// The recipient units of the runaway alert posted by SPVQ/ESM, in the receipt's order.
const RECIPIENTS: [&str; 4] = ["CJQ/PIVOT", "DPJ/RTS", "SPVQ/GRIPP", "SPVQ/IKAT"];

#[test]
fn filet_cap_check_passes_every_valid_sample_naming_its_version_identifier_and_info_blocks() {
    // SOURCE.md: every sample but google-invalid.cap and google-xee.cap is valid.
    let valid = [
        ("oasis-cap12-appendix-a1.xml", "1.2", "43b080713727", 1),
        ("oasis-cap12-appendix-a2.xml", "1.2", "KSTO1055887203", 1),
        ("oasis-cap12-appendix-a3.xml", "1.2", "TRI13970876.2", 1),
        (
            "oasis-cap12-appendix-a4.xml",
            "1.2",
            "KAR0-0306112239-SW",
            2,
        ),
        ("google-canada.cap", "1.2", "2.49.0.1.124.6bddbc91.2012", 2),
        // The CAP 1.1 namespace, read and checked against the 1.2 rules (docs/cap.md).
        (
            "google-no_optional_fields.cap",
            "1.1",
            "USGS-earthquakes-us2010apcd.6.20100831T000925.496Z",
            0,
        ),
    ];
    let samples: BTreeSet<String> = std::fs::read_dir(cap_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cap") || n.ends_with(".xml"))
        .collect();
    let covered: BTreeSet<String> = valid
        .iter()
        .map(|v| v.0.to_owned())
        .chain(["google-invalid.cap".into(), "google-xee.cap".into()])
        .collect();
    assert_eq!(
        samples, covered,
        "every sample has an expected outcome here"
    );

    for (file, version, identifier, infos) in valid {
        let path = cap_dir().join(file);
        let path = path_str(&path);

        let out = run("filet", &["cap", "check", path]);

        assert_eq!(out.code, Some(0), "{file}: {}", out.stderr);
        assert_eq!(
            out.stdout,
            format!("{path}: valid CAP {version} alert {identifier} ({infos} info block(s))\n")
        );
        assert_eq!(out.stderr, "");
    }
}

#[test]
fn filet_cap_check_of_google_invalid_exits_4_naming_the_missing_alert_scope() {
    let path = cap_dir().join("google-invalid.cap");
    let path = path_str(&path);

    let out = run("filet", &["cap", "check", path]);

    assert_eq!(out.code, Some(4));
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        format!("filet: {path}: not a valid CAP 1.2 alert: alert/scope: missing; CAP 1.2 §3.2.1 requires it\n")
    );
}

#[test]
fn filet_cap_check_of_google_xee_exits_4_because_dtds_are_not_accepted() {
    let path = cap_dir().join("google-xee.cap");
    let path = path_str(&path);

    let out = run("filet", &["cap", "check", path]);

    assert_eq!(out.code, Some(4));
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        format!("filet: {path}: not a valid CAP 1.2 alert: DTDs are not accepted (CAP 1.2 needs none); nothing was read\n")
    );
}

#[test]
fn filet_cap_check_reads_at_most_one_byte_past_the_limit_and_names_the_file_and_the_limit() {
    // `/dev/zero` never ends: read whole, it exhausts memory (or the test's time bound).
    let out = run("filet", &["cap", "check", "/dev/zero"]);
    assert_eq!(out.code, Some(4), "{out:?}");
    assert_eq!(
        out.stderr,
        "filet: CAP file /dev/zero: more than 262144 bytes, the limit of a CAP alert; nothing was read\n"
    );
    // A sparse 1 GiB file, and a file exactly one byte over the limit.
    let dir = tempfile::tempdir().unwrap();
    for (name, len) in [("big.cap", 1u64 << 30), ("over.cap", 262_145)] {
        let path = dir.path().join(name);
        std::fs::File::create(&path).unwrap().set_len(len).unwrap();
        let path = path_str(&path);
        let out = run("filet", &["cap", "check", path]);
        assert_eq!(out.code, Some(4), "{out:?}");
        assert_eq!(
            out.stderr,
            format!("filet: CAP file {path}: more than 262144 bytes, the limit of a CAP alert; nothing was read\n")
        );
    }
}

#[test]
fn filet_cap_check_reads_a_latin1_document_by_its_declaration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.cap");
    let mut doc = br#"<?xml version="1.0" encoding="ISO-8859-1"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>QC-1</identifier><sender>sq@example.org</sender>
  <sent>2026-11-28T22:40:00-05:00</sent><status>Actual</status><msgType>Alert</msgType>
  <scope>Public</scope>
  <info><category>Safety</category><event>test</event><urgency>Immediate</urgency>
    <severity>Severe</severity><certainty>Observed</certainty>
    <area><areaDesc>Qu"#
        .to_vec();
    doc.push(0xE9); // é in ISO-8859-1
    doc.extend_from_slice(b"bec</areaDesc></area></info>\n</alert>\n");
    std::fs::write(&path, &doc).unwrap();
    let path = path_str(&path);
    let out = run("filet", &["cap", "check", path]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        out.stdout,
        format!("{path}: valid CAP 1.2 alert QC-1 (1 info block(s))\n")
    );
    // Another declared encoding is refused by name.
    let other = String::from_utf8_lossy(&doc).replace("ISO-8859-1", "Shift_JIS");
    std::fs::write(dir.path().join("sjis.cap"), other).unwrap();
    let sjis = dir.path().join("sjis.cap");
    let sjis = path_str(&sjis);
    let out = run("filet", &["cap", "check", sjis]);
    assert_eq!(out.code, Some(4), "{out:?}");
    assert!(out.stderr.contains("\"Shift_JIS\""), "{}", out.stderr);
}

/// A Private CAP 1.2 alert addressed to DPJ/RTS, with `marker_use` inside its identifier
/// and `extra` as the first element of its info block.
fn private_cap(prolog: &str, marker_use: &str, extra: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
{prolog}<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>X{marker_use}</identifier>
  <sender>SPVQ/ESM/spvq-esm-01</sender>
  <sent>2026-11-29T03:00:00-00:00</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Private</scope>
  <addresses>DPJ/RTS</addresses>
  <info>{extra}
    <language>fr-CA</language>
    <category>Rescue</category>
    <event>runaway</event>
    <urgency>Immediate</urgency>
    <severity>Severe</severity>
    <certainty>Likely</certainty>
    <contact>418 555-0100</contact>
    <parameter><valueName>filet:subject.reference</valueName><value>XXE-1</value></parameter>
  </info>
</alert>
"#
    )
}

#[test]
fn no_external_entity_dtd_or_xinclude_brings_a_local_files_content_into_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let marker = "MARQUEUR-SECRET-5b7c2e91";
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, marker).unwrap();
    let url = format!("file://{}", secret.display());
    let dtd_refusal = "DTDs are not accepted (CAP 1.2 needs none); nothing was read";
    let cases = [
        (
            "external-entity",
            private_cap(
                &format!("<!DOCTYPE alert [<!ENTITY xxe SYSTEM \"{url}\">]>\n"),
                "&xxe;",
                "",
            ),
            dtd_refusal.to_owned(),
        ),
        (
            "parameter-entity",
            private_cap(
                &format!("<!DOCTYPE alert [<!ENTITY % p SYSTEM \"{url}\"> %p;]>\n"),
                "",
                "",
            ),
            dtd_refusal.to_owned(),
        ),
        (
            "undeclared-entity",
            private_cap("", "&xxe;", ""),
            "line 3, column 16: the entity &xxe; is not one of XML's five (&amp; &lt; &gt; &quot; &apos;) and no DTD is read to define it".to_owned(),
        ),
        (
            "xinclude",
            private_cap(
                "",
                "",
                &format!(
                    "<xi:include xmlns:xi=\"http://www.w3.org/2001/XInclude\" href=\"{url}\" parse=\"text\"/>"
                ),
            ),
            "alert/info/{http://www.w3.org/2001/XInclude}include: an element of another namespace; CAP 1.2 allows none here (only an XML signature, directly under alert)".to_owned(),
        ),
    ];
    for (name, xml, problem) in cases {
        let path = dir.path().join(format!("{name}.cap"));
        std::fs::write(&path, &xml).unwrap();
        let path = path_str(&path);

        let check = run("filet", &["cap", "check", path]);
        // Posting reads and imports the file before it connects: no relay is needed.
        let post = run("filet", &["post", "--cap", path]);

        assert_eq!((check.code, post.code), (Some(4), Some(4)), "{name}");
        assert_eq!(
            check.stderr,
            format!("filet: {path}: not a valid CAP 1.2 alert: {problem}\n"),
            "{name}"
        );
        assert_eq!(
            post.stderr,
            format!("filet: CAP file {path} cannot become a Filet alert: not a valid CAP 1.2 alert: {problem}; nothing was posted\n"),
            "{name}"
        );
        for out in [&check, &post] {
            assert_eq!(out.stdout, "", "{name}");
            assert!(!out.stderr.contains(marker), "{name}: {}", out.stderr);
        }
    }
}

/// SPVQ/ESM posts the runaway alert; returns its id.
async fn post_runaway(net: &TestNet, relay: &TestRelay) -> AlertId {
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let id = esm.post(runaway()).await.unwrap().alert;
    esm.close().await;
    id
}

/// `filet export --cap ID` as `unit`; the document.
async fn export(net: &TestNet, relay: &TestRelay, unit: &str, id: AlertId) -> String {
    let out = filet_as(net, unit, relay.addr, &["export", "--cap", &id.to_string()]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stderr, "");
    out.stdout
}

#[tokio::test]
async fn the_senders_export_then_filet_post_cap_gives_a_new_alert_with_the_same_content_to_the_addressed_units(
) {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let original = post_runaway(&net, &relay).await;

    let xml = export(&net, &relay, "SPVQ/ESM", original).await;

    for element in [
        format!("<identifier>{original}</identifier>"),
        "<sender>SPVQ/ESM/spvq-esm-01</sender>".into(),
        "<status>Actual</status>".into(),
        "<msgType>Alert</msgType>".into(),
        "<scope>Private</scope>".into(),
        format!("<addresses>{}</addresses>", RECIPIENTS.join(" ")),
        "<event>runaway</event>".into(),
        "<valueName>filet:subject.reference</valueName>\n      <value>SPVQ-2026-04417</value>"
            .into(),
    ] {
        assert!(xml.contains(&element), "no {element} in\n{xml}");
    }
    let file = net.path().join("exported.cap");
    std::fs::write(&file, &xml).unwrap();
    let file = path_str(&file);
    let check = run_off_runtime("filet", ["cap", "check", file].map(str::to_owned).to_vec()).await;
    assert_eq!(check.code, Some(0), "{}", check.stderr);

    let out = filet_as(
        &net,
        "SPVQ/ESM",
        relay.addr,
        &["--json", "post", "--cap", file],
    )
    .await;

    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let receipt: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let copy: AlertId = receipt["alert"].as_str().unwrap().parse().unwrap();
    assert_ne!(copy, original);
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let (a, _) = esm.get_alert(original).await.unwrap();
    let (b, recipients) = esm.get_alert(copy).await.unwrap();
    assert_eq!(b.content, a.content);
    assert_eq!(b.content, runaway().content);
    let e = (&a.envelope, &b.envelope);
    assert_eq!(
        (e.1.kind, e.1.category, e.1.status, e.1.risk, e.1.language),
        (e.0.kind, e.0.category, e.0.status, e.0.risk, e.0.language)
    );
    let recipients: Vec<String> = recipients.iter().map(ToString::to_string).collect();
    assert_eq!(recipients, RECIPIENTS);
    esm.close().await;
    relay.stop().await;
}

/// The bug behind the next test: `GetAlert` answers any unit of the sender's party with the
/// whole alert and its recipient list, before it considers whether the unit is a recipient
/// (relay/src/server.rs, `get_alert`), and logs no delivery for it.
#[tokio::test]
async fn get_alert_by_a_recipient_of_the_senders_own_party_is_redacted_and_logged_as_a_delivery() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let receipt = esm.post(runaway()).await.unwrap();
    let allowed = receipt
        .recipients
        .iter()
        .find(|r| r.unit.to_string() == "SPVQ/IKAT")
        .unwrap()
        .fields;
    let ikat = net.node("SPVQ/IKAT", relay.addr).await;

    let (d, recipients) = ikat.get_alert(receipt.alert).await.unwrap();

    assert_eq!(d.content, runaway().content.redact(allowed));
    assert_eq!(d.content.subject.reference, None);
    assert_eq!(d.content.last_seen.geo, None);
    assert!(recipients.is_empty(), "{recipients:?}");
    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    // `delivered` is logged once the answer is written to the stream, so it may follow
    // the answer by a group commit.
    wait_for_entry(&table, &relay.verifier(), "delivered", |e| {
        e.event.name() == "delivered"
    })
    .await;
    let log = full_log(&table, &relay.verifier()).await;
    let delivered: Vec<&filet_proto::audit::Event> =
        events(&log, "delivered").iter().map(|e| &e.event).collect();
    assert_eq!(
        delivered,
        [&filet_proto::audit::Event::Delivered {
            alert: receipt.alert,
            sender: "SPVQ/ESM/spvq-esm-01".parse().unwrap(),
            recipient: "SPVQ/IKAT/spvq-ikat-01".parse().unwrap(),
            fields: allowed,
            rules: vec!["enquete-vers-patrouille".into()],
            agreement: Some(AGREEMENT_ID.into()),
            agreement_version: Some(1),
        }]
    );
    for n in [esm, ikat, table] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn a_recipients_export_holds_only_its_own_unit_and_the_fields_its_rule_disclosed() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let id = post_runaway(&net, &relay).await;

    let xml = export(&net, &relay, "SPVQ/IKAT", id).await;

    assert!(xml.contains("<scope>Private</scope>"), "{xml}");
    assert!(xml.contains("<addresses>SPVQ/IKAT</addresses>"), "{xml}");
    for kept in [
        "<valueName>filet:subject.given_name</valueName>",
        "<valueName>filet:last_seen.place</valueName>",
        "<contact>Enquêtrice ESM, 418 555-0142 poste 3</contact>",
    ] {
        assert!(xml.contains(kept), "no {kept} in\n{xml}");
    }
    // enquete-vers-patrouille discloses neither the file number nor the position.
    for absent in [
        "filet:subject.reference",
        "SPVQ-2026-04417",
        "filet:last_seen.geo",
        "<circle>",
        "46.8123",
        "CJQ/PIVOT",
        "DPJ/RTS",
    ] {
        assert!(!xml.contains(absent), "{absent} in\n{xml}");
    }
    relay.stop().await;
}

/// `xml` without the `<parameter>` whose valueName is `name`.
fn without_parameter(xml: &str, name: &str) -> String {
    let at = xml
        .find(&format!("<valueName>{name}</valueName>"))
        .unwrap_or_else(|| panic!("no parameter {name}"));
    let start = xml[..at].rfind("<parameter>").unwrap();
    let end = at + xml[at..].find("</parameter>").unwrap() + "</parameter>".len();
    format!("{}{}", xml[..start].trim_end_matches(' '), &xml[end..])
}

#[tokio::test]
async fn filet_post_cap_refuses_a_public_alert_one_without_a_file_number_and_an_unknown_category_and_posts_nothing(
) {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let id = post_runaway(&net, &relay).await;
    let xml = export(&net, &relay, "SPVQ/ESM", id).await;
    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    let before = full_log(&table, &relay.verifier()).await;
    let no_reference = without_parameter(&xml, "filet:subject.reference");
    let unknown_category = without_parameter(&xml, "filet:category")
        .replace("<event>runaway</event>", "<event>Fugue</event>");
    let public = std::fs::read_to_string(cap_dir().join("oasis-cap12-appendix-a1.xml")).unwrap();
    let cases = [
        (
            "public",
            public,
            "alert/scope: a public CAP alert cannot become a restricted Filet alert",
        ),
        (
            "no-reference",
            no_reference,
            "alert/info/parameter filet:subject.reference: missing; a new alert (msgType Alert) needs the originating file number",
        ),
        (
            "unknown-category",
            unknown_category,
            "alert/info/event: \"Fugue\" is not a Filet category (runaway, sighting, exploitation-risk) and no filet:category parameter names one",
        ),
    ];

    for (name, doc, reason) in cases {
        let path = net.path().join(format!("{name}.cap"));
        std::fs::write(&path, doc).unwrap();
        let path = path_str(&path);

        let out = filet_as(&net, "SPVQ/ESM", relay.addr, &["post", "--cap", path]).await;

        assert_eq!(out.code, Some(4), "{name}: {}", out.stderr);
        assert_eq!(out.stdout, "", "{name}");
        assert_eq!(
            out.stderr,
            format!(
                "filet: CAP file {path} cannot become a Filet alert: {reason}; nothing was posted\n"
            ),
            "{name}"
        );
    }
    // Refused before reaching the relay: the log did not grow, no `posted` was added.
    let after = full_log(&table, &relay.verifier()).await;
    assert_eq!(after, before);
    assert_eq!(events(&after, "posted").len(), 1);
    table.close().await;
    relay.stop().await;
}
