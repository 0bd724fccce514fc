//! The PKI directory: `dev`, `init`, `issue_relay`, `issue_node`, `revoke`, and the loading
//! helpers the relay and the client use.
#![allow(clippy::unwrap_used)] // test helpers too: a panic is a test failure with its place

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use filet_certs::{
    check_key_permissions, dev, init, issue_node, issue_relay, load_certs, load_crls, load_key,
    principal_of, revoke, Ca, CertError, Layout, NodeRequest, RevocationList, RevocationReason,
};
use filet_proto::agreement::Agreement;
use filet_proto::principal::UnitRef;
use filet_proto::profile::Profile;
use rustls::pki_types::CertificateDer;
use rustls::{CertificateError, Error as TlsError};
use support::{example_agreement, verifier, verify_client, EXAMPLE_UNITS};
use x509_parser::prelude::{FromDer as _, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::x509::ReasonCode;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn one_cert(path: &Path) -> CertificateDer<'static> {
    let mut certs = load_certs(path).unwrap();
    assert_eq!(certs.len(), 1, "{}", path.display());
    certs.remove(0)
}

fn attrs<'a>(
    it: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
) -> Vec<String> {
    it.map(|a| a.as_str().unwrap().to_owned()).collect()
}

fn dev_dir() -> (tempfile::TempDir, filet_certs::DevReport) {
    let tmp = tempfile::tempdir().unwrap();
    let report = dev(tmp.path(), &example_agreement(), "127.0.0.1:4433", false).unwrap();
    (tmp, report)
}

#[test]
fn dev_writes_a_node_certificate_per_unit_with_the_exact_subject_and_client_auth_only() {
    let (tmp, report) = dev_dir();
    let layout = Layout::new(tmp.path());
    let text = fs::read_to_string(example_agreement()).unwrap();
    let agreement = Agreement::parse(&text, "agreement.example.toml").unwrap();
    let units: Vec<UnitRef> = agreement.units().collect();
    assert_eq!(units.len(), EXAMPLE_UNITS);
    assert_eq!(report.nodes.len(), EXAMPLE_UNITS);
    assert_eq!(
        fs::read_dir(layout.nodes_dir()).unwrap().count(),
        2 * EXAMPLE_UNITS
    );
    assert_eq!(
        fs::read_dir(layout.profiles_dir()).unwrap().count(),
        EXAMPLE_UNITS
    );

    let ca = one_cert(&layout.ca_cert());
    let (_, ca_x509) = X509Certificate::from_der(&ca).unwrap();
    for (unit, node) in units.iter().zip(&report.nodes) {
        let stem = format!("{}-{}", unit.party, unit.unit);
        assert_eq!(node.cert, layout.node_cert(&stem));
        let der = one_cert(&node.cert);
        let (_, x509) = X509Certificate::from_der(&der).unwrap();
        let subject = x509.subject();
        let expected_node = format!("{}-{}-01", unit.party, unit.unit).to_lowercase();
        assert_eq!(attrs(subject.iter_organization()), vec![unit.party.clone()]);
        assert_eq!(
            attrs(subject.iter_organizational_unit()),
            vec![unit.unit.clone()]
        );
        assert_eq!(
            attrs(subject.iter_common_name()),
            vec![expected_node.clone()]
        );
        assert_eq!(
            subject.iter_attributes().count(),
            3,
            "nothing else in {subject}"
        );
        let eku = x509.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth);
        assert!(!eku.server_auth && !eku.any && !eku.code_signing && eku.other.is_empty());
        let ku = x509.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_cert_sign());
        assert!(!x509.is_ca());
        let days = (x509.validity().not_after.to_datetime()
            - x509.validity().not_before.to_datetime())
        .whole_days();
        assert_eq!(days, 397);
        x509.verify_signature(Some(ca_x509.public_key())).unwrap();
        assert_eq!(x509.issuer(), ca_x509.subject());
        let principal = principal_of(&der).unwrap();
        assert_eq!(principal.to_string(), format!("{unit}/{expected_node}"));
        assert_eq!(node.principal, principal);
    }
}

