//! The commands end to end (requirements §8): `filet-certs dev` writes the PKI and profiles,
//! `filet` posts, lists, acknowledges and audits against a relay on loopback, with the exit
//! codes documented in `client/src/cli/exit.rs`; `filet-relay serve` refuses a broken agreement.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::collections::BTreeSet;
use std::path::PathBuf;

use filet_proto::AlertId;
use filet_tests::*;
use serde_json::Value;

/// A PKI written by the `filet-certs dev` command, a relay serving it in this runtime, and
/// the two alert files of `examples/alerts`.
struct Cli {
    net: TestNet,
    relay: TestRelay,
    runaway: PathBuf,
    too_long: PathBuf,
}

impl Cli {
    async fn start() -> Cli {
        let net = TestNet::without_pki();
        let (agreement, pki) = (
            path_str(&net.agreement).to_owned(),
            path_str(&net.pki).to_owned(),
        );
        let out = tokio::task::spawn_blocking(move || {
            run(
                "filet-certs",
                &[
                    "dev",
                    "--agreement",
                    &agreement,
                    "--dir",
                    &pki,
                    "--relay",
                    "127.0.0.1:4433",
                ],
            )
        })
        .await
        .unwrap();
        assert_eq!(out.code, Some(0), "filet-certs dev: {}", out.stderr);
        let relay = net.start_relay().await;
        let runaway = net.path().join("runaway.toml");
        std::fs::write(&runaway, RUNAWAY).unwrap();
        let too_long = net.path().join("invalid-too-long.toml");
        std::fs::write(&too_long, TOO_LONG).unwrap();
        Cli {
            net,
            relay,
            runaway,
            too_long,
        }
    }

    /// `filet --profile <unit's profile, dialing this relay> ARGS...`, run off the runtime
    /// (the relay serves on it meanwhile).
    async fn filet(&self, unit: &str, args: &[&str]) -> Output {
        let profile = self.net.write_profile(unit, self.relay.addr);
        let mut all = vec!["--profile".to_owned(), path_str(&profile).to_owned()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = all.iter().map(String::as_str).collect();
            run("filet", &args)
        })
        .await
        .unwrap()
    }

    fn runaway(&self) -> &str {
        path_str(&self.runaway)
    }

    /// Posts the runaway alert as SPVQ/ESM with `--json`; returns its id.
    async fn post_runaway(&self) -> AlertId {
        let out = self
            .filet("SPVQ/ESM", &["--json", "post", self.runaway()])
            .await;
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let v: Value = serde_json::from_str(out.stdout.trim()).unwrap();
        v["alert"].as_str().unwrap().parse().unwrap()
    }
}

/// One JSON object per line.
fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn set<'a>(k: &[&'a str]) -> BTreeSet<&'a str> {
    k.iter().copied().collect()
}

#[tokio::test]
async fn filet_certs_dev_then_filet_post_prints_the_receipt_and_exits_0() {
    let cli = Cli::start().await;

    let out = cli.filet("SPVQ/ESM", &["post", cli.runaway()]).await;

    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{}", out.stdout);
    let id: AlertId = lines[0]
        .strip_prefix("receipt ")
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(lines[1], "  4 recipient unit(s):");
    let recipients: Vec<(&str, &str)> = lines[2..]
        .iter()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(w[1], "rule", "{l}");
            (w[0], w[2])
        })
        .collect();
    assert_eq!(
        recipients,
        [
            ("CJQ/PIVOT", "police-vers-protection"),
            ("DPJ/RTS", "police-vers-protection"),
            ("SPVQ/GRIPP", "enquete-vers-patrouille"),
            ("SPVQ/IKAT", "enquete-vers-patrouille"),
        ]
    );
    // The alert is there for DPJ/RTS.
    let rts = cli.net.node("DPJ/RTS", cli.relay.addr).await;
    assert_eq!(rts.inbox().await.unwrap()[0].envelope.id, id);
    rts.close().await;
}

