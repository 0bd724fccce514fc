//! `principal_of` on well-formed and hostile subjects, and hostile certificates crafted with
//! `CertSpec` that the relay's verifier must refuse, each for its own reason.
#![allow(clippy::unwrap_used)] // test helpers too: a panic is a test failure with its place

mod support;

use filet_certs::{
    describe, principal_of, self_signed, serial_hex, Attr, AttrValue, Ca, CertSpec, Eku,
    SubjectError, NODE_VALIDITY,
};
use filet_proto::principal::{NameError, Principal};
use rustls::{CertificateError, Error as TlsError};
use support::{verifier, verify_client};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer as _, X509Certificate};

fn principal() -> Principal {
    Principal::new("SPVQ", "ESM", "esm-poste-01").unwrap()
}

fn ca() -> Ca {
    Ca::generate("table-regionale-quebec-esj").unwrap()
}

fn with_subject(subject: Vec<(Attr, AttrValue)>) -> CertSpec {
    let mut spec = CertSpec::node(&principal());
    spec.subject = subject;
    spec
}

fn principal_of_subject(subject: Vec<(Attr, AttrValue)>) -> Result<Principal, SubjectError> {
    let issued = ca().issue(&with_subject(subject)).unwrap();
    principal_of(&issued.cert_der)
}

fn o(v: &str) -> (Attr, AttrValue) {
    (Attr::O, v.into())
}
fn ou(v: &str) -> (Attr, AttrValue) {
    (Attr::OU, v.into())
}
fn cn(v: &str) -> (Attr, AttrValue) {
    (Attr::CN, v.into())
}

#[test]
fn a_node_certificate_names_its_principal() {
    let issued = ca().issue(&CertSpec::node(&principal())).unwrap();
    assert_eq!(principal_of(&issued.cert_der), Ok(principal()));
    assert_eq!(serial_hex(&issued.cert_der).unwrap(), issued.serial_hex());
    assert_eq!(issued.serial.len(), 16);
    // Order and string type do not matter; extra attributes (C, L) are ignored.
    let p = principal_of_subject(vec![
        (Attr::C, AttrValue::Printable("CA".into())),
        (Attr::CN, AttrValue::Printable("esm-poste-01".into())),
        (Attr::OU, AttrValue::Utf8("ESM".into())),
        (Attr::L, "Québec".into()),
        (Attr::O, AttrValue::Printable("SPVQ".into())),
    ]);
    assert_eq!(p, Ok(principal()));
}

#[test]
fn missing_attributes_are_named() {
    assert_eq!(
        principal_of_subject(vec![ou("ESM"), cn("esm-poste-01")]),
        Err(SubjectError::MissingAttribute("O"))
    );
    assert_eq!(
        principal_of_subject(vec![o("SPVQ"), cn("esm-poste-01")]),
        Err(SubjectError::MissingAttribute("OU"))
    );
    assert_eq!(
        principal_of_subject(vec![o("SPVQ"), ou("ESM")]),
        Err(SubjectError::MissingAttribute("CN"))
    );
    assert_eq!(
        principal_of_subject(vec![]),
        Err(SubjectError::MissingAttribute("O"))
    );
    assert_eq!(
        SubjectError::MissingAttribute("O").to_string(),
        "certificate subject has no O attribute"
    );
}

#[test]
fn repeated_attributes_are_named() {
    // The second O could otherwise make a node of SPVQ pass for one of DPJ.
    let subject = vec![o("SPVQ"), o("DPJ"), ou("ESM"), cn("esm-poste-01")];
    let issued = ca().issue(&with_subject(subject)).unwrap();
    let (_, x509) = X509Certificate::from_der(&issued.cert_der).unwrap();
    assert_eq!(
        x509.subject().to_string(),
        "O=SPVQ, O=DPJ, OU=ESM, CN=esm-poste-01"
    );
    assert_eq!(
        principal_of(&issued.cert_der),
        Err(SubjectError::RepeatedAttribute("O"))
    );
    assert_eq!(
        principal_of_subject(vec![o("SPVQ"), ou("ESM"), ou("RTS"), cn("esm-poste-01")]),
        Err(SubjectError::RepeatedAttribute("OU"))
    );
    assert_eq!(
        principal_of_subject(vec![o("SPVQ"), ou("ESM"), cn("a"), cn("a")]),
        Err(SubjectError::RepeatedAttribute("CN"))
    );
    assert_eq!(
        SubjectError::RepeatedAttribute("O").to_string(),
        "certificate subject has more than one O attribute"
    );
}

