//! `filet`: a node of the agreement — post alerts, receive them, acknowledge them, audit.
//!
//! Exit codes: 0 success; 1 an error not listed here; 2 bad command line (clap); 3 refused
//! by the relay (not permitted, no audit right, rate limited, mailbox full); 4 invalid
//! alert or input (file, profile, index out of range, missing audit directory, a report
//! option that cannot be right: --from after --to, an unknown party, a malformed key); 5
//! cannot connect (address, TLS, certificate refused); 6 audit verification failed
//! (signature, proof, entry).

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use filet_client::audit::{entry_line, fetch_and_verify, AuditError};
use filet_client::audit_dir::{self, AuditDirError, Scope};
use filet_client::render::{alert_text, receipt_json, receipt_text};
use filet_client::report::{self, ReportOptions};
use filet_client::{ClientError, Node, NodeConfig};
use filet_proto::alert::{AlertFile, Category, Geo, Kind, Language, Risk, Status};
use filet_proto::checkpoint::NoteVerifier;
use filet_proto::profile::Profile;
use filet_proto::wire::ErrorCode;
use filet_proto::{AlertDraft, AlertId, Selector, Timestamp};

#[derive(Parser)]
#[command(
    name = "filet",
    version,
    about = "A node of a Filet information-sharing agreement: post, receive and audit alerts"
)]
struct Cli {
    /// Node profile (relay address, server name, CA, certificate, key); default $FILET_PROFILE.
    #[arg(long, global = true, env = "FILET_PROFILE")]
    profile: Option<PathBuf>,
    /// Relay address host:port (instead of a profile; needs --ca, --cert, --key).
    #[arg(long, global = true)]
    relay: Option<String>,
    /// Name on the relay's certificate (with --relay; default: its host). A profile names
    /// it in `server_name`.
    #[arg(long, global = true)]
    server_name: Option<String>,
    /// CA certificate (PEM).
    #[arg(long, global = true)]
    ca: Option<PathBuf>,
    /// Node certificate (PEM).
    #[arg(long, global = true)]
    cert: Option<PathBuf>,
    /// Node private key (PEM).
    #[arg(long, global = true)]
    key: Option<PathBuf>,
    /// Print JSON (one object per line) instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
enum CapCommand {
    /// Check a CAP 1.2 document against the standard's required elements and value lists.
    Check {
        /// The CAP file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
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
enum ReportFormat {
    Table,
    Csv,
    Json,
}

fn parse_when(s: &str) -> Result<Timestamp, String> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    format!("{s}T00:00:00Z")
        .parse::<Timestamp>()
        .map_err(|_| format!("{s:?} is not a date (2026-11-01) or an RFC 3339 time"))
}

#[derive(Args)]
struct PostArgs {
    /// Alert file (TOML); flags given as well override its values.
    file: Option<PathBuf>,
    /// Import a CAP 1.2 file instead (refused, with the reason, if it cannot become a
    /// Filet alert: public scope, no subject reference, unknown category).
    #[arg(long, conflicts_with = "file")]
    cap: Option<PathBuf>,
    /// runaway, sighting or exploitation-risk.
    #[arg(long)]
    category: Option<Category>,
    /// extreme, severe, moderate or minor.
    #[arg(long)]
    risk: Option<Risk>,
    /// actual, exercise or test.
    #[arg(long)]
    status: Option<Status>,
    /// fr-CA or en-CA.
    #[arg(long)]
    language: Option<Language>,
    /// subject.reference: the originating file number.
    #[arg(long)]
    reference: Option<String>,
    /// subject.given_name.
    #[arg(long)]
    given_name: Option<String>,
    /// subject.age.
    #[arg(long)]
    age: Option<u8>,
    /// subject.description.
    #[arg(long)]
    description: Option<String>,
    /// last_seen.at (RFC 3339, e.g. 2026-11-28T22:40:00Z).
    #[arg(long)]
    last_seen_at: Option<Timestamp>,
    /// last_seen.place.
    #[arg(long)]
    place: Option<String>,
    /// last_seen.geo as LAT,LON.
    #[arg(long, value_parser = parse_geo)]
    geo: Option<Geo>,
    /// instructions.
    #[arg(long)]
    instructions: Option<String>,
    /// contact.
    #[arg(long)]
    contact: Option<String>,
    /// expires_at (RFC 3339); default 72 h after posting.
    #[arg(long)]
    expires_at: Option<Timestamp>,
    /// Explicit recipient (PARTY or PARTY/UNIT), repeatable; default: every unit the agreement permits.
    #[arg(long = "to")]
    to: Vec<Selector>,
    /// Remove a field (e.g. `--clear last_seen.geo` when the youth was seen elsewhere),
    /// repeatable.
    #[arg(long = "clear")]
    clear: Vec<filet_proto::FieldPath>,
}

fn parse_geo(s: &str) -> Result<Geo, String> {
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

/// An error with its exit code.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let error = e.into();
        let code = code_of(&error);
        Failure { code, error }
    }
}

fn client_code(c: &ClientError) -> u8 {
    match c {
        ClientError::Relay(r) => match r.code {
            ErrorCode::InvalidAlert | ErrorCode::BadRequest => 4,
            ErrorCode::Internal | ErrorCode::Busy => 1,
            _ => 3,
        },
        ClientError::File { .. } | ClientError::Profile { .. } | ClientError::Tls(_) => 4,
        ClientError::Address { .. } | ClientError::Connection(_) | ClientError::Timeout(_) => 5,
        ClientError::Protocol(_) => 1,
    }
}

fn code_of(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            return client_code(c);
        }
        if let Some(a) = cause.downcast_ref::<AuditError>() {
            return match a {
                AuditError::Client(c) => client_code(c),
                AuditError::BadRequest(_) => 4,
                AuditError::Denied(_) => 3,
                _ => 6,
            };
        }
        if let Some(a) = cause.downcast_ref::<AuditDirError>() {
            return match a {
                AuditDirError::Client(c) => client_code(c),
                AuditDirError::Key(_) | AuditDirError::NoDirectory { .. } => 4,
                _ => 6,
            };
        }
        if cause.downcast_ref::<InputError>().is_some() {
            return 4;
        }
    }
    1
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct InputError(String);