#[tokio::test]
async fn filet_post_json_prints_one_object_with_the_alert_and_its_recipients() {
    let cli = Cli::start().await;

    let out = cli
        .filet("SPVQ/ESM", &["--json", "post", cli.runaway()])
        .await;

    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let objects = json_lines(&out.stdout);
    assert_eq!(objects.len(), 1, "{}", out.stdout);
    let v = &objects[0];
    assert!(keys(v).is_superset(&set(&["alert", "recipients"])), "{v}");
    v["alert"].as_str().unwrap().parse::<AlertId>().unwrap();
    let recipients: Vec<(&str, &str)> = v["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["unit"].as_str().unwrap(), r["rule"].as_str().unwrap()))
        .collect();
    assert_eq!(
        recipients,
        [
            ("CJQ/PIVOT", "police-vers-protection"),
            ("DPJ/RTS", "police-vers-protection"),
            ("SPVQ/GRIPP", "enquete-vers-patrouille"),
            ("SPVQ/IKAT", "enquete-vers-patrouille"),
        ]
    );
    assert_eq!(v["duplicate"], Value::Bool(false));
}

#[tokio::test]
async fn filet_inbox_json_prints_one_line_per_alert_with_every_field_dpj_rts_may_see() {
    let cli = Cli::start().await;
    let first = cli.post_runaway().await;
    let second = cli.post_runaway().await;

    let out = cli.filet("DPJ/RTS", &["--json", "inbox"]).await;

    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let alerts = json_lines(&out.stdout);
    let ids: Vec<&str> = alerts.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [first.to_string(), second.to_string()]);
    for a in &alerts {
        assert_eq!(
            keys(a),
            set(&[
                "id",
                "kind",
                "state",
                "history",
                "category",
                "status",
                "risk",
                "sender",
                "rule",
                "rules",
                "received_at",
                "expires_at",
                "language",
                "subject",
                "last_seen",
                "instructions",
                "contact",
            ])
        );
        assert_eq!(a["kind"], "alert");
        assert_eq!(a["category"], "runaway");
        assert_eq!(a["status"], "actual");
        assert_eq!(a["risk"], "severe");
        assert_eq!(a["sender"], "SPVQ/ESM/spvq-esm-01");
        assert_eq!(a["rule"], "police-vers-protection");
        assert_eq!(a["language"], "fr-CA");
        assert_eq!(
            keys(&a["subject"]),
            set(&["reference", "given_name", "age", "description"])
        );
        assert_eq!(a["subject"]["reference"], "SPVQ-2026-04417");
        assert_eq!(a["subject"]["given_name"], "Maëlle");
        assert_eq!(a["subject"]["age"], 15);
        assert_eq!(keys(&a["last_seen"]), set(&["at", "place", "geo"]));
        assert_eq!(a["last_seen"]["place"], "Terminus Marie-de-l'Incarnation");
        assert_eq!(
            a["last_seen"]["geo"],
            serde_json::json!([46.8123, -71.2345])
        );
        assert_eq!(a["contact"], "Enquêtrice ESM, 418 555-0142 poste 3");
    }
}

#[tokio::test]
async fn filet_inbox_json_for_spvq_ikat_has_no_subject_reference_and_no_last_seen_geo_key() {
    let cli = Cli::start().await;
    let id = cli.post_runaway().await;

    let out = cli.filet("SPVQ/IKAT", &["--json", "inbox"]).await;

    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let alerts = json_lines(&out.stdout);
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(a["id"], id.to_string());
    assert_eq!(a["rule"], "enquete-vers-patrouille");
    assert_eq!(
        keys(&a["subject"]),
        set(&["given_name", "age", "description"])
    );
    assert_eq!(keys(&a["last_seen"]), set(&["at", "place"]));
    assert!(!out.stdout.contains("SPVQ-2026-04417"), "{}", out.stdout);
    assert!(!out.stdout.contains("46.8123"), "{}", out.stdout);
}

#[tokio::test]
async fn filet_ack_acknowledges_exits_0_and_the_alert_leaves_the_inbox() {
    let cli = Cli::start().await;
    let id = cli.post_runaway().await;
    let id = id.to_string();

    let out = cli.filet("DPJ/RTS", &["ack", &id]).await;

    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let line = out.stdout.trim();
    let index: u64 = line
        .strip_prefix(&format!("acknowledged {id} (audit entry #"))
        .and_then(|l| l.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    assert!(index > 0);
    let out = cli.filet("DPJ/RTS", &["--json", "inbox"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), ""));
    // Acknowledging again is idempotent: same audit entry.
    let again = cli.filet("DPJ/RTS", &["ack", &id]).await;
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(again.stdout.trim(), line);
}