#[test]
fn non_utf8_attributes_are_named() {
    let invalid = AttrValue::Raw {
        tag: 12, // UTF8String, holding a lone continuation byte
        bytes: b"ES\x80M".to_vec(),
    };
    assert_eq!(
        principal_of_subject(vec![o("SPVQ"), (Attr::OU, invalid), cn("esm-poste-01")]),
        Err(SubjectError::NotUtf8("OU"))
    );
    assert_eq!(
        principal_of_subject(vec![
            (Attr::O, AttrValue::Bmp("SPVQ".into())),
            ou("ESM"),
            cn("n")
        ]),
        Err(SubjectError::NotUtf8("O"))
    );
    let teletex = AttrValue::Raw {
        tag: 20,
        bytes: b"esm-poste-01".to_vec(),
    };
    assert_eq!(
        principal_of_subject(vec![o("SPVQ"), ou("ESM"), (Attr::CN, teletex)]),
        Err(SubjectError::NotUtf8("CN"))
    );
}

#[test]
fn malformed_names_are_refused_with_the_name_error() {
    assert_eq!(
        principal_of_subject(vec![o("spvq"), ou("ESM"), cn("n")]),
        Err(SubjectError::Malformed(NameError::BadCode {
            what: "party",
            value: "spvq".into()
        }))
    );
    assert_eq!(
        principal_of_subject(vec![o("SPVQ"), ou("ESM/RTS"), cn("n")]),
        Err(SubjectError::Malformed(NameError::BadCode {
            what: "unit",
            value: "ESM/RTS".into()
        }))
    );
    assert_eq!(
        principal_of_subject(vec![o("SPVQ"), ou("ESM"), cn("poste 01")]),
        Err(SubjectError::Malformed(NameError::BadNode(
            "poste 01".into()
        )))
    );
    assert!(matches!(
        principal_of(b"\x30\x03\x02\x01\x01"),
        Err(SubjectError::Unparsable(_))
    ));
    assert!(matches!(
        principal_of(b""),
        Err(SubjectError::Unparsable(_))
    ));
    let issued = ca().issue(&CertSpec::node(&principal())).unwrap();
    let mut trailing = issued.cert_der.to_vec();
    trailing.push(0);
    assert!(matches!(
        principal_of(&trailing),
        Err(SubjectError::Unparsable(_))
    ));
}