fn node_config(cli: &Cli) -> Result<NodeConfig, Failure> {
    if let Some(p) = &cli.profile {
        return Ok(NodeConfig::from_profile_file(p)?);
    }
    match (&cli.relay, &cli.ca, &cli.cert, &cli.key) {
        (Some(relay), Some(ca), Some(cert), Some(key)) => {
            let server_name = cli
                .server_name
                .clone()
                .unwrap_or_else(|| relay.rsplit_once(':').map(|(h, _)| h.trim_matches(['[', ']']).to_owned()).unwrap_or_else(|| relay.clone()));
            Ok(NodeConfig::from_profile(&Profile {
                relay: relay.clone(),
                server_name,
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            })?)
        }
        _ => Err(InputError(
            "no node profile: give --profile FILE (or set FILET_PROFILE), or --relay, --ca, --cert and --key".into(),
        )
        .into()),
    }
}

/// Reads a CAP file: at most one byte more than the limit (so `/dev/zero` or a huge file is
/// refused without being read whole), then decodes it by the encoding its XML declaration
/// names.
fn read_cap(path: &std::path::Path) -> Result<String, Failure> {
    use std::io::Read;
    let limit = filet_proto::cap::MAX_CAP_LEN;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| InputError(format!("cannot read CAP file {}: {e}", path.display())))?;
    if bytes.len() > limit {
        return Err(InputError(format!(
            "CAP file {}: more than {limit} bytes, the limit of a CAP alert; nothing was read",
            path.display()
        ))
        .into());
    }
    filet_proto::cap::decode(&bytes)
        .map_err(|e| InputError(format!("CAP file {}: {e}", path.display())).into())
}