#[tokio::test]
async fn filet_post_of_an_invalid_alert_exits_4_naming_each_field() {
    let cli = Cli::start().await;

    let out = cli
        .filet("SPVQ/ESM", &["post", path_str(&cli.too_long)])
        .await;

    assert_eq!(out.code, Some(4));
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        "filet: invalid alert: subject.reference: character ' ' is not allowed (only A-Z, a-z, 0-9, '.', '_', '/', '-'); subject.description: 291 characters, the limit is 280\n"
    );
}

#[tokio::test]
async fn filet_post_to_a_recipient_not_permitted_exits_3_naming_it() {
    let cli = Cli::start().await;

    let out = cli
        .filet(
            "SPVQ/ESM",
            &["post", cli.runaway(), "--to", "ULAVAL/RECHERCHE"],
        )
        .await;

    assert_eq!(out.code, Some(3));
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        "filet: refused by the relay (NotPermitted): SPVQ/ESM/spvq-esm-01: no rule of agreement table-regionale-quebec-esj permits SPVQ/ESM to send runaway alerts to ULAVAL/RECHERCHE; nothing was posted\n"
    );
}

#[tokio::test]
async fn filet_whoami_prints_the_principal_and_its_place_in_the_agreement() {
    let cli = Cli::start().await;

    let out = cli.filet("SPVQ/ESM", &["whoami"]).await;

    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "principal   SPVQ/ESM/spvq-esm-01\n\
         agreement   table-regionale-quebec-esj v1\n\
         may send    police-vers-protection, enquete-vers-patrouille\n\
         may receive protection-vers-police, observations-vers-enquete\n\
         audit right none\n"
    );
}

#[tokio::test]
async fn filet_audit_verify_exits_0_for_auditors_and_3_for_a_unit_without_audit_rights() {
    let cli = Cli::start().await;
    cli.post_runaway().await;
    let key = cli.relay.verifier_key.clone();

    let full = cli
        .filet(
            "TABLE/CONFORMITE",
            &["audit", "verify", "--verifier-key", &key],
        )
        .await;
    let party = cli
        .filet(
            "DPJ/CONFORMITE",
            &["audit", "verify", "--verifier-key", &key],
        )
        .await;
    let none = cli
        .filet("CSSC/PIVOT", &["audit", "verify", "--verifier-key", &key])
        .await;

    assert_eq!(full.code, Some(0), "{}", full.stderr);
    let origin = format!("filet.relay/{AGREEMENT_ID}");
    // relay_started, agreement_loaded, crl_loaded, posted, 4 disclosed.
    assert_eq!(
        full.stdout,
        format!("verified: checkpoint of 8 entries signed by {origin}; 8 entries read, root recomputed from every entry\n")
    );
    assert_eq!(party.code, Some(0), "{}", party.stderr);
    // DPJ sees the post and the disclosure to DPJ/RTS.
    assert_eq!(
        party.stdout,
        format!("verified: checkpoint of 8 entries signed by {origin}; 2 entries read, each entry's inclusion proof checked\n")
    );
    assert_eq!(none.code, Some(3));
    assert_eq!(
        none.stderr,
        "filet: CSSC/PIVOT/cssc-pivot-01 asked for audit entries but CSSC/PIVOT has no audit right in the agreement\n"
    );
}

#[tokio::test]
async fn filet_audit_verify_with_another_relays_key_exits_6() {
    let cli = Cli::start().await;
    let other = filet_proto::checkpoint::NoteSigner::from_seed(
        &format!("filet.relay/{AGREEMENT_ID}"),
        &[7; 32],
    )
    .unwrap()
    .verifier_key();

    let out = cli
        .filet(
            "TABLE/CONFORMITE",
            &["audit", "verify", "--verifier-key", &other],
        )
        .await;

    assert_eq!(out.code, Some(6), "{}", out.stderr);
    assert_eq!(out.stdout, "");
    let name = filet_proto::checkpoint::NoteVerifier::parse(&other).unwrap();
    assert_eq!(
        out.stderr,
        format!(
            "filet: checkpoint: note has no signature by key {}+{}\n",
            name.name(),
            filet_proto::audit::hex(&name.key_id())
        )
    );
}

