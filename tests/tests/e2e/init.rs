//! A relay home from nothing (docs/operations.md "A relay home", "The PKI"): `filet-relay
//! init` writes a configuration that serves once `filet-certs` has made the PKI, an audit
//! key readable by its owner only whose verifier key it prints, refuses to overwrite a
//! home, and a typo in the configuration stops `serve` naming the file, line and key.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use filet_proto::profile::Profile;
use filet_relay::config::{Limits, Overrides, RelayConfig};
use filet_tests::*;
use serde_json::Value;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Runs a workspace binary off the runtime; asserts it exits 0; returns its stdout.
async fn ok(name: &'static str, args: Vec<String>) -> String {
    let out = blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(name, &args)
    })
    .await;
    assert_eq!(out.code, Some(0), "{name}: {}", out.stderr);
    out.stdout
}

fn s(p: &Path) -> String {
    path_str(p).to_owned()
}

#[tokio::test]
async fn filet_relay_init_makes_a_home_that_serves_and_refuses_to_overwrite_it() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("filet");
    // A read-only agreement, as one received or checked out often is: the copy must still
    // be one the operator can edit.
    let example = tmp.path().join("agreement.example.toml");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/agreement.toml"),
        &example,
    )
    .unwrap();
    std::fs::set_permissions(&example, std::fs::Permissions::from_mode(0o444)).unwrap();

    let stdout = ok(
        "filet-relay",
        vec![
            "init".into(),
            "--dir".into(),
            s(&home),
            "--agreement".into(),
            s(&example),
        ],
    )
    .await;

    let h = home.display();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 7, "{stdout}");
    let printed_key = lines[3]
        .strip_prefix("audit verifier key (give it to the auditors): ")
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_owned();
    assert_eq!(
        lines,
        [
            format!("wrote {h}/relay.toml"),
            format!("wrote {h}/agreement.toml (agreement {AGREEMENT_ID} v1)"),
            format!("wrote {h}/data/keys/audit-ed25519.pk8 (the audit signing key, mode 0600: back it up)"),
            format!("audit verifier key (give it to the auditors): {printed_key}"),
            "next:".to_owned(),
            format!("  filet-certs init --agreement {h}/agreement.toml --dir {h}/pki, then filet-certs relay and filet-certs node"),
            format!("  filet-relay serve --config {h}/relay.toml"),
        ]
    );
    assert!(
        printed_key.starts_with(&format!("filet.relay/{AGREEMENT_ID}+")),
        "{printed_key}"
    );
    let config = home.join("relay.toml");
    let key = home.join("data/keys/audit-ed25519.pk8");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read(home.join("agreement.toml")).unwrap(),
        std::fs::read(&example).unwrap()
    );
    // Regression: the copy kept the source's 0444, so "edit the agreement, then reload"
    // needed a chmod first.
    let mode = std::fs::metadata(home.join("agreement.toml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o600, 0o600, "agreement.toml mode {mode:o}");
    let cfg = RelayConfig::load(Some(&config), Overrides::default()).unwrap();
    assert_eq!(
        (&cfg.data_dir, &cfg.agreement, &cfg.pki.crl, &cfg.limits),
        (
            &home.join("data"),
            &home.join("agreement.toml"),
            &home.join("pki/crl.pem"),
            &Limits::default()
        )
    );
    // Regression: init turned metrics on at a fixed port while the template said every
    // commented setting was at its default (off): a second home on the host failed with
    // "Address already in use".
    assert_eq!(cfg.metrics.listen, None);

    // A second init changes nothing.
    let (before, key_before) = (
        std::fs::read(&config).unwrap(),
        std::fs::read(&key).unwrap(),
    );
    let again = {
        let (home, example) = (s(&home), s(&example));
        blocking(move || {
            run(
                "filet-relay",
                &["init", "--dir", &home, "--agreement", &example],
            )
        })
        .await
    };
    assert_eq!(
        (again.code, again.stdout.as_str(), again.stderr.as_str()),
        (
            Some(1),
            "",
            format!("filet-relay: {h} already holds a relay.toml; nothing was changed\n").as_str()
        )
    );
    assert_eq!(std::fs::read(&config).unwrap(), before);
    assert_eq!(std::fs::read(&key).unwrap(), key_before);

    // The PKI, as the guide says.
    let (pki, agreement) = (home.join("pki"), home.join("agreement.toml"));
    ok(
        "filet-certs",
        vec![
            "init".into(),
            "--agreement".into(),
            s(&agreement),
            "--dir".into(),
            s(&pki),
        ],
    )
    .await;
    ok(
        "filet-certs",
        vec![
            "relay".into(),
            "--dir".into(),
            s(&pki),
            "--name".into(),
            "127.0.0.1".into(),
        ],
    )
    .await;
    let node_out = ok(
        "filet-certs",
        [
            "node",
            "--dir",
            path_str(&pki),
            "--party",
            "SPVQ",
            "--unit",
            "ESM",
            "--node",
            "esm-poste-01",
            "--relay",
            "127.0.0.1:4433",
            "--agreement",
            path_str(&agreement),
        ]
        .map(str::to_owned)
        .to_vec(),
    )
    .await;
    let profile: PathBuf = node_out
        .lines()
        .find_map(|l| l.strip_prefix("next: filet --profile "))
        .and_then(|l| l.strip_suffix(" whoami"))
        .unwrap_or_else(|| panic!("no profile named in {node_out}"))
        .into();

    // Metrics are offered, commented out, with their off default said in words.
    let text = String::from_utf8(before).unwrap();
    assert!(
        text.contains("Off by default: uncomment to serve it")
            && text.contains("\n# listen = \"127.0.0.1:9464\"\n")
            && !text.contains("\nlisten = \"127.0.0.1:9464\""),
        "{text}"
    );
    let relay = {
        let config = s(&config);
        blocking(move || ChildRelay::builder().config(Path::new(&config)).start()).await
    };
    assert_eq!(relay.logged_key, printed_key);
    let mut p = Profile::parse(&std::fs::read_to_string(&profile).unwrap(), Path::new("")).unwrap();
    p.relay = relay.addr.to_string();
    std::fs::write(&profile, p.to_toml()).unwrap();
    let whoami = ok(
        "filet",
        vec![
            "--profile".into(),
            s(&profile),
            "--json".into(),
            "whoami".into(),
        ],
    )
    .await;
    let v: Value = serde_json::from_str(whoami.trim()).unwrap();
    assert_eq!(v["principal"], "SPVQ/ESM/esm-poste-01", "{v}");
    assert_eq!(v["agreement_version"], 1, "{v}");
    let (status, stderr) = blocking(move || relay.terminate_drained()).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    let audit_key = ok(
        "filet-relay",
        vec![
            "audit-key".into(),
            "--data-dir".into(),
            s(&home.join("data")),
            "--agreement".into(),
            s(&agreement),
        ],
    )
    .await;
    assert_eq!(audit_key.trim(), printed_key);
}

#[tokio::test]
async fn a_typo_in_relay_toml_stops_serve_naming_the_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("filet");
    let stdout = ok("filet-relay", vec!["init".into(), "--dir".into(), s(&home)]).await;
    assert!(
        stdout.contains(&format!(
            "put the agreement in {}/agreement.toml",
            home.display()
        )),
        "{stdout}"
    );
    let config = home.join("relay.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let line = text
        .lines()
        .position(|l| l == "# mailbox_max = 10000")
        .unwrap()
        + 1;
    std::fs::write(
        &config,
        text.replace("# mailbox_max = 10000", "mailbox_maxx = 10000"),
    )
    .unwrap();

    let out = {
        let config = s(&config);
        blocking(move || run("filet-relay", &["serve", "--config", &config])).await
    };

    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let first = out.stderr.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            "filet-relay: {}: TOML parse error at line {line}, column 1",
            config.display()
        )
    );
    assert!(
        out.stderr
            .contains(&format!("{line} | mailbox_maxx = 10000")),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr.lines().last().unwrap(),
        "unknown field `mailbox_maxx`, expected one of `max_connections`, `max_connections_per_principal`, `max_streams_per_connection`, `idle_timeout_secs`, `frame_timeout_secs`, `max_in_flight_per_stream`, `posts_per_minute`, `mailbox_max`, `mailbox_max_per_sender`"
    );
}