#[test]
fn the_ca_and_relay_certificates_say_what_they_are_for() {
    let (tmp, report) = dev_dir();
    let layout = Layout::new(tmp.path());
    let ca = one_cert(&layout.ca_cert());
    let (_, ca) = X509Certificate::from_der(&ca).unwrap();
    assert_eq!(
        ca.subject().to_string(),
        "O=Filet, CN=Filet CA table-regionale-quebec-esj"
    );
    assert_eq!(ca.subject(), ca.issuer());
    let bc = ca.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    let ku = ca.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign() && !ku.digital_signature());
    let years = (ca.validity().not_after.to_datetime() - ca.validity().not_before.to_datetime())
        .whole_days()
        / 365;
    assert_eq!(years, 10);
    ca.verify_signature(None).unwrap();

    assert_eq!(report.relay_names, vec!["127.0.0.1".to_owned()]);
    let relay = one_cert(&layout.relay_cert());
    let (_, relay) = X509Certificate::from_der(&relay).unwrap();
    assert_eq!(relay.subject().to_string(), "CN=127.0.0.1");
    let eku = relay.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    let san = relay.subject_alternative_name().unwrap().unwrap().value;
    assert_eq!(
        format!("{:?}", san.general_names),
        "[IPAddress([127, 0, 0, 1])]"
    );
    let days = (relay.validity().not_after.to_datetime()
        - relay.validity().not_before.to_datetime())
    .whole_days();
    assert_eq!(days, 825);

    // `relay` re-issues for DNS names and IP addresses, and refuses to overwrite silently.
    let names = vec!["relay.filet.example".to_owned(), "::1".to_owned()];
    let e = issue_relay(tmp.path(), &names, false).unwrap_err();
    assert!(
        matches!(&e, CertError::Exists { path, .. } if *path == layout.relay_cert()),
        "{e}"
    );
    issue_relay(tmp.path(), &names, true).unwrap();
    let relay = one_cert(&layout.relay_cert());
    let (_, relay) = X509Certificate::from_der(&relay).unwrap();
    assert_eq!(relay.subject().to_string(), "CN=relay.filet.example");
    let san = relay.subject_alternative_name().unwrap().unwrap().value;
    assert_eq!(
        format!("{:?}", san.general_names),
        "[DNSName(\"relay.filet.example\"), IPAddress([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])]"
    );
}

#[test]
fn node_certificates_pass_the_relays_client_verifier_and_a_relay_certificate_does_not() {
    let (tmp, report) = dev_dir();
    let layout = Layout::new(tmp.path());
    let ca = one_cert(&layout.ca_cert());
    let v = verifier(&ca, load_crls(&layout.crl()).unwrap());
    for node in &report.nodes {
        verify_client(v.as_ref(), &one_cert(&node.cert)).unwrap();
    }
    let e = verify_client(v.as_ref(), &one_cert(&layout.relay_cert())).unwrap_err();
    assert!(
        matches!(
            e,
            TlsError::InvalidCertificate(
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. }
            )
        ),
        "{e:?}"
    );
}

#[test]
fn keys_are_0600_certificates_0644_serials_distinct_16_bytes() {
    let (tmp, report) = dev_dir();
    let layout = Layout::new(tmp.path());
    let mut keys = vec![layout.ca_key(), layout.relay_key()];
    keys.extend(report.nodes.iter().map(|n| n.key.clone()));
    for key in &keys {
        assert_eq!(mode(key), 0o600, "{}", key.display());
        check_key_permissions(key).unwrap();
        load_key(key).unwrap();
        assert!(fs::read_to_string(key)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----\n"));
    }
    let mut certs = vec![layout.ca_cert(), layout.relay_cert()];
    certs.extend(report.nodes.iter().map(|n| n.cert.clone()));
    let mut serials = BTreeSet::new();
    for cert in &certs {
        assert_eq!(mode(cert), 0o644, "{}", cert.display());
        let der = one_cert(cert);
        let (_, x509) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(x509.raw_serial().len(), 16, "{}", cert.display());
        assert!(x509.raw_serial()[0] < 0x80);
        serials.insert(x509.raw_serial().to_vec());
    }
    assert_eq!(serials.len(), certs.len());
    assert_eq!(certs.len(), EXAMPLE_UNITS + 2);
    assert_eq!(mode(&layout.crl()), 0o644);
    // Nothing else, no temporary file left behind.
    let mut top: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(
        top,
        [
            "ca.crt.pem",
            "ca.key.pem",
            "crl.pem",
            "nodes",
            "profiles",
            "relay.crt.pem",
            "relay.key.pem",
            "revoked.toml"
        ]
    );
    assert_eq!(report.paths().len(), 6 + 3 * EXAMPLE_UNITS);
}

#[test]
fn profiles_parse_and_point_to_the_files_of_their_node() {
    let (tmp, report) = dev_dir();
    let layout = Layout::new(tmp.path());
    let first = report.first_profile.clone().unwrap();
    assert_eq!(
        first,
        layout.profile("SPVQ-ESM"),
        "the first rule's first sender"
    );
    for node in &report.nodes {
        let path = node.profile.clone().unwrap();
        let stem = format!("{}-{}", node.principal.unit.party, node.principal.unit.unit);
        assert_eq!(path, layout.profile(&stem));
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("ca = \"../ca.crt.pem\""), "{text}");
        assert!(
            text.contains(&format!("cert = \"../nodes/{stem}.crt.pem\"")),
            "{text}"
        );
        let profile = Profile::parse(&text, path.parent().unwrap()).unwrap();
        assert_eq!(profile.relay, "127.0.0.1:4433");
        assert_eq!(profile.server_name, "127.0.0.1");
        assert_eq!(
            fs::canonicalize(&profile.ca).unwrap(),
            fs::canonicalize(layout.ca_cert()).unwrap()
        );
        assert_eq!(
            fs::canonicalize(&profile.cert).unwrap(),
            fs::canonicalize(&node.cert).unwrap()
        );
        assert_eq!(
            fs::canonicalize(&profile.key).unwrap(),
            fs::canonicalize(&node.key).unwrap()
        );
        assert_eq!(
            principal_of(&one_cert(&profile.cert)).unwrap(),
            node.principal
        );
    }
}