/// Connections this command opened, closed cleanly at the end whatever happens (else the
/// relay keeps them until its idle timeout and counts them against the principal's limit).
static OPENED: std::sync::Mutex<Vec<filet_client::Closer>> = std::sync::Mutex::new(Vec::new());

async fn connect(cli: &Cli) -> Result<Node, Failure> {
    let node = Node::connect(&node_config(cli)?).await?;
    if let Ok(mut o) = OPENED.lock() {
        o.push(node.closer());
    }
    Ok(node)
}

async fn close_opened() {
    let opened: Vec<filet_client::Closer> = OPENED
        .lock()
        .map(|mut o| o.drain(..).collect())
        .unwrap_or_default();
    for c in opened {
        c.close().await;
    }
}

/// Writes to standard output; a closed pipe (`filet … | head`) ends the command quietly
/// instead of panicking.
fn out(text: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_all(text.as_bytes()).and_then(|()| o.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

macro_rules! outln {
    ($($arg:tt)*) => { out(&format!("{}\n", format!($($arg)*))) };
}

macro_rules! outp {
    ($($arg:tt)*) => { out(&format!($($arg)*)) };
}

fn draft_of(a: &PostArgs) -> Result<AlertDraft, Failure> {
    if let Some(path) = &a.cap {
        let xml = read_cap(path)?;
        let imported = filet_proto::cap::import(&xml).map_err(|e| {
            InputError(format!(
                "CAP file {} cannot become a Filet alert: {e}; nothing was posted",
                path.display()
            ))
        })?;
        let mut d = imported.draft;
        apply_flags(&mut d, a);
        return Ok(d);
    }
    let mut d = match &a.file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read alert file {}", path.display()))
                .map_err(|e| InputError(format!("{e:#}")))?;
            AlertFile::from_toml(&text)
                .map_err(|e| InputError(format!("alert file {}: {e}", path.display())))?
                .into_draft()
        }
        None => {
            let category = a
                .category
                .ok_or_else(|| InputError("--category is required without an alert file".into()))?;
            let risk = a
                .risk
                .ok_or_else(|| InputError("--risk is required without an alert file".into()))?;
            let mut d = AlertDraft::new(category, risk, "", "");
            d.content.subject.reference = None;
            d.content.contact = None;
            d
        }
    };
    apply_flags(&mut d, a);
    Ok(d)
}

/// Puts the values given as flags over a draft.
fn apply_flags(d: &mut AlertDraft, a: &PostArgs) {
    if let Some(v) = a.category {
        d.category = v;
    }
    if let Some(v) = a.risk {
        d.risk = v;
    }
    if let Some(v) = a.status {
        d.status = v;
    }
    if let Some(v) = a.language {
        d.language = v;
    }
    if let Some(v) = a.expires_at {
        d.expires_at = Some(v);
    }
    let c = &mut d.content;
    macro_rules! set {
        ($dst:expr, $src:expr) => {
            if let Some(v) = &$src {
                $dst = Some(v.clone());
            }
        };
    }
    set!(c.subject.reference, a.reference);
    set!(c.subject.given_name, a.given_name);
    set!(c.subject.age, a.age);
    set!(c.subject.description, a.description);
    set!(c.last_seen.at, a.last_seen_at);
    set!(c.last_seen.place, a.place);
    set!(c.last_seen.geo, a.geo);
    set!(c.instructions, a.instructions);
    set!(c.contact, a.contact);
    if !a.to.is_empty() {
        d.to = a.to.clone();
    }
    if !a.clear.is_empty() {
        let keep = a.clear.iter().fold(filet_proto::FieldSet::all(), |set, f| {
            filet_proto::FieldPath::ALL
                .iter()
                .filter(|g| *g != f && set.contains(**g))
                .fold(filet_proto::FieldSet::EMPTY, |s, g| s.with(*g))
        });
        d.content = d.content.redact(keep);
    }
}