/// Regression: `audit-key` on a mistyped data directory created it, with a new key, and
/// printed that key: an operator handed the auditors a key no relay signs with.
#[tokio::test]
async fn filet_relay_audit_key_only_reads_and_names_a_missing_directory_or_key() {
    let tmp = tempfile::tempdir().unwrap();
    let agreement = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/agreement.toml");
    let audit_key = |data: PathBuf| {
        let agreement = s(&agreement);
        blocking(move || {
            run(
                "filet-relay",
                &[
                    "audit-key",
                    "--data-dir",
                    &s(&data),
                    "--agreement",
                    &agreement,
                ],
            )
        })
    };

    let missing = tmp.path().join("dta");
    let out = audit_key(missing.clone()).await;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr),
        (
            Some(1),
            "",
            format!(
                "filet-relay: data directory: {}: no such data directory: the relay creates it, with its keys, at its first start (or `filet-relay init --agreement FILE` does); is --data-dir the right directory?\n",
                missing.display()
            )
        )
    );
    assert!(!missing.exists(), "audit-key created {}", missing.display());

    // A home made without an agreement: the data directory is there, the key is not yet.
    let home = tmp.path().join("filet");
    ok("filet-relay", vec!["init".into(), "--dir".into(), s(&home)]).await;
    let out = audit_key(home.join("data")).await;
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr),
        (
            Some(1),
            "",
            format!(
                "filet-relay: data directory: {}: no audit signing key: the relay creates it at its first start on this data directory (or `filet-relay init --agreement FILE` does); is --data-dir the right directory?\n",
                home.join("data/keys/audit-ed25519.pk8").display()
            )
        )
    );
    assert_eq!(
        std::fs::read_dir(home.join("data")).unwrap().count(),
        0,
        "audit-key wrote into the data directory"
    );
}

/// The README's tour serves with `--config examples/relay.toml` from the repository's root:
/// the example configuration loads, and its paths resolve to the example agreement and to
/// the `PKI/` and `DATA/` directories the tour makes beside `examples/`.
#[test]
fn the_example_relay_configuration_loads_and_points_at_the_tours_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let file = root.join("examples/relay.toml");
    let c = RelayConfig::load(Some(&file), Overrides::default()).unwrap();
    let examples = root.join("examples");
    assert_eq!(c.listen.to_string(), "127.0.0.1:4433");
    assert_eq!(c.agreement, examples.join("agreement.toml"));
    assert!(c.agreement.is_file(), "{}", c.agreement.display());
    assert_eq!(c.data_dir, examples.join("../DATA"));
    assert_eq!(c.pki.ca, examples.join("../PKI/ca.crt.pem"));
    assert_eq!(c.limits, Limits::default());
}