#[tokio::test]
async fn filet_with_a_profile_for_another_server_name_exits_5() {
    let cli = Cli::start().await;
    let profile = cli.net.write_profile("SPVQ/ESM", cli.relay.addr);
    let text = std::fs::read_to_string(&profile).unwrap();
    let text = text.replace(
        "server_name = \"127.0.0.1\"",
        "server_name = \"relay.invalid\"",
    );
    let wrong = profile.with_file_name("SPVQ-ESM-wrong-name.toml");
    std::fs::write(&wrong, text).unwrap();
    let wrong = path_str(&wrong).to_owned();

    let out = tokio::task::spawn_blocking(move || run("filet", &["--profile", &wrong, "whoami"]))
        .await
        .unwrap();

    assert_eq!(out.code, Some(5), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("certificate not valid for name \"relay.invalid\""),
        "{}",
        out.stderr
    );
}

/// The agreement with rule `police-vers-ecoles` naming a party that does not exist, and
/// the line it is on.
fn broken_agreement(net: &TestNet) -> (PathBuf, usize) {
    let text = AGREEMENT.replace(
        "to = [\"CSSC/PIVOT\", \"CSSD/PIVOT\"]",
        "to = [\"CSSC/PIVOT\", \"CSSX/PIVOT\"]",
    );
    let line = 1 + text.lines().position(|l| l.contains("CSSX")).unwrap();
    let path = net.path().join("broken.toml");
    std::fs::write(&path, text).unwrap();
    (path, line)
}

fn serve(net: &TestNet, agreement: &std::path::Path) -> Output {
    let data = net.path().join("data");
    run(
        "filet-relay",
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            path_str(&data),
            "--pki",
            path_str(&net.pki),
            "--agreement",
            path_str(agreement),
        ],
    )
}

#[test]
fn filet_relay_serve_with_a_broken_agreement_exits_1_naming_file_line_and_rule() {
    let net = TestNet::new();
    let (path, line) = broken_agreement(&net);

    let out = serve(&net, &path);

    assert_eq!(out.code, Some(1));
    let place = format!(
        "{}:{line}: rule \"police-vers-ecoles\": unknown party in CSSX/PIVOT",
        path.display()
    );
    assert!(
        out.stderr.starts_with(&format!("filet-relay: {place}")),
        "{}",
        out.stderr
    );
    assert!(!net.path().join("data").exists(), "nothing was started");
}

#[test]
fn filet_relay_serve_states_an_agreement_error_once() {
    let net = TestNet::new();
    let (path, line) = broken_agreement(&net);

    let out = serve(&net, &path);

    assert_eq!(
        out.stderr,
        format!(
            "filet-relay: {}:{line}: rule \"police-vers-ecoles\": unknown party in CSSX/PIVOT\n",
            path.display()
        )
    );
}

