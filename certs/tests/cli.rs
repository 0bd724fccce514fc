//! The `filet-certs` binary, end to end: what it prints, what it writes, its exit codes.
#![allow(clippy::unwrap_used)] // test helpers too: a panic is a test failure with its place

mod support;

use std::path::Path;
use std::process::{Command, Output};

use filet_certs::{principal_of, Layout};
use support::{example_agreement, EXAMPLE_UNITS};

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

#[test]
fn dev_show_node_relay_revoke_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let agreement = example_agreement();
    let agreement = agreement.to_str().unwrap();

    let o = filet_certs(
        &[
            "dev",
            "--agreement",
            agreement,
            "--dir",
            "PKI",
            "--relay",
            "127.0.0.1:4433",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], ["CA:", "  PKI/ca.crt.pem", "  PKI/ca.key.pem"]);
    assert!(
        out.contains("revocation list:\n  PKI/crl.pem\n  PKI/revoked.toml\n"),
        "{out}"
    );
    assert!(
        out.contains("relay (127.0.0.1):\n  PKI/relay.crt.pem\n  PKI/relay.key.pem\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!("node certificates ({EXAMPLE_UNITS}):\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("profiles ({EXAMPLE_UNITS}):\n")),
        "{out}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.ends_with(".crt.pem")).count(),
        EXAMPLE_UNITS + 2
    );
    assert_eq!(
        lines.iter().filter(|l| l.ends_with(".key.pem")).count(),
        EXAMPLE_UNITS + 2
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("  PKI/profiles/"))
            .count(),
        EXAMPLE_UNITS
    );
    assert_eq!(
        lines.last(),
        Some(&"next: filet --profile PKI/profiles/SPVQ-ESM.toml whoami")
    );
    // Every file printed exists.
    for line in lines.iter().filter_map(|l| l.strip_prefix("  ")) {
        assert!(tmp.path().join(line).is_file(), "{line}");
    }

    // A second dev refuses to replace the CA.
    let o = filet_certs(
        &[
            "dev",
            "--agreement",
            agreement,
            "--dir",
            "PKI",
            "--relay",
            "127.0.0.1:4433",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "filet-certs: error: PKI/ca.crt.pem already exists (use --force to replace it; every certificate the old CA issued would stop working)\n"
    );

    let o = filet_certs(&["show", "PKI/nodes/SPVQ-ESM.crt.pem"], tmp.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let shown = stdout(&o);
    assert!(
        shown.starts_with("certificate\n  subject:     O=SPVQ, OU=ESM, CN=spvq-esm-01\n"),
        "{shown}"
    );
    assert!(shown.contains("  ext. usage:  clientAuth\n"), "{shown}");
    assert!(
        shown.contains("  principal:   SPVQ/ESM/spvq-esm-01\n"),
        "{shown}"
    );

    let o = filet_certs(
        &[
            "node",
            "--dir",
            "PKI",
            "--party",
            "DPJ",
            "--unit",
            "RTS",
            "--node",
            "rts-poste-02",
            "--relay",
            "relay.filet.example:4433",
            "--agreement",
            agreement,
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "node DPJ/RTS/rts-poste-02:\n  PKI/nodes/DPJ-RTS-rts-poste-02.crt.pem\n  \
         PKI/nodes/DPJ-RTS-rts-poste-02.key.pem\n  PKI/profiles/DPJ-RTS-rts-poste-02.toml\n\
         next: filet --profile PKI/profiles/DPJ-RTS-rts-poste-02.toml whoami\n"
    );
    let cert = filet_certs::load_certs(&tmp.path().join("PKI/nodes/DPJ-RTS-rts-poste-02.crt.pem"))
        .unwrap();
    assert_eq!(
        principal_of(&cert[0]).unwrap().to_string(),
        "DPJ/RTS/rts-poste-02"
    );

    let o = filet_certs(
        &[
            "relay",
            "--dir",
            "PKI",
            "--name",
            "relay.filet.example",
            "--name",
            "10.0.0.7",
            "--force",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = filet_certs(&["show", "PKI/relay.crt.pem"], tmp.path());
    assert!(
        stdout(&o).contains("  names:       DNS:relay.filet.example, IP:10.0.0.7\n"),
        "{}",
        stdout(&o)
    );

    let serial = filet_certs::serial_hex(
        &filet_certs::load_certs(&tmp.path().join("PKI/nodes/SQ-EILP.crt.pem")).unwrap()[0],
    )
    .unwrap();
    let o = filet_certs(
        &[
            "revoke",
            "--dir",
            "PKI",
            "PKI/nodes/SQ-EILP.crt.pem",
            "--reason",
            "cessation-of-operation",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with(&format!(
            "revoked serial {serial} (O=SQ, OU=EILP, CN=sq-eilp-01), reason cessation-of-operation\n"
        )),
        "{}",
        stdout(&o)
    );
    let o = filet_certs(&["show", "PKI/crl.pem"], tmp.path());
    let shown = stdout(&o);
    assert!(shown.starts_with("revocation list\n"), "{shown}");
    assert!(shown.contains("  number:      2\n"), "{shown}");
    assert!(shown.contains("  revoked:     1\n"), "{shown}");
    assert!(shown.contains(&format!("    {serial}  ")), "{shown}");
    assert!(shown.contains("  CessationOfOperation"), "{shown}");

    let o = filet_certs(
        &["revoke", "--dir", "PKI", "PKI/nodes/SQ-EILP.crt.pem"],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "filet-certs: error: PKI/nodes/SQ-EILP.crt.pem: serial {serial} is already revoked\n"
        )
    );
    let layout = Layout::new(tmp.path().join("PKI"));
    assert!(std::fs::read_to_string(layout.revoked())
        .unwrap()
        .contains("reason = \"cessation-of-operation\""));
}

#[test]
fn init_then_node_without_a_profile() {
    let tmp = tempfile::tempdir().unwrap();
    let agreement = example_agreement();
    let agreement = agreement.to_str().unwrap();
    let o = filet_certs(
        &["init", "--agreement", agreement, "--dir", "pki"],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "CA and revocation list:\n  pki/ca.crt.pem\n  pki/ca.key.pem\n  pki/crl.pem\n  pki/revoked.toml\n"
    );
    let o = filet_certs(
        &["node", "--dir", "pki", "--party", "CSSC", "--unit", "PIVOT"],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "node CSSC/PIVOT/cssc-pivot-01:\n  pki/nodes/CSSC-PIVOT.crt.pem\n  pki/nodes/CSSC-PIVOT.key.pem\n"
    );
}

#[test]
fn errors_name_the_file_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let agreement = example_agreement();
    let agreement = agreement.to_str().unwrap();

    let o = filet_certs(
        &[
            "dev",
            "--agreement",
            "missing/agreement.toml",
            "--dir",
            "PKI",
            "--relay",
            "127.0.0.1:4433",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "filet-certs: error: cannot read missing/agreement.toml: No such file or directory (os error 2)\n"
    );
    assert!(!tmp.path().join("PKI").exists(), "nothing written");

    let o = filet_certs(
        &["node", "--dir", "PKI", "--party", "SPVQ", "--unit", "ESM"],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "filet-certs: error: cannot issue a certificate for SPVQ/ESM: no CA: PKI/ca.crt.pem does not exist; run `filet-certs init` first\n"
    );

    let o = filet_certs(
        &["init", "--agreement", agreement, "--dir", "PKI"],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = filet_certs(
        &[
            "node",
            "--dir",
            "PKI",
            "--party",
            "SPVQ",
            "--unit",
            "ESN",
            "--agreement",
            agreement,
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        format!(
            "filet-certs: error: cannot issue a certificate for SPVQ/ESN: unit SPVQ/ESN is not in agreement {agreement} (units of SPVQ: CONFORMITE, ESM, GRIPP, IJP, IKAT)\n"
        )
    );
    let o = filet_certs(
        &["node", "--dir", "PKI", "--party", "Spvq", "--unit", "ESM"],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "filet-certs: error: cannot issue a certificate for Spvq/ESM: invalid party \"Spvq\": party code \"Spvq\" is not 1-32 characters of A-Z, 0-9, '_' or '-'\n"
    );

    let o = filet_certs(&["show", "PKI/nope.pem"], tmp.path());
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "filet-certs: error: cannot read PKI/nope.pem: No such file or directory (os error 2)\n"
    );
    let o = filet_certs(&["show", "PKI/ca.key.pem"], tmp.path());
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "private key (not shown)\n");
    let o = filet_certs(&["show", "PKI/revoked.toml"], tmp.path());
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "filet-certs: error: PKI/revoked.toml: no certificate or revocation list found\n"
    );
}

#[test]
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        &["frobnicate"][..],
        &["dev", "--dir", "PKI"],
        &["relay", "--dir", "PKI"],
        &["revoke", "--dir", "PKI", "x.pem", "--reason", "lost"],
    ] {
        let o = filet_certs(args, tmp.path());
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).starts_with("error: "),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    let o = filet_certs(
        &["revoke", "--dir", "PKI", "x.pem", "--reason", "lost"],
        tmp.path(),
    );
    assert!(
        stderr(&o).contains(
            "[possible values: key-compromise, superseded, cessation-of-operation, unspecified]"
        ),
        "{}",
        stderr(&o)
    );
    let o = filet_certs(&["--help"], tmp.path());
    assert_eq!(o.status.code(), Some(0));
    for sub in ["dev", "init", "relay", "node", "revoke", "show"] {
        assert!(
            stdout(&o).contains(&format!("  {sub} ")),
            "{sub}: {}",
            stdout(&o)
        );
    }
}

#[test]
fn revoke_refuses_the_ca_certificate_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
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
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let layout = Layout::new(tmp.path().join("PKI"));
    let (crl, revoked) = (
        std::fs::read(layout.crl()).unwrap(),
        std::fs::read(layout.revoked()).unwrap(),
    );

    let o = filet_certs(&["revoke", "--dir", "PKI", "PKI/ca.crt.pem"], tmp.path());

    assert_eq!(
        (o.status.code(), stdout(&o), stderr(&o)),
        (
            Some(1),
            String::new(),
            "filet-certs: error: PKI/ca.crt.pem is a CA certificate, not a node's or the relay's: only certificates this CA issued to nodes and relays can be revoked (a compromised CA needs a new PKI: filet-certs init in a new directory, then new certificates for every node)\n".to_owned()
        )
    );
    assert_eq!(std::fs::read(layout.crl()).unwrap(), crl);
    assert_eq!(std::fs::read(layout.revoked()).unwrap(), revoked);
}
