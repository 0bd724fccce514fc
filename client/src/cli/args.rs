//! The command line: every command, option and argument of `filet` (clap derive), and the
//! value parsers they need. Nothing here connects or reads a file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use filet_proto::alert::{Category, Geo, Language, Risk, Status};
use filet_proto::{AlertId, Selector, Timestamp};

#[derive(Parser)]
#[command(
    name = "filet",
    version,
    about = "A node of a Filet information-sharing agreement: post, receive and audit alerts"
)]
pub struct Cli {
    /// Node profile (relay address, server name, CA, certificate, key); default $FILET_PROFILE.
    #[arg(long, global = true, env = "FILET_PROFILE")]
    pub profile: Option<PathBuf>,
    /// Relay address host:port (instead of a profile; needs --ca, --cert, --key).
    #[arg(long, global = true)]
    pub relay: Option<String>,
    /// Name on the relay's certificate (with --relay; default: its host). A profile names
    /// it in `server_name`.
    #[arg(long, global = true)]
    pub server_name: Option<String>,
    /// CA certificate (PEM).
    #[arg(long, global = true)]
    pub ca: Option<PathBuf>,
    /// Node certificate (PEM).
    #[arg(long, global = true)]
    pub cert: Option<PathBuf>,
    /// Node private key (PEM).
    #[arg(long, global = true)]
    pub key: Option<PathBuf>,
    /// Print JSON (one object per line) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Show this node's principal and what the agreement lets it do.
    Whoami,
    /// Post an alert from a file (TOML, as examples/alerts) and/or flags.
    Post(Box<PostArgs>),
    /// List what waits in this unit's mailbox; --follow stays connected and prints each
    /// alert as it arrives.
    Inbox {
        /// Stay connected; print alerts as they are pushed; reconnect if the relay goes away.
        #[arg(long)]
        follow: bool,
    },
    /// Refine an alert of your party. With flags only: the alert's latest content (its
    /// latest update, or itself) with the flags' values over it, which needs a unit that
    /// sees that whole content (the one that posted it). With a file: the file is the whole
    /// updated alert (as for `post`; flags given as well override its values). An update
    /// goes to the recipients of the original, in its category: `--to` and a different
    /// category are refused.
    Update {
        /// The alert's id.
        id: AlertId,
        #[command(flatten)]
        args: Box<PostArgs>,
    },
    /// The youth is found safe: close the alert; every recipient is told.
    Located {
        /// The alert's id.
        id: AlertId,
        /// A short note (no location details unless needed).
        #[arg(long)]
        note: Option<String>,
    },
    /// Withdraw an alert posted by mistake; every recipient is told.
    Cancel {
        /// The alert's id.
        id: AlertId,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
    /// Write an alert as a CAP 1.2 `<alert>` (scope Private, addresses = its recipients).
    Export {
        /// Write CAP 1.2 XML (the only format).
        #[arg(long, required = true)]
        cap: bool,
        /// The alert's id.
        id: AlertId,
    },
    /// CAP 1.2 tools.
    #[command(subcommand)]
    Cap(CapCommand),
    /// Acknowledge alerts for this unit.
    Ack {
        /// Alert ids.
        #[arg(required = true)]
        ids: Vec<AlertId>,
    },
    /// The audit log (for the agreement's auditors).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Where an alert of your party stands with each recipient unit: rule, legal basis,
    /// fields disclosed, and who acknowledged and when.
    Status {
        /// The alert's id.
        id: AlertId,
    },
    /// The web console (French first), served on this machine's loopback through this
    /// node: prints a one-time address to open in the browser.
    Console {
        /// Loopback address to listen on (127.0.0.1 or [::1]; port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// fr or en (default: LC_ALL, LC_MESSAGES, LANG; French when unset).
        #[arg(long)]
        lang: Option<String>,
        /// Time zone of the times shown and typed (default America/Toronto).
        #[arg(long)]
        zone: Option<String>,
        /// The agreement file, to show each rule's legal basis.
        #[arg(long)]
        agreement: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum CapCommand {
    /// Check a CAP 1.2 document against the standard's required elements and value lists.
    Check {
        /// The CAP file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// List the entries this auditor may read, after verifying them against the signed
    /// checkpoint.
    Log {
        /// The relay's audit verifier key (`filet-relay audit-key` prints it).
        #[arg(long, env = "FILET_AUDIT_KEY")]
        verifier_key: String,
    },
    /// Verify the log. Online (no --dir): checkpoint signature, then the Merkle root
    /// recomputed from every entry (RFC 9162) or each entry's inclusion proof. Offline
    /// (--dir D): everything kept in D, with the key pinned in D.
    Verify {
        /// The relay's audit verifier key (optional with --dir: the pinned key is used).
        #[arg(long, env = "FILET_AUDIT_KEY")]
        verifier_key: Option<String>,
        /// An audit directory kept by `filet audit pull`; verify it offline.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Fetch new entries and the newest checkpoint into D, proving consistency with the
    /// last checkpoint kept there.
    Pull {
        /// The audit directory.
        #[arg(long)]
        dir: PathBuf,
        /// The relay's audit verifier key (pinned in D at the first pull).
        #[arg(long, env = "FILET_AUDIT_KEY")]
        verifier_key: Option<String>,
    },
    /// Fetch and check the inclusion proof of one entry against the newest checkpoint.
    Prove {
        /// The entry's index (as in a receipt).
        #[arg(long)]
        index: u64,
        /// The relay's audit verifier key.
        #[arg(long, env = "FILET_AUDIT_KEY")]
        verifier_key: String,
    },
    /// A compliance report from an audit directory (verified first, offline).
    Report {
        /// The audit directory.
        #[arg(long)]
        dir: PathBuf,
        /// From this date or time (2026-11-01 or RFC 3339), inclusive; must be before --to.
        #[arg(long, value_parser = parse_when)]
        from: Option<Timestamp>,
        /// Until this date or time, exclusive.
        #[arg(long, value_parser = parse_when)]
        to: Option<Timestamp>,
        /// Only entries where this party is sender or recipient. A party code of the
        /// agreement, in any case (`dpj` is DPJ); a party named in no entry of the
        /// directory is refused, with the parties it names.
        #[arg(long)]
        party: Option<String>,
        /// List disclosures not acknowledged within this many minutes.
        #[arg(long, default_value_t = 60)]
        unacked_after: i64,
        /// table, csv or json.
        #[arg(long, value_enum, default_value = "table")]
        format: ReportFormat,
        /// Only the alerts about this file number (subject.reference): who was told about
        /// it, when, under which rule. Needs --subject-ref-key.
        #[arg(long, requires = "subject_ref_key")]
        subject_ref: Option<String>,
        /// The relay's subject-reference key (its DATA/keys/subject-ref.key: 32 raw bytes,
        /// copied as is), given to the auditors who may ask about a file.
        #[arg(long)]
        subject_ref_key: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Csv,
    Json,
}

pub fn parse_when(s: &str) -> Result<Timestamp, String> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    format!("{s}T00:00:00Z")
        .parse::<Timestamp>()
        .map_err(|_| format!("{s:?} is not a date (2026-11-01) or an RFC 3339 time"))
}

#[derive(Args)]
pub struct PostArgs {
    /// Alert file (TOML); flags given as well override its values.
    pub file: Option<PathBuf>,
    /// Import a CAP 1.2 file instead (refused, with the reason, if it cannot become a
    /// Filet alert: public scope, no subject reference, unknown category).
    #[arg(long, conflicts_with = "file")]
    pub cap: Option<PathBuf>,
    /// runaway, sighting or exploitation-risk.
    #[arg(long)]
    pub category: Option<Category>,
    /// extreme, severe, moderate or minor.
    #[arg(long)]
    pub risk: Option<Risk>,
    /// actual, exercise or test.
    #[arg(long)]
    pub status: Option<Status>,
    /// fr-CA or en-CA.
    #[arg(long)]
    pub language: Option<Language>,
    /// subject.reference: the originating file number.
    #[arg(long)]
    pub reference: Option<String>,
    /// subject.given_name.
    #[arg(long)]
    pub given_name: Option<String>,
    /// subject.age.
    #[arg(long)]
    pub age: Option<u8>,
    /// subject.description.
    #[arg(long)]
    pub description: Option<String>,
    /// last_seen.at (RFC 3339, e.g. 2026-11-28T22:40:00Z).
    #[arg(long)]
    pub last_seen_at: Option<Timestamp>,
    /// last_seen.place.
    #[arg(long)]
    pub place: Option<String>,
    /// last_seen.geo as LAT,LON.
    #[arg(long, value_parser = parse_geo)]
    pub geo: Option<Geo>,
    /// instructions.
    #[arg(long)]
    pub instructions: Option<String>,
    /// contact.
    #[arg(long)]
    pub contact: Option<String>,
    /// expires_at (RFC 3339); default 72 h after posting.
    #[arg(long)]
    pub expires_at: Option<Timestamp>,
    /// Explicit recipient (PARTY or PARTY/UNIT), repeatable; default: every unit the agreement permits.
    #[arg(long = "to")]
    pub to: Vec<Selector>,
    /// Remove a field (e.g. `--clear last_seen.geo` when the youth was seen elsewhere),
    /// repeatable.
    #[arg(long = "clear")]
    pub clear: Vec<filet_proto::FieldPath>,
}

pub fn parse_geo(s: &str) -> Result<Geo, String> {
    let (a, b) = s.split_once(',').ok_or("expected LAT,LON")?;
    let lat = a
        .trim()
        .parse()
        .map_err(|_| format!("latitude {a:?} is not a number"))?;
    let lon = b
        .trim()
        .parse()
        .map_err(|_| format!("longitude {b:?} is not a number"))?;
    Ok(Geo(lat, lon))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    const ID: &str = "01JDXQ8Z5N6Y7W3V2T1S0R9Q8P";
    const KEY: &str = "relay+0123abcd+AQIDBA";

    fn parse(args: &[&str]) -> Cli {
        let argv = std::iter::once("filet").chain(args.iter().copied());
        Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn refused(args: &[&str]) -> ErrorKind {
        let argv = std::iter::once("filet").chain(args.iter().copied());
        match Cli::try_parse_from(argv) {
            Ok(_) => panic!("{args:?} parsed"),
            Err(e) => e.kind(),
        }
    }

    fn id() -> AlertId {
        ID.parse().unwrap()
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_and_version_are_answers_not_errors() {
        for args in [
            &["--help"][..],
            &["help"],
            &["post", "--help"],
            &["audit", "report", "--help"],
            &["help", "audit", "pull"],
        ] {
            assert_eq!(refused(args), ErrorKind::DisplayHelp, "{args:?}");
        }
        assert_eq!(refused(&["--version"]), ErrorKind::DisplayVersion);
        assert_eq!(
            refused(&[]),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
    }

    #[test]
    fn global_options_go_before_or_after_the_command() {
        let before = parse(&["--profile", "p.toml", "--json", "whoami"]);
        let after = parse(&["whoami", "--json", "--profile", "p.toml"]);
        for cli in [before, after] {
            assert_eq!(cli.profile, Some(PathBuf::from("p.toml")));
            assert!(cli.json);
            assert!(matches!(cli.command, Command::Whoami));
        }
        let cli = parse(&[
            "--relay",
            "relay.example:4433",
            "--server-name",
            "relay",
            "--ca",
            "ca.pem",
            "--cert",
            "n.pem",
            "--key",
            "n.key",
            "inbox",
        ]);
        assert_eq!(cli.relay.as_deref(), Some("relay.example:4433"));
        assert_eq!(cli.server_name.as_deref(), Some("relay"));
        assert_eq!(cli.ca, Some(PathBuf::from("ca.pem")));
        assert_eq!(cli.cert, Some(PathBuf::from("n.pem")));
        assert_eq!(cli.key, Some(PathBuf::from("n.key")));
        assert!(!cli.json);
    }

    #[test]
    fn post_from_a_file_with_flags_over_it() {
        let cli = parse(&[
            "post",
            "runaway.toml",
            "--risk",
            "extreme",
            "--age",
            "15",
            "--geo",
            "46.81, -71.22",
            "--to",
            "SPVQ",
            "--to",
            "DPJ/RTS",
            "--clear",
            "last_seen.place",
        ]);
        let Command::Post(a) = cli.command else {
            panic!("not post")
        };
        assert_eq!(a.file, Some(PathBuf::from("runaway.toml")));
        assert_eq!(a.risk, Some(Risk::Extreme));
        assert_eq!(a.age, Some(15));
        assert_eq!(a.geo, Some(Geo(46.81, -71.22)));
        assert_eq!(a.to.len(), 2);
        assert_eq!(a.clear, vec![filet_proto::FieldPath::LastSeenPlace]);
        assert_eq!(a.cap, None);
    }

    #[test]
    fn post_from_flags_alone_or_from_cap() {
        let cli = parse(&[
            "post",
            "--category",
            "runaway",
            "--risk",
            "severe",
            "--last-seen-at",
            "2026-11-28T22:40:00Z",
        ]);
        let Command::Post(a) = cli.command else {
            panic!("not post")
        };
        assert_eq!(a.file, None);
        assert_eq!(a.category, Some(Category::Runaway));
        assert!(a.last_seen_at.is_some());
        let cli = parse(&["post", "--cap", "alert.xml"]);
        let Command::Post(a) = cli.command else {
            panic!("not post")
        };
        assert_eq!(a.cap, Some(PathBuf::from("alert.xml")));
    }

    #[test]
    fn post_refuses_a_file_and_cap_together_and_bad_values() {
        assert_eq!(
            refused(&["post", "a.toml", "--cap", "a.xml"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(
            refused(&["post", "--risk", "apocalyptic"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            refused(&["post", "--age", "300"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            refused(&["post", "--geo", "46.81"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            refused(&["post", "--geo", "north,-71"]),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn update_takes_an_id_and_the_post_flags() {
        let cli = parse(&["update", ID, "--place", "Gare du Palais"]);
        let Command::Update { id: got, args } = cli.command else {
            panic!("not update")
        };
        assert_eq!(got, id());
        assert_eq!(args.place.as_deref(), Some("Gare du Palais"));
        assert_eq!(args.file, None);
        let cli = parse(&["update", ID, "update.toml"]);
        let Command::Update { args, .. } = cli.command else {
            panic!("not update")
        };
        assert_eq!(args.file, Some(PathBuf::from("update.toml")));
        assert_eq!(refused(&["update"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            refused(&["update", "not-an-id"]),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn located_and_cancel() {
        let cli = parse(&["located", ID, "--note", "found safe"]);
        assert!(
            matches!(cli.command, Command::Located { id: got, note: Some(n) } if got == id() && n == "found safe")
        );
        let cli = parse(&["located", ID]);
        assert!(matches!(cli.command, Command::Located { note: None, .. }));
        let cli = parse(&["cancel", ID, "--reason", "posted by mistake"]);
        assert!(
            matches!(cli.command, Command::Cancel { id: got, reason } if got == id() && reason == "posted by mistake")
        );
        assert_eq!(refused(&["cancel", ID]), ErrorKind::MissingRequiredArgument);
        assert_eq!(refused(&["located"]), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn export_needs_cap() {
        let cli = parse(&["export", "--cap", ID]);
        assert!(matches!(cli.command, Command::Export { cap: true, id: got } if got == id()));
        assert_eq!(refused(&["export", ID]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            refused(&["export", "--cap"]),
            ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn cap_check_takes_a_file() {
        let cli = parse(&["cap", "check", "alert.xml"]);
        let Command::Cap(CapCommand::Check { file }) = cli.command else {
            panic!("not cap check")
        };
        assert_eq!(file, PathBuf::from("alert.xml"));
        assert_eq!(
            refused(&["cap", "check"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            refused(&["cap"]),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
    }

    #[test]
    fn inbox_ack_status_whoami() {
        assert!(matches!(
            parse(&["inbox"]).command,
            Command::Inbox { follow: false }
        ));
        assert!(matches!(
            parse(&["inbox", "--follow"]).command,
            Command::Inbox { follow: true }
        ));
        let Command::Ack { ids } = parse(&["ack", ID, ID]).command else {
            panic!("not ack")
        };
        assert_eq!(ids, vec![id(), id()]);
        assert_eq!(refused(&["ack"]), ErrorKind::MissingRequiredArgument);
        assert!(
            matches!(parse(&["status", ID]).command, Command::Status { id: got } if got == id())
        );
        assert_eq!(refused(&["status"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(refused(&["whoami", "extra"]), ErrorKind::UnknownArgument);
        assert_eq!(refused(&["alerts"]), ErrorKind::InvalidSubcommand);
    }

    #[test]
    fn console_defaults_to_a_free_loopback_port() {
        let Command::Console {
            listen,
            lang,
            zone,
            agreement,
        } = parse(&["console"]).command
        else {
            panic!("not console")
        };
        assert_eq!(listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!((lang, zone, agreement), (None, None, None));
        let Command::Console { listen, lang, .. } =
            parse(&["console", "--listen", "[::1]:8080", "--lang", "en"]).command
        else {
            panic!("not console")
        };
        assert_eq!(listen, "[::1]:8080".parse().unwrap());
        assert_eq!(lang.as_deref(), Some("en"));
        assert_eq!(
            refused(&["console", "--listen", "localhost"]),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn audit_commands() {
        let cli = parse(&["audit", "log", "--verifier-key", KEY]);
        assert!(
            matches!(cli.command, Command::Audit(AuditCommand::Log { verifier_key }) if verifier_key == KEY)
        );
        let cli = parse(&["audit", "verify", "--dir", "AUDIT"]);
        assert!(matches!(
            cli.command,
            Command::Audit(AuditCommand::Verify { dir: Some(_), .. })
        ));
        let cli = parse(&["audit", "pull", "--dir", "AUDIT", "--verifier-key", KEY]);
        assert!(matches!(
            cli.command,
            Command::Audit(AuditCommand::Pull {
                verifier_key: Some(_),
                ..
            })
        ));
        let cli = parse(&["audit", "prove", "--index", "7", "--verifier-key", KEY]);
        assert!(matches!(
            cli.command,
            Command::Audit(AuditCommand::Prove { index: 7, .. })
        ));
        assert_eq!(
            refused(&["audit", "pull", "--verifier-key", KEY]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            refused(&["audit", "prove", "--verifier-key", KEY]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            refused(&["audit", "prove", "--index", "-1", "--verifier-key", KEY]),
            ErrorKind::UnknownArgument
        );
    }

    #[test]
    fn audit_report_options() {
        let cli = parse(&["audit", "report", "--dir", "AUDIT"]);
        let Command::Audit(AuditCommand::Report {
            from,
            to,
            party,
            unacked_after,
            format,
            subject_ref,
            ..
        }) = cli.command
        else {
            panic!("not report")
        };
        assert_eq!((from, to, party, subject_ref), (None, None, None, None));
        assert_eq!(unacked_after, 60);
        assert!(matches!(format, ReportFormat::Table));
        let cli = parse(&[
            "audit",
            "report",
            "--dir",
            "AUDIT",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-02T12:00:00Z",
            "--format",
            "csv",
            "--subject-ref",
            "2026-000123",
            "--subject-ref-key",
            "subject-ref.key",
        ]);
        let Command::Audit(AuditCommand::Report {
            from, to, format, ..
        }) = cli.command
        else {
            panic!("not report")
        };
        assert_eq!(from, Some("2026-11-01T00:00:00Z".parse().unwrap()));
        assert_eq!(to, Some("2026-11-02T12:00:00Z".parse().unwrap()));
        assert!(matches!(format, ReportFormat::Csv));
        assert_eq!(
            refused(&[
                "audit",
                "report",
                "--dir",
                "D",
                "--subject-ref",
                "2026-000123"
            ]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            refused(&["audit", "report", "--dir", "D", "--from", "yesterday"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            refused(&["audit", "report", "--dir", "D", "--format", "pdf"]),
            ErrorKind::InvalidValue
        );
        assert_eq!(
            refused(&["audit", "report"]),
            ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn the_value_parsers_name_what_is_wrong() {
        assert_eq!(parse_geo("46.8,-71.2"), Ok(Geo(46.8, -71.2)));
        assert_eq!(parse_geo("46.8").unwrap_err(), "expected LAT,LON");
        assert_eq!(
            parse_geo("x,-71").unwrap_err(),
            "latitude \"x\" is not a number"
        );
        assert_eq!(
            parse_when("2026-13-01").unwrap_err(),
            "\"2026-13-01\" is not a date (2026-11-01) or an RFC 3339 time"
        );
    }
}