/// Each update given as flags builds on the latest one: a second update keeps what the
/// first changed (place, risk, a cleared field) instead of starting again from the
/// original alert.
#[tokio::test]
async fn filet_update_with_flags_builds_on_the_latest_update_not_on_the_original() {
    let cli = Cli::start().await;
    let id = cli.post_runaway().await.to_string();
    let first = cli
        .filet(
            "SPVQ/ESM",
            &[
                "update",
                &id,
                "--place",
                "Gare du Palais",
                "--clear",
                "last_seen.geo",
                "--risk",
                "extreme",
            ],
        )
        .await;
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let second = cli
        .filet(
            "SPVQ/ESM",
            &[
                "--json",
                "update",
                &id,
                "--instructions",
                "Ne pas approcher",
            ],
        )
        .await;
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    let second_id = serde_json::from_str::<Value>(second.stdout.trim()).unwrap()["alert"]
        .as_str()
        .unwrap()
        .to_owned();

    let out = cli.filet("DPJ/RTS", &["--json", "inbox"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let alerts = json_lines(&out.stdout);
    let latest = alerts
        .iter()
        .find(|a| a["id"] == second_id.as_str())
        .unwrap_or_else(|| panic!("the second update is not in the inbox: {}", out.stdout));
    assert_eq!(latest["risk"], "extreme");
    assert_eq!(latest["last_seen"]["place"], "Gare du Palais");
    assert_eq!(keys(&latest["last_seen"]), set(&["at", "place"]));
    assert_eq!(latest["instructions"], "Ne pas approcher");
    assert_eq!(latest["subject"]["reference"], "SPVQ-2026-04417");
}

/// An update keeps its subject reference and contact; and a unit that cannot see the
/// whole alert (another unit of the sender's party) is told to give the whole update as
/// a file rather than send one built from a partial view.
#[tokio::test]
async fn filet_update_refuses_to_clear_a_required_field_or_to_build_on_content_it_cannot_see() {
    let cli = Cli::start().await;
    let id = cli.post_runaway().await.to_string();

    let out = cli
        .filet("SPVQ/ESM", &["update", &id, "--clear", "subject.reference"])
        .await;
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("--clear subject.reference: an update keeps subject.reference and contact"),
        "{}",
        out.stderr
    );

    let out = cli
        .filet("SPVQ/IJP", &["update", &id, "--risk", "minor"])
        .await;
    assert_eq!(out.code, Some(4), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "SPVQ/IJP cannot update alert {id} from flags: it does not see all of the content of alert {id} (posted by SPVQ/ESM). Only units of party SPVQ that the agreement lets send runaway alerts may update it; such a unit gives the whole updated alert in a file"
        )),
        "{}",
        out.stderr
    );
    // An update goes to the original's recipients, in its category.
    for (args, said) in [
        (
            vec![
                "update",
                id.as_str(),
                "--to",
                "CSSC/PIVOT",
                "--risk",
                "minor",
            ],
            "--to: an update goes to the recipients of the original alert",
        ),
        (
            vec!["update", id.as_str(), "--category", "sighting"],
            "--category: alert",
        ),
        (
            vec![
                "update",
                id.as_str(),
                cli.runaway(),
                "--category",
                "sighting",
            ],
            "category: alert",
        ),
    ] {
        let out = cli.filet("SPVQ/ESM", &args).await;
        assert_eq!(out.code, Some(4), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(said), "{args:?}: {}", out.stderr);
    }
    let inbox = cli.filet("DPJ/RTS", &["--json", "inbox"]).await;
    assert_eq!(json_lines(&inbox.stdout).len(), 1, "nothing but the alert");
}

/// A profile whose key belongs to another node's certificate is named as such before any
/// connection is tried.
#[tokio::test]
async fn a_profile_whose_key_is_not_its_certificates_is_told_so() {
    let cli = Cli::start().await;
    let esm_path = cli.net.write_profile("SPVQ/ESM", cli.relay.addr);
    let esm = std::fs::read_to_string(&esm_path).unwrap();
    let rts = std::fs::read_to_string(cli.net.write_profile("DPJ/RTS", cli.relay.addr)).unwrap();
    let key_line = |p: &str| {
        p.lines()
            .find(|l| l.trim_start().starts_with("key"))
            .unwrap()
            .to_owned()
    };
    let mixed = esm.replace(&key_line(&esm), &key_line(&rts));
    assert_ne!(mixed, esm);
    // Beside the others: a profile's paths are relative to its directory.
    let profile = esm_path.with_file_name("mixed.toml");
    std::fs::write(&profile, mixed).unwrap();
    let profile = path_str(&profile).to_owned();
    let out = tokio::task::spawn_blocking(move || run("filet", &["--profile", &profile, "whoami"]))
        .await
        .unwrap();
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr
            .contains("the node's private key does not belong to its certificate"),
        "{}",
        out.stderr
    );
}

/// A relay.toml with the paths of `net` and `key = value` in its section.
fn config_with(net: &TestNet, key: &str, value: &str) -> PathBuf {
    let (section, name) = key.split_once('.').unwrap();
    let path = net.path().join("relay.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\nagreement = {:?}\npki_dir = {:?}\n[{section}]\n{name} = {value}\n",
            path_str(&net.agreement),
            path_str(&net.pki)
        ),
    )
    .unwrap();
    path
}