/// The newest content of alert `id`'s thread, for an update given as flags: its latest
/// update, or the alert itself. Only the unit that posted that message sees all of its
/// content; any other unit would build an update from a partial view (and silently drop
/// the fields it cannot see), so it is told to give the whole alert as a file.
async fn latest_content(node: &Node, id: AlertId) -> Result<filet_proto::Disclosed, Failure> {
    let (orig, _) = node.get_alert(id).await.map_err(refusal_context)?;
    let latest_id = orig
        .history
        .iter()
        .rev()
        .find(|h| h.kind == Some(Kind::Update))
        .map_or(id, |h| h.id);
    let latest = if latest_id == id {
        orig
    } else {
        node.get_alert(latest_id).await.map_err(refusal_context)?.0
    };
    let me = node.whoami().await?.principal.unit;
    if latest.envelope.sender.unit != me {
        let what = if latest_id == id {
            format!("alert {id}")
        } else {
            format!("its latest update {latest_id}")
        };
        return Err(InputError(format!(
            "{me} cannot update alert {id} from flags: it does not see all of the content of {what} (posted by {}). Only units of party {} that the agreement lets send {} alerts may update it; such a unit gives the whole updated alert in a file (the format of `filet post`): `filet update {id} FILE`",
            latest.envelope.sender.unit,
            latest.envelope.sender.party(),
            latest.envelope.category
        ))
        .into());
    }
    Ok(latest)
}

async fn post_and_print(cli: &Cli, node: &Node, draft: AlertDraft) -> Result<(), Failure> {
    if let Err(invalid) = draft.validate(Timestamp::now()) {
        return Err(InputError(format!("invalid alert: {invalid}")).into());
    }
    let receipt = node.post(draft).await.map_err(refusal_context)?;
    if cli.json {
        print_json(&receipt_json(&receipt));
    } else {
        outp!("{}", receipt_text(&receipt));
    }
    Ok(())
}

/// `located` and `cancel`: the original's category and status, no content.
async fn close_alert(
    cli: &Cli,
    id: AlertId,
    kind: Kind,
    note: Option<String>,
) -> Result<(), Failure> {
    let node = connect(cli).await?;
    let (orig, _) = node.get_alert(id).await.map_err(refusal_context)?;
    let mut d = AlertDraft::new(orig.envelope.category, orig.envelope.risk, "", "");
    d.content = Default::default();
    d.kind = kind;
    d.references = Some(id);
    d.status = orig.envelope.status;
    d.language = orig.envelope.language;
    d.note = note;
    post_and_print(cli, &node, d).await?;
    node.close().await;
    Ok(())
}