/// The relay refuses each hostile certificate for its own reason, while a good node
/// certificate from the same CA passes.
#[test]
fn hostile_certificates_are_refused_by_the_relays_verifier() {
    let ca = ca();
    let v = verifier(ca.cert_der(), vec![]);
    let now = OffsetDateTime::now_utc();
    let refused =
        |spec: &CertSpec| verify_client(v.as_ref(), &ca.issue(spec).unwrap().cert_der).unwrap_err();
    let good = CertSpec::node(&principal());
    verify_client(v.as_ref(), &ca.issue(&good).unwrap().cert_der).unwrap();

    let mut expired = good.clone();
    expired.not_before = now - Duration::days(30);
    expired.not_after = now - Duration::days(1);
    assert!(
        matches!(
            refused(&expired),
            TlsError::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            )
        ),
        "expired"
    );

    let mut not_yet = good.clone();
    not_yet.not_before = now + Duration::days(1);
    not_yet.not_after = now + Duration::days(30);
    assert!(
        matches!(
            refused(&not_yet),
            TlsError::InvalidCertificate(
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }
            )
        ),
        "not yet valid"
    );

    let mut server_only = good.clone();
    server_only.ekus = vec![Eku::ServerAuth];
    assert!(
        matches!(
            refused(&server_only),
            TlsError::InvalidCertificate(
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. }
            )
        ),
        "serverAuth only"
    );

    let own = self_signed(&good).unwrap();
    assert_eq!(
        principal_of(&own.cert_der),
        Ok(principal()),
        "the subject alone proves nothing"
    );
    assert_eq!(
        verify_client(v.as_ref(), &own.cert_der).unwrap_err(),
        TlsError::InvalidCertificate(CertificateError::UnknownIssuer),
        "self-signed"
    );

    let stranger = Ca::generate("table-regionale-quebec-esj").unwrap();
    let foreign = stranger.issue(&good).unwrap();
    assert_eq!(
        verify_client(v.as_ref(), &foreign.cert_der).unwrap_err(),
        TlsError::InvalidCertificate(CertificateError::BadSignature),
        "another CA with the same name"
    );
    let other_name = Ca::generate("another-agreement")
        .unwrap()
        .issue(&good)
        .unwrap();
    assert_eq!(
        verify_client(v.as_ref(), &other_name.cert_der).unwrap_err(),
        TlsError::InvalidCertificate(CertificateError::UnknownIssuer),
        "another CA"
    );

    // Subjects that chain fine but name no principal: the relay's `principal_of` refuses.
    for (subject, error) in [
        (
            vec![ou("ESM"), cn("n")],
            SubjectError::MissingAttribute("O"),
        ),
        (
            vec![o("SPVQ"), cn("n")],
            SubjectError::MissingAttribute("OU"),
        ),
        (
            vec![o("SPVQ"), ou("ESM")],
            SubjectError::MissingAttribute("CN"),
        ),
        (
            vec![o("SPVQ"), o("DPJ"), ou("ESM"), cn("n")],
            SubjectError::RepeatedAttribute("O"),
        ),
    ] {
        let issued = ca.issue(&with_subject(subject)).unwrap();
        verify_client(v.as_ref(), &issued.cert_der).unwrap();
        assert_eq!(principal_of(&issued.cert_der), Err(error));
    }
}

#[test]
fn self_signed_with_a_raw_subject_is_consistently_signed() {
    let spec = with_subject(vec![o("SPVQ"), o("SPVQ"), ou("ESM"), cn("n")]);
    let issued = self_signed(&spec).unwrap();
    let (_, x509) = X509Certificate::from_der(&issued.cert_der).unwrap();
    assert_eq!(x509.subject(), x509.issuer());
    x509.verify_signature(None).unwrap();
    assert!(issued.cert_pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.pem");
    std::fs::write(&path, &issued.cert_pem).unwrap();
    assert_eq!(
        filet_certs::load_certs(&path).unwrap(),
        vec![issued.cert_der.clone()]
    );
}

#[test]
fn describe_says_what_a_certificate_is_and_whom_it_names() {
    let ca = ca();
    let issued = ca.issue(&CertSpec::node(&principal())).unwrap();
    let info = describe(&issued.cert_der).unwrap();
    assert_eq!(info.subject, "O=SPVQ, OU=ESM, CN=esm-poste-01");
    assert_eq!(
        info.issuer,
        "O=Filet, CN=Filet CA table-regionale-quebec-esj"
    );
    assert_eq!(info.serial, issued.serial_hex());
    assert_eq!(info.ekus, vec!["clientAuth"]);
    assert_eq!(info.key_usages, vec!["digitalSignature"]);
    assert!(info.sans.is_empty());
    assert!(!info.is_ca);
    assert_eq!(
        (info.not_after - info.not_before).whole_days(),
        NODE_VALIDITY.whole_days()
    );
    assert_eq!(info.sha256.len(), 32 * 3 - 1);
    assert_eq!(info.principal, Ok(principal()));
    let text = info.to_string();
    assert!(
        text.contains("principal:   SPVQ/ESM/esm-poste-01"),
        "{text}"
    );

    let ca_info = describe(ca.cert_der()).unwrap();
    assert!(ca_info.is_ca);
    assert_eq!(ca_info.key_usages, vec!["keyCertSign", "cRLSign"]);
    assert_eq!(ca_info.principal, Err(SubjectError::MissingAttribute("OU")));
    assert!(ca_info
        .to_string()
        .contains("principal:   none (certificate subject has no OU attribute)"));
}