/// Regression: `[commit] queue` or `[limits] max_connections` at u64::MAX panicked at start
/// (exit 101), `max_in_flight_per_stream` panicked on every request, `commit.max_batch`
/// killed the commit thread while the relay kept listening, and `idle_timeout_secs` was
/// refused without naming the key.
#[test]
fn filet_relay_serve_refuses_every_numeric_setting_out_of_bounds_naming_the_key() {
    let net = TestNet::new();
    for b in filet_relay::config::BOUNDS {
        let config = config_with(&net, b.key, &(b.max + 1).to_string());
        let out = run("filet-relay", &["serve", "--config", path_str(&config)]);
        assert_eq!(
            (out.code, out.stderr),
            (
                Some(1),
                format!(
                    "filet-relay: {}: {} is {}: it must be at most {} (see docs/operations.md, Limits)\n",
                    config.display(),
                    b.key,
                    b.max + 1,
                    b.max
                )
            )
        );

        let config = config_with(&net, b.key, &u64::MAX.to_string());
        let out = run("filet-relay", &["serve", "--config", path_str(&config)]);
        let name = b.key.split_once('.').unwrap().1;
        assert_eq!(out.code, Some(1), "{}: {}", b.key, out.stderr);
        assert!(
            out.stderr
                .starts_with(&format!("filet-relay: {}: ", config.display()))
                && out.stderr.contains(name)
                && !out.stderr.contains("panicked"),
            "{}: {}",
            b.key,
            out.stderr
        );
    }
    assert!(!net.path().join("data").exists(), "nothing was started");
}

/// A configuration built in code is checked as a file is: no setting reaches a runtime
/// limit.
#[tokio::test]
async fn relay_start_refuses_a_limit_out_of_bounds_instead_of_panicking() {
    let net = TestNet::new();
    let mut cfg = net.relay_config();
    cfg.commit.queue = usize::MAX;
    let e = filet_relay::Relay::start(cfg, std::sync::Arc::new(filet_relay::clock::SystemClock))
        .await
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "configuration: commit.queue is {}: it must be at most 1048576 (see docs/operations.md, Limits)",
            usize::MAX
        )
    );
}

/// Regression: the relay's log held ANSI colour codes when stderr was a file or a pipe.
#[tokio::test]
async fn the_relay_log_off_a_terminal_has_no_colour_codes() {
    let net = TestNet::new();
    // An empty NO_COLOR asks for nothing (no-color.org): only the pipe decides.
    let relay = ChildRelay::builder()
        .net(&net)
        .data_dir(&net.data_dir())
        .env("NO_COLOR", "");
    let (status, log) = tokio::task::spawn_blocking(move || relay.start().terminate_drained())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains(" INFO "), "{log}");
    assert!(!log.contains('\u{1b}'), "{log:?}");
}

/// Relay material that the TLS layer would refuse without a file name is named at start:
/// a relay key that belongs to another certificate, and a damaged CRL.
#[test]
fn filet_relay_serve_names_a_relay_key_of_another_certificate_and_a_damaged_crl() {
    let net = TestNet::new();
    let relay_key = net.pki.join("relay.key.pem");
    let other_key = walk(&net.pki)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".key.pem") && *p != relay_key)
        .expect("a node key in the dev PKI");
    let good = std::fs::read(&relay_key).unwrap();
    std::fs::copy(&other_key, &relay_key).unwrap();
    let out = serve(&net, &net.agreement);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "{}: this private key does not belong to the relay certificate {}",
            relay_key.display(),
            net.pki.join("relay.crt.pem").display()
        )),
        "{}",
        out.stderr
    );
    std::fs::write(&relay_key, good).unwrap();

    let crl = net.pki.join("crl.pem");
    std::fs::write(
        &crl,
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    )
    .unwrap();
    let out = serve(&net, &net.agreement);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "{}: revocation list 1 is not a valid CRL",
            crl.display()
        )),
        "{}",
        out.stderr
    );
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn an_error_quoting_a_file_escapes_its_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile.toml");
    // A NUL and a terminal escape sequence (ESC [ 2 J clears the screen) in a broken line.
    std::fs::write(&profile, b"relay\x00 \x1b[2J\n").unwrap();

    let out = run("filet", &["--profile", path_str(&profile), "whoami"]);

    assert_eq!(out.code, Some(4), "{out:?}");
    assert!(
        !out.stderr.chars().any(|c| c.is_control() && c != '\n'),
        "{:?}",
        out.stderr
    );
    assert!(
        out.stderr.contains("relay\\u{0} \\u{1b}[2J"),
        "{}",
        out.stderr
    );
}