fn print_json(v: &serde_json::Value) {
    outln!("{}", serde_json::to_string(v).unwrap_or_default());
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Post(args) => {
            let draft = draft_of(args)?;
            // Check locally first: a clear message without a round trip. The relay checks
            // again (it is the one that decides).
            if let Err(invalid) = draft.validate(Timestamp::now()) {
                return Err(InputError(format!("invalid alert: {invalid}")).into());
            }
            let node = connect(&cli).await?;
            post_and_print(&cli, &node, draft).await?;
            node.close().await;
        }
        Command::Update { id, args } => {
            if let Some(f) = args.clear.iter().find(|f| {
                matches!(
                    f,
                    filet_proto::FieldPath::SubjectReference | filet_proto::FieldPath::Contact
                )
            }) {
                return Err(InputError(format!(
                    "--clear {f}: an update keeps subject.reference and contact (give a new value instead)"
                ))
                .into());
            }
            if !args.to.is_empty() {
                return Err(InputError(
                    "--to: an update goes to the recipients of the original alert (those the agreement still permits); it names none".into(),
                )
                .into());
            }
            let node = connect(&cli).await?;
            let mut draft = match &args.file {
                Some(_) => {
                    let (orig, _) = node.get_alert(*id).await.map_err(refusal_context)?;
                    let d = draft_of(args)?;
                    let problem = if !d.to.is_empty() {
                        Some("to: an update goes to the recipients of the original alert; leave `to` out".to_owned())
                    } else if d.category != orig.envelope.category {
                        Some(format!(
                            "category: alert {id} is a {} alert and its updates keep that category (not {})",
                            orig.envelope.category, d.category
                        ))
                    } else {
                        None
                    };
                    if let Some(p) = problem {
                        node.close().await;
                        return Err(InputError(p).into());
                    }
                    d
                }
                None => {
                    let latest = latest_content(&node, *id).await;
                    let latest = match latest {
                        Ok(l) => l,
                        Err(e) => {
                            node.close().await;
                            return Err(e);
                        }
                    };
                    if args.category.is_some_and(|c| c != latest.envelope.category) {
                        node.close().await;
                        return Err(InputError(format!(
                            "--category: alert {id} is a {} alert and its updates keep that category",
                            latest.envelope.category
                        ))
                        .into());
                    }
                    let mut d =
                        AlertDraft::new(latest.envelope.category, latest.envelope.risk, "", "");
                    d.content = latest.content;
                    d.status = latest.envelope.status;
                    d.language = latest.envelope.language;
                    apply_flags(&mut d, args);
                    d
                }
            };
            draft.kind = Kind::Update;
            draft.references = Some(*id);
            post_and_print(&cli, &node, draft).await?;
            node.close().await;
        }
        Command::Located { id, note } => {
            close_alert(&cli, *id, Kind::Located, note.clone()).await?;
        }
        Command::Cancel { id, reason } => {
            close_alert(&cli, *id, Kind::Cancel, Some(reason.clone())).await?;
        }
        Command::Export { cap: _, id } => {
            let node = connect(&cli).await?;
            let (alert, recipients) = node.get_alert(*id).await.map_err(refusal_context)?;
            // A recipient's export addresses its own unit: it knows no other recipient.
            let own = [node.whoami().await?.principal.unit];
            let recipients = if recipients.is_empty() {
                &own[..]
            } else {
                &recipients[..]
            };
            let xml = filet_proto::cap::export(&filet_proto::cap::ExportInput {
                envelope: &alert.envelope,
                content: &alert.content,
                note: alert.note.as_deref(),
                recipients,
                references_sent: None,
            });
            outp!("{xml}");
            node.close().await;
        }
        Command::Cap(CapCommand::Check { file }) => {
            let xml = read_cap(file)?;
            match filet_proto::cap::check(&xml) {
                Ok(a) => {
                    if cli.json {
                        print_json(
                            &serde_json::json!({"valid": true, "identifier": a.identifier, "infos": a.info.len()}),
                        );
                    } else {
                        outln!(
                            "{}: valid CAP {} alert {} ({} info block(s))",
                            file.display(),
                            match a.version {
                                filet_proto::cap::CapVersion::V1_1 => "1.1",
                                filet_proto::cap::CapVersion::V1_2 => "1.2",
                            },
                            a.identifier.as_deref().unwrap_or("?"),
                            a.info.len()
                        );
                    }
                }
                Err(e) => {
                    return Err(InputError(format!(
                        "{}: not a valid CAP 1.2 alert: {e}",
                        file.display()
                    ))
                    .into());
                }
            }
        }
        Command::Status { id } => {
            let node = connect(&cli).await?;
            let st = node.status(*id).await.map_err(refusal_context)?;
            if cli.json {
                print_json(&filet_client::render::status_json(*id, &st));
            } else {
                outp!("{}", filet_client::render::status_text(*id, &st));
            }
            node.close().await;
        }
        Command::Console {
            listen,
            lang,
            zone,
            agreement,
        } => {
            let lang = match lang {
                Some(l) => Some(
                    filet_client::console::Lang::from_code(l)
                        .ok_or_else(|| InputError(format!("--lang {l}: fr or en")))?,
                ),
                None => None,
            };
            let cfg =
                filet_client::console::config(*listen, lang, zone.as_deref(), agreement.as_deref())
                    .map_err(InputError)?;
            filet_client::console::run(node_config(&cli)?, cfg, |s| outln!("{s}"))
                .await
                .map_err(InputError)?;
        }
        Command::Whoami => {
            let node = connect(&cli).await?;
            let w = node.whoami().await?;
            if cli.json {
                print_json(&serde_json::json!({
                    "principal": w.principal.to_string(),
                    "agreement": w.agreement_id,
                    "agreement_version": w.agreement_version,
                    "may_send_under": w.may_send_under,
                    "may_receive_under": w.may_receive_under,
                    "audit_right": w.audit_right,
                }));
            } else {
                outln!("principal   {}", w.principal);
                outln!("agreement   {} v{}", w.agreement_id, w.agreement_version);
                outln!("may send    {}", list_or_none(&w.may_send_under));
                outln!("may receive {}", list_or_none(&w.may_receive_under));
                outln!("audit right {}", w.audit_right);
            }
            node.close().await;
        }
        Command::Inbox { follow: false } => {
            let node = connect(&cli).await?;
            let alerts = node.inbox().await?;
            if alerts.is_empty() && !cli.json {
                outln!("no alert waiting");
            }
            for d in &alerts {
                if cli.json {
                    print_json(&d.to_json());
                } else {
                    outln!("{}", alert_text(d));
                }
            }
            node.close().await;
        }
        Command::Inbox { follow: true } => follow(&cli).await?,
        Command::Ack { ids } => {
            let node = connect(&cli).await?;
            for id in ids {
                let idx = node.ack(*id).await.map_err(refusal_context)?;
                if cli.json {
                    print_json(
                        &serde_json::json!({"alert": id.to_string(), "acknowledged": true, "audit_index": idx}),
                    );
                } else {
                    outln!("acknowledged {id} (audit entry #{idx})");
                }
            }
            node.close().await;
        }
        Command::Audit(cmd) => audit(&cli, cmd).await?,
    }
    Ok(())
}