#[test]
fn dev_and_init_refuse_to_replace_a_ca_without_force() {
    let (tmp, _) = dev_dir();
    let layout = Layout::new(tmp.path());
    let before = fs::read(layout.ca_cert()).unwrap();
    let e = dev(tmp.path(), &example_agreement(), "127.0.0.1:4433", false).unwrap_err();
    assert!(
        matches!(&e, CertError::Exists { path, .. } if *path == layout.ca_cert()),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("every certificate the old CA issued would stop working"),
        "{e}"
    );
    let e = init(tmp.path(), &example_agreement(), false).unwrap_err();
    assert!(matches!(&e, CertError::Exists { .. }), "{e}");
    assert_eq!(fs::read(layout.ca_cert()).unwrap(), before, "untouched");

    let report = dev(tmp.path(), &example_agreement(), "localhost:4433", true).unwrap();
    assert_ne!(fs::read(layout.ca_cert()).unwrap(), before);
    assert_eq!(report.relay_names, vec!["localhost".to_owned()]);
    let ca = one_cert(&layout.ca_cert());
    let v = verifier(&ca, load_crls(&layout.crl()).unwrap());
    verify_client(v.as_ref(), &one_cert(&report.nodes[0].cert)).unwrap();
}

#[test]
fn init_writes_a_ca_and_an_empty_crl_number_1() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let paths = init(&dir, &example_agreement(), false).unwrap();
    let layout = Layout::new(&dir);
    assert_eq!(
        paths,
        vec![
            layout.ca_cert(),
            layout.ca_key(),
            layout.crl(),
            layout.revoked()
        ]
    );
    let crls = load_crls(&layout.crl()).unwrap();
    assert_eq!(crls.len(), 1);
    let (_, crl) = CertificateRevocationList::from_der(&crls[0]).unwrap();
    assert_eq!(crl.iter_revoked_certificates().count(), 0);
    assert_eq!(crl.crl_number().unwrap().to_string(), "1");
    let days =
        (crl.next_update().unwrap().to_datetime() - crl.last_update().to_datetime()).whole_days();
    assert_eq!(days, 30);
    let ca = one_cert(&layout.ca_cert());
    let (_, ca) = X509Certificate::from_der(&ca).unwrap();
    crl.verify_signature(ca.public_key()).unwrap();
    assert_eq!(
        RevocationList::load(&layout.revoked()).unwrap(),
        RevocationList {
            crl_number: 1,
            revoked: vec![]
        }
    );
}

