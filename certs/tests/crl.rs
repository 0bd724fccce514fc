//! `filet-certs crl renew` and `filet-certs revoke --serial / --node`: the revocation list
//! is renewed before its nextUpdate without revoking anything, and a certificate is revoked
//! by what the operator knows of it.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

mod support;

use std::path::Path;
use std::process::{Command, Output};

use filet_certs::{describe_crl, load_certs, load_crls, serial_hex, Layout, RevocationList};
use support::example_agreement;

fn filet_certs(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_filet-certs"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn dev(tmp: &Path) -> Layout {
    let agreement = example_agreement();
    let o = filet_certs(
        &[
            "dev",
            "--agreement",
            agreement.to_str().unwrap(),
            "--dir",
            "PKI",
            "--relay",
            "127.0.0.1:4433",
        ],
        tmp,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    Layout::new(tmp.join("PKI"))
}

fn crl_of(layout: &Layout) -> filet_certs::CrlInfo {
    let crls = load_crls(&layout.crl()).unwrap();
    assert_eq!(crls.len(), 1);
    describe_crl(crls[0].as_ref()).unwrap()
}

fn serial_of(path: &Path) -> String {
    serial_hex(load_certs(path).unwrap()[0].as_ref()).unwrap()
}

#[test]
fn renewing_the_crl_bumps_its_number_and_keeps_every_revocation() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = dev(tmp.path());
    let o = filet_certs(
        &["revoke", "--dir", "PKI", "PKI/nodes/SQ-EILP.crt.pem"],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let before = crl_of(&layout);
    assert_eq!(before.crl_number.as_deref(), Some("2"));
    let list_before = RevocationList::load(&layout.revoked()).unwrap();

    let o = filet_certs(&["crl", "renew", "--dir", "PKI"], tmp.path());

    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let after = crl_of(&layout);
    assert_eq!(after.crl_number.as_deref(), Some("3"));
    assert_eq!(
        after
            .revoked
            .iter()
            .map(|r| (&r.serial, r.revoked_at, &r.reason))
            .collect::<Vec<_>>(),
        before
            .revoked
            .iter()
            .map(|r| (&r.serial, r.revoked_at, &r.reason))
            .collect::<Vec<_>>()
    );
    assert_eq!(after.revoked.len(), 1);
    assert!(after.this_update >= before.this_update);
    let next = after.next_update.unwrap();
    assert_eq!(next - after.this_update, filet_certs::CRL_VALIDITY);
    let list_after = RevocationList::load(&layout.revoked()).unwrap();
    assert_eq!(list_after.revoked, list_before.revoked);
    assert_eq!(list_after.crl_number, 3);
    assert_eq!(
        stdout(&o),
        format!(
            "renewed the revocation list: number 3, 1 revoked certificate(s), next update {}\nupdated:\n  PKI/revoked.toml\n  PKI/crl.pem\nthe relay applies it when it reloads PKI/crl.pem\n",
            next.format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        )
    );
}

#[test]
fn a_certificate_is_revoked_by_its_node_name_or_its_serial() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = dev(tmp.path());
    let eilp = serial_of(&layout.node_cert("SQ-EILP"));
    let rts = serial_of(&layout.node_cert("DPJ-RTS"));

    // By node name (the certificate's CN), or by the whole principal.
    let o = filet_certs(
        &["revoke", "--dir", "PKI", "--node", "sq-eilp-01"],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with(&format!(
            "revoked serial {eilp} (O=SQ, OU=EILP, CN=sq-eilp-01), reason unspecified\n"
        )),
        "{}",
        stdout(&o)
    );
    // By serial, here in upper case with colons as `openssl x509 -serial` may show it.
    let colons = rts
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let o = filet_certs(
        &[
            "revoke",
            "--dir",
            "PKI",
            "--serial",
            &colons,
            "--reason",
            "key-compromise",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with(&format!(
            "revoked serial {rts} (O=DPJ, OU=RTS, CN=dpj-rts-01), reason key-compromise\n"
        )),
        "{}",
        stdout(&o)
    );
    let crl = crl_of(&layout);
    assert_eq!(crl.crl_number.as_deref(), Some("3"));
    let serials: Vec<&str> = crl.revoked.iter().map(|r| r.serial.as_str()).collect();
    assert_eq!(serials, [eilp.as_str(), rts.as_str()]);

    // A name this PKI never issued is named, with where it was looked for.
    let o = filet_certs(
        &["revoke", "--dir", "PKI", "--node", "nobody-01"],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "filet-certs: error: PKI/nodes: no node certificate named nobody-01 (give its node name, PARTY/UNIT/node, or the certificate file)\n"
    );
    // Exactly one of the certificate file, --serial and --node.
    let o = filet_certs(
        &[
            "revoke",
            "--dir",
            "PKI",
            "--node",
            "sq-eilp-01",
            "--serial",
            "01",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = filet_certs(&["revoke", "--dir", "PKI"], tmp.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // A serial that is not hexadecimal is named.
    let o = filet_certs(&["revoke", "--dir", "PKI", "--serial", "12zz"], tmp.path());
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "filet-certs: error: --serial: \"12zz\" is not a hexadecimal serial number\n"
    );
    // Nothing changed by the refusals.
    assert_eq!(crl_of(&layout).crl_number.as_deref(), Some("3"));
}