async fn audit(cli: &Cli, cmd: &AuditCommand) -> Result<(), Failure> {
    let key = |k: &str| {
        NoteVerifier::parse(k.trim()).map_err(|e| InputError(format!("--verifier-key: {e}")))
    };
    match cmd {
        AuditCommand::Verify {
            verifier_key,
            dir: Some(dir),
        } => {
            let r = audit_dir::verify(dir, verifier_key.as_deref())?;
            if cli.json {
                print_json(&serde_json::json!({
                    "verified": true, "dir": dir, "tree_size": r.checkpoint.size,
                    "root": filet_proto::audit::hex(&r.checkpoint.root), "checkpoints": r.checkpoints,
                    "entries": r.entries, "scope": if r.scope == Scope::Full { "full" } else { "party" },
                }));
            } else {
                outln!(
                    "verified offline: {} checkpoint(s) signed by {}, consistent; {} entries {}; newest tree {} entries",
                    r.checkpoints,
                    r.checkpoint.origin,
                    r.entries,
                    if r.scope == Scope::Full { "match the signed roots" } else { "each proven included" },
                    r.checkpoint.size
                );
            }
        }
        AuditCommand::Log { verifier_key }
        | AuditCommand::Verify {
            verifier_key: Some(verifier_key),
            dir: None,
        } => {
            let verifier = key(verifier_key)?;
            let node = connect(cli).await?;
            let log = fetch_and_verify(&node, &verifier).await?;
            let is_log = matches!(cmd, AuditCommand::Log { .. });
            if is_log {
                for (i, bytes) in &log.entries {
                    if cli.json {
                        outln!("{}", String::from_utf8_lossy(bytes));
                    } else {
                        outln!("{}", entry_line(*i, bytes));
                    }
                }
            }
            let how = if log.complete {
                "root recomputed from every entry"
            } else {
                "each entry's inclusion proof checked"
            };
            if cli.json && !is_log {
                print_json(&serde_json::json!({
                    "verified": true, "origin": log.checkpoint.origin, "tree_size": log.checkpoint.size,
                    "root": filet_proto::audit::hex(&log.checkpoint.root), "entries_read": log.entries.len(),
                    "complete": log.complete,
                }));
            } else if !cli.json {
                outln!(
                    "verified: checkpoint of {} entries signed by {}; {} entries read, {how}",
                    log.checkpoint.size,
                    verifier.name(),
                    log.entries.len()
                );
            }
            node.close().await;
        }
        AuditCommand::Verify {
            verifier_key: None,
            dir: None,
        } => {
            return Err(InputError(
                "audit verify needs --verifier-key (online) or --dir (offline)".into(),
            )
            .into());
        }
        AuditCommand::Pull { dir, verifier_key } => {
            let node = connect(cli).await?;
            let r = audit_dir::pull(&node, dir, verifier_key.as_deref()).await?;
            if cli.json {
                print_json(&serde_json::json!({
                    "tree_size": r.checkpoint.size, "previous_size": r.previous_size,
                    "new_entries": r.new_entries, "root": filet_proto::audit::hex(&r.checkpoint.root),
                }));
            } else {
                outln!(
                    "pulled {} new entries; checkpoint of {} entries kept{}",
                    r.new_entries,
                    r.checkpoint.size,
                    if r.previous_size > 0 {
                        format!(" (consistent with the previous one of {})", r.previous_size)
                    } else {
                        String::new()
                    }
                );
            }
            node.close().await;
        }
        AuditCommand::Prove {
            index,
            verifier_key,
        } => {
            let verifier = key(verifier_key)?;
            let node = connect(cli).await?;
            let p = filet_client::audit::prove(&node, &verifier, *index).await?;
            if cli.json {
                print_json(&serde_json::json!({
                    "index": index, "tree_size": p.checkpoint.size, "verified": true,
                    "proof": p.proof.iter().map(|h| filet_proto::audit::hex(h)).collect::<Vec<_>>(),
                    "entry": serde_json::from_slice::<serde_json::Value>(&p.entry).unwrap_or_default(),
                }));
            } else {
                outln!("{}", entry_line(*index, &p.entry));
                outln!(
                    "included: inclusion proof of {} hashes verifies against the checkpoint of {} entries signed by {}",
                    p.proof.len(),
                    p.checkpoint.size,
                    verifier.name()
                );
            }
            node.close().await;
        }
        AuditCommand::Report {
            dir,
            from,
            to,
            party,
            unacked_after,
            format,
            subject_ref,
            subject_ref_key,
        } => {
            if let (Some(f), Some(t)) = (from, to) {
                if f >= t {
                    return Err(InputError(format!(
                        "--from {f} is not before --to {t}: the range is empty"
                    ))
                    .into());
                }
            }
            audit_dir::verify(dir, None)?;
            let entries = audit_dir::AuditDir::open(dir)?.entries()?;
            // Party codes are upper case in the agreement and the log.
            let party = party.as_deref().map(|p| p.trim().to_ascii_uppercase());
            if let Some(p) = &party {
                let seen = report::parties(&entries);
                if !seen.contains(p) {
                    let seen: Vec<&str> = seen.iter().map(String::as_str).collect();
                    return Err(InputError(format!(
                        "--party {p}: no entry of {} names this party (parties named: {})",
                        dir.display(),
                        if seen.is_empty() {
                            "none".to_owned()
                        } else {
                            seen.join(", ")
                        }
                    ))
                    .into());
                }
            }
            let o = ReportOptions {
                from: *from,
                to: *to,
                party,
                unacked_after_ms: unacked_after.saturating_mul(60_000),
                now: Timestamp::now(),
                subject_ref: match (subject_ref, subject_ref_key) {
                    (Some(r), Some(k)) => {
                        let key = std::fs::read(k).map_err(|e| {
                            InputError(format!("--subject-ref-key {}: {e}", k.display()))
                        })?;
                        report::check_subject_ref_key(&key).map_err(|e| {
                            InputError(format!("--subject-ref-key {}: {e}", k.display()))
                        })?;
                        Some(report::subject_ref(&key, r.trim()))
                    }
                    _ => None,
                },
            };
            let r = report::build(&entries, &o);
            match (format, cli.json) {
                (ReportFormat::Json, _) | (_, true) => print_json(&report::to_json(&r)),
                (ReportFormat::Csv, _) => outp!("{}", report::to_csv(&r)),
                (ReportFormat::Table, _) => outp!("{}", report::to_table(&r, &o)),
            }
        }
    }
    Ok(())
}