#[test]
fn revoke_puts_the_serial_in_a_new_signed_crl_and_the_verifier_refuses_it() {
    let (tmp, report) = dev_dir();
    let layout = Layout::new(tmp.path());
    let victim = &report.nodes[3];
    let other = &report.nodes[4];
    let r = revoke(tmp.path(), &victim.cert, RevocationReason::KeyCompromise).unwrap();
    assert_eq!(r.serial, victim.serial);
    assert_eq!(r.reason, RevocationReason::KeyCompromise);
    assert_eq!(
        r.subject,
        format!(
            "O={}, OU={}, CN={}",
            victim.principal.unit.party, victim.principal.unit.unit, victim.principal.node
        )
    );
    revoke(tmp.path(), &other.cert, RevocationReason::Unspecified).unwrap();

    let crls = load_crls(&layout.crl()).unwrap();
    let (_, crl) = CertificateRevocationList::from_der(&crls[0]).unwrap();
    assert_eq!(crl.crl_number().unwrap().to_string(), "3");
    let entries: Vec<(String, Option<ReasonCode>)> = crl
        .iter_revoked_certificates()
        .map(|r| {
            (
                r.raw_serial_as_string().replace(':', ""),
                r.reason_code().map(|c| c.1),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            (victim.serial.clone(), Some(ReasonCode::KeyCompromise)),
            (other.serial.clone(), None),
        ]
    );
    let list = RevocationList::load(&layout.revoked()).unwrap();
    assert_eq!(list.crl_number, 3);
    assert_eq!(list.revoked.len(), 2);
    assert_eq!(list.revoked[1].reason, RevocationReason::Unspecified);

    let v = verifier(&one_cert(&layout.ca_cert()), crls);
    let e = verify_client(v.as_ref(), &one_cert(&victim.cert)).unwrap_err();
    assert_eq!(e, TlsError::InvalidCertificate(CertificateError::Revoked));
    verify_client(v.as_ref(), &one_cert(&report.nodes[5].cert)).unwrap();

    let e = revoke(tmp.path(), &victim.cert, RevocationReason::Superseded).unwrap_err();
    assert!(
        matches!(&e, CertError::AlreadyRevoked { serial, .. } if *serial == victim.serial),
        "{e}"
    );
}

#[test]
fn revoke_refuses_a_certificate_of_another_ca_and_a_missing_record() {
    let (tmp, _) = dev_dir();
    let (other, other_report) = dev_dir();
    let e = revoke(
        tmp.path(),
        &other_report.nodes[0].cert,
        RevocationReason::Unspecified,
    )
    .unwrap_err();
    assert!(
        matches!(&e, CertError::NotIssuedByCa { path, .. } if *path == other_report.nodes[0].cert),
        "{e}"
    );
    let layout = Layout::new(other.path());
    fs::remove_file(layout.revoked()).unwrap();
    let e = revoke(
        other.path(),
        &other_report.nodes[0].cert,
        RevocationReason::Unspecified,
    )
    .unwrap_err();
    assert!(
        matches!(&e, CertError::Read { path, .. } if *path == layout.revoked()),
        "{e}"
    );
}

#[test]
fn node_checks_the_agreement_and_writes_a_profile_only_with_a_relay() {
    let tmp = tempfile::tempdir().unwrap();
    let agreement = example_agreement();
    let request = NodeRequest {
        party: "SPVQ",
        unit: "ESM",
        agreement: Some(&agreement),
        ..NodeRequest::default()
    };
    let e = issue_node(tmp.path(), &request).unwrap_err();
    assert!(
        matches!(&e, CertError::NoCa { path } if *path == tmp.path().join("ca.crt.pem")),
        "{e}"
    );
    assert!(
        e.to_string().contains("run `filet-certs init` first"),
        "{e}"
    );

    init(tmp.path(), &agreement, false).unwrap();
    let files = issue_node(tmp.path(), &request).unwrap();
    assert_eq!(files.principal.to_string(), "SPVQ/ESM/spvq-esm-01");
    assert_eq!(files.profile, None);
    assert!(!tmp.path().join("profiles").exists());
    let e = issue_node(tmp.path(), &request).unwrap_err();
    assert!(
        matches!(&e, CertError::Exists { path, .. } if *path == files.cert),
        "{e}"
    );

    let files = issue_node(
        tmp.path(),
        &NodeRequest {
            node: Some("esm-poste-02"),
            relay: Some("relay.filet.example:4433"),
            ..request.clone()
        },
    )
    .unwrap();
    assert_eq!(
        files.cert,
        tmp.path().join("nodes/SPVQ-ESM-esm-poste-02.crt.pem")
    );
    let profile_path = files.profile.clone().unwrap();
    let profile = Profile::parse(
        &fs::read_to_string(&profile_path).unwrap(),
        profile_path.parent().unwrap(),
    )
    .unwrap();
    assert_eq!(profile.server_name, "relay.filet.example");
    assert_eq!(
        principal_of(&one_cert(&profile.cert)).unwrap().to_string(),
        "SPVQ/ESM/esm-poste-02"
    );

    let e = issue_node(
        tmp.path(),
        &NodeRequest {
            unit: "XYZ",
            ..request.clone()
        },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "unit SPVQ/XYZ is not in agreement {} (units of SPVQ: CONFORMITE, ESM, GRIPP, IJP, IKAT)",
            agreement.display()
        )
    );
    let e = issue_node(
        tmp.path(),
        &NodeRequest {
            party: "GRC",
            ..request.clone()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&e, CertError::UnknownParty { party, agreement: a, .. } if party == "GRC" && *a == agreement),
        "{e}"
    );
    let e = issue_node(
        tmp.path(),
        &NodeRequest {
            party: "spvq",
            ..request.clone()
        },
    )
    .unwrap_err();
    assert!(matches!(&e, CertError::Name { what: "party", .. }), "{e}");
    let e = issue_node(
        tmp.path(),
        &NodeRequest {
            node: Some("a b"),
            ..request.clone()
        },
    )
    .unwrap_err();
    assert!(matches!(&e, CertError::Name { what: "node", .. }), "{e}");
    let e = issue_node(
        tmp.path(),
        &NodeRequest {
            node: Some("x"),
            relay: Some("nohost"),
            ..request.clone()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&e, CertError::RelayAddress(a) if a == "nohost"),
        "{e}"
    );
    // Without an agreement, any well-formed unit is accepted.
    issue_node(
        tmp.path(),
        &NodeRequest {
            unit: "XYZ",
            agreement: None,
            ..request
        },
    )
    .unwrap();
}

#[test]
fn dev_reports_a_bad_agreement_path_and_a_bad_relay_address() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope.toml");
    let e = dev(tmp.path(), &missing, "127.0.0.1:4433", false).unwrap_err();
    assert!(
        matches!(&e, CertError::Read { path, .. } if *path == missing),
        "{e}"
    );
    let bad = tmp.path().join("bad.toml");
    fs::write(&bad, "id = \"x\"\nversion = 1\ntitle = \"t\"\n[parties.SPVQ]\nname = \"n\"\nunits = { esm = \"lower\" }\n").unwrap();
    let e = dev(tmp.path(), &bad, "127.0.0.1:4433", false).unwrap_err();
    assert!(
        matches!(&e, CertError::Agreement(a) if a.file == bad.display().to_string()),
        "{e:?}"
    );
    let e = dev(tmp.path(), &example_agreement(), "127.0.0.1", false).unwrap_err();
    assert!(
        matches!(&e, CertError::RelayAddress(a) if a == "127.0.0.1"),
        "{e}"
    );
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "nothing written"
    );
}

#[test]
fn loading_helpers_name_the_file_and_warn_about_open_keys() {
    let (tmp, report) = dev_dir();
    let layout = Layout::new(tmp.path());
    let key = &report.nodes[0].key;
    fs::set_permissions(key, fs::Permissions::from_mode(0o640)).unwrap();
    let e = check_key_permissions(key).unwrap_err();
    assert!(e.is_warning());
    assert!(
        matches!(&e, CertError::KeyPermissions { path, mode: 0o640 } if path == key),
        "{e}"
    );
    assert!(e.to_string().contains("mode 0640"), "{e}");
    load_key(key).unwrap();

    let missing = tmp.path().join("missing.pem");
    let e = load_certs(&missing).unwrap_err();
    assert!(
        matches!(&e, CertError::Read { path, .. } if *path == missing),
        "{e}"
    );
    assert!(!e.is_warning());
    let e = load_key(&layout.ca_cert()).unwrap_err();
    assert!(
        matches!(&e, CertError::Empty { what: "private key", path } if *path == layout.ca_cert()),
        "{e}"
    );
    let e = load_crls(&layout.ca_cert()).unwrap_err();
    assert!(
        matches!(
            &e,
            CertError::Empty {
                what: "revocation list",
                ..
            }
        ),
        "{e}"
    );
    let e = load_certs(key).unwrap_err();
    assert!(
        matches!(
            &e,
            CertError::Empty {
                what: "certificate",
                ..
            }
        ),
        "{e}"
    );
    let garbage = tmp.path().join("garbage.pem");
    fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = load_certs(&garbage).unwrap_err();
    assert!(
        matches!(&e, CertError::Pem { path, .. } if *path == garbage),
        "{e}"
    );
}

#[test]
fn a_damaged_ca_is_reported_with_its_file() {
    let (tmp, _) = dev_dir();
    let layout = Layout::new(tmp.path());
    // Another CA's key in place of ours.
    let stranger = Ca::generate("stranger").unwrap();
    fs::write(layout.ca_key(), stranger.key_pem()).unwrap();
    let e = Ca::load(tmp.path()).unwrap_err();
    assert!(
        matches!(&e, CertError::Invalid { path, reason } if *path == layout.ca_key() && reason == "this key does not match the CA certificate"),
        "{e}"
    );
    fs::remove_file(layout.ca_key()).unwrap();
    let e = Ca::load(tmp.path()).unwrap_err();
    assert!(
        matches!(&e, CertError::NoCa { path } if *path == layout.ca_key()),
        "{e}"
    );
}