/// An error and its causes, each cause once (a message that already holds its cause's
/// text is not followed by it again).
/// Control characters (and bidirectional overrides) of `s` escaped, newlines kept: an
/// error message quoting a file or an argument must not write a NUL, a terminal escape
/// sequence or a reordering mark to the terminal.
fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let bidi = matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        if (c.is_control() && c != '\n') || bidi {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

fn chain_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = escape_controls(&cause.to_string());
        if !text.contains(&c) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&c);
        }
    }
    text
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "(no rule)".into()
    } else {
        v.join(", ")
    }
}

fn refusal_context(e: ClientError) -> anyhow::Error {
    let msg = match &e {
        ClientError::Relay(r) => format!("refused by the relay ({:?})", r.code),
        _ => "request failed".to_string(),
    };
    anyhow::Error::new(e).context(msg)
}

/// A refusal that retrying will not cure: the certificate is refused, revoked, expired, or
/// names a unit the agreement does not know.
fn is_permanent(e: &ClientError) -> bool {
    match e {
        ClientError::Connection(m) => {
            m.contains("TLS alert") || m.contains("is not a party") || m.contains("is not a unit")
        }
        ClientError::File { .. } | ClientError::Profile { .. } | ClientError::Tls(_) => true,
        _ => false,
    }
}

/// `inbox --follow`: subscribe, print each alert once, reconnect with backoff.
async fn follow(cli: &Cli) -> Result<(), Failure> {
    let cfg = node_config(cli)?;
    let mut seen: HashSet<AlertId> = HashSet::new();
    let mut backoff = Duration::from_millis(500);
    let mut connected_once = false;
    loop {
        let node = match Node::connect(&cfg).await {
            Ok(n) => n,
            Err(e) if connected_once && !is_permanent(&e) => {
                eprintln!(
                    "filet: relay unavailable ({}); retrying in {backoff:?}",
                    escape_controls(&e.to_string())
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut rx = match node.subscribe().await {
            Ok(rx) => rx,
            Err(e) if connected_once && !is_permanent(&e) => {
                eprintln!(
                    "filet: {}; retrying in {backoff:?}",
                    escape_controls(&e.to_string())
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        connected_once = true;
        backoff = Duration::from_millis(500);
        if !cli.json {
            eprintln!("filet: following the mailbox (Ctrl-C to stop)");
        }
        loop {
            tokio::select! {
                d = rx.recv() => match d {
                    Some(d) => {
                        if !seen.insert(d.envelope.id) {
                            continue;
                        }
                        if cli.json {
                            print_json(&d.to_json());
                        } else {
                            outln!("{}", alert_text(&d));
                        }
                    }
                    None => break,
                },
                _ = tokio::signal::ctrl_c() => {
                    node.close().await;
                    return Ok(());
                }
            }
        }
        let reason = node
            .close_reason()
            .unwrap_or_else(|| "connection lost".into());
        eprintln!(
            "filet: disconnected ({}); reconnecting",
            escape_controls(&reason)
        );
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("filet: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async {
        let r = run(cli).await;
        close_opened().await;
        r
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("filet: {}", chain_text(&f.error));
            ExitCode::from(f.code)
        }
    }
}
