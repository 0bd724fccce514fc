//! `filet-certs`: the agreement's PKI — CA, relay and node certificates, revocation list.
//!
//! Exit codes: 0 success, 1 error (printed with its causes), 2 usage error.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use filet_certs::{NodeRequest, RevocationReason};

#[derive(Debug, Parser)]
#[command(
    name = "filet-certs",
    version,
    about = "The agreement's PKI: CA, relay and node certificates, revocation list"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Everything for a demonstration: CA, relay certificate, a certificate, key and profile
    /// for every unit of every party, empty revocation list.
    Dev {
        /// The agreement file.
        #[arg(long, value_name = "FILE")]
        agreement: PathBuf,
        /// The PKI directory to write.
        #[arg(long, value_name = "PKI")]
        dir: PathBuf,
        /// The relay address the nodes dial.
        #[arg(long, value_name = "HOST:PORT")]
        relay: String,
        /// Replace an existing CA (and everything else in the directory).
        #[arg(long)]
        force: bool,
    },
    /// A new CA for the agreement and an empty revocation list.
    Init {
        /// The agreement file.
        #[arg(long, value_name = "FILE")]
        agreement: PathBuf,
        /// The PKI directory.
        #[arg(long, value_name = "PKI")]
        dir: PathBuf,
        /// Replace an existing CA.
        #[arg(long)]
        force: bool,
    },
    /// The relay's certificate and key.
    Relay {
        /// The PKI directory.
        #[arg(long, value_name = "PKI")]
        dir: PathBuf,
        /// A DNS name or IP address the nodes dial (repeatable; the first is the CN).
        #[arg(long = "name", value_name = "HOST", required = true)]
        names: Vec<String>,
        /// Replace an existing relay certificate and key.
        #[arg(long)]
        force: bool,
    },
    /// A node's certificate and key, and its profile if --relay is given.
    Node {
        /// The PKI directory.
        #[arg(long, value_name = "PKI")]
        dir: PathBuf,
        /// Party code (the certificate's O).
        #[arg(long, value_name = "PARTY")]
        party: String,
        /// Unit code (the certificate's OU).
        #[arg(long, value_name = "UNIT")]
        unit: String,
        /// Node name (the certificate's CN); default: lowercase party-unit-01.
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
        /// The relay address, to write a profile.
        #[arg(long, value_name = "HOST:PORT")]
        relay: Option<String>,
        /// The agreement file: the party and unit must be in it.
        #[arg(long, value_name = "FILE")]
        agreement: Option<PathBuf>,
        /// Replace the node's existing files.
        #[arg(long)]
        force: bool,
    },
    /// Revokes a certificate, named by its file, its node name or its serial: adds it to
    /// revoked.toml and re-signs crl.pem with the next CRL number.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["cert", "serial", "node"])))]
    Revoke {
        /// The PKI directory.
        #[arg(long, value_name = "PKI")]
        dir: PathBuf,
        /// The certificate to revoke (PEM).
        #[arg(value_name = "CERT_FILE")]
        cert: Option<PathBuf>,
        /// Or its serial number, hexadecimal (colons allowed).
        #[arg(long, value_name = "HEX")]
        serial: Option<String>,
        /// Or its node name (the certificate's CN) or PARTY/UNIT/node, among PKI/nodes.
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
        /// Why.
        #[arg(long, value_enum, default_value_t = Reason::Unspecified)]
        reason: Reason,
    },
    /// The revocation list itself.
    Crl {
        #[command(subcommand)]
        command: CrlCommand,
    },
    /// Describes a certificate or revocation list.
    Show {
        /// A PEM (or DER) file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum CrlCommand {
    /// Re-signs crl.pem with the same revocations, the next CRL number and 30 days of
    /// validity from now (run it before the relay's copy passes its nextUpdate).
    Renew {
        /// The PKI directory.
        #[arg(long, value_name = "PKI")]
        dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Reason {
    KeyCompromise,
    Superseded,
    CessationOfOperation,
    Unspecified,
}

impl From<Reason> for RevocationReason {
    fn from(r: Reason) -> Self {
        match r {
            Reason::KeyCompromise => RevocationReason::KeyCompromise,
            Reason::Superseded => RevocationReason::Superseded,
            Reason::CessationOfOperation => RevocationReason::CessationOfOperation,
            Reason::Unspecified => RevocationReason::Unspecified,
        }
    }
}

fn print_group(title: &str, paths: &[PathBuf]) {
    println!("{title}:");
    for p in paths {
        println!("  {}", p.display());
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev {
            agreement,
            dir,
            relay,
            force,
        } => {
            let report = filet_certs::dev(&dir, &agreement, &relay, force)?;
            print_group("CA", &report.ca);
            print_group("revocation list", &report.crl);
            print_group(
                &format!("relay ({})", report.relay_names.join(", ")),
                &report.relay,
            );
            let pick = |f: fn(&filet_certs::NodeFiles) -> Option<PathBuf>| -> Vec<PathBuf> {
                report.nodes.iter().filter_map(f).collect()
            };
            let n = report.nodes.len();
            print_group(
                &format!("node certificates ({n})"),
                &pick(|x| Some(x.cert.clone())),
            );
            print_group(&format!("node keys ({n})"), &pick(|x| Some(x.key.clone())));
            print_group(&format!("profiles ({n})"), &pick(|x| x.profile.clone()));
            if let Some(profile) = &report.first_profile {
                println!("next: filet --profile {} whoami", profile.display());
            }
        }
        Command::Init {
            agreement,
            dir,
            force,
        } => {
            let paths = filet_certs::init(&dir, &agreement, force)?;
            print_group("CA and revocation list", &paths);
        }
        Command::Relay { dir, names, force } => {
            let paths = filet_certs::issue_relay(&dir, &names, force)
                .context("cannot issue the relay certificate")?;
            print_group(&format!("relay ({})", names.join(", ")), &paths);
        }
        Command::Node {
            dir,
            party,
            unit,
            node,
            relay,
            agreement,
            force,
        } => {
            let files = filet_certs::issue_node(
                &dir,
                &NodeRequest {
                    party: &party,
                    unit: &unit,
                    node: node.as_deref(),
                    relay: relay.as_deref(),
                    agreement: agreement.as_deref(),
                    force,
                },
            )
            .with_context(|| {
                // Escaped: a name given on the command line may hold control characters.
                format!(
                    "cannot issue a certificate for {}/{}",
                    party.escape_debug(),
                    unit.escape_debug()
                )
            })?;
            print_group(&format!("node {}", files.principal), &files.paths());
            if let Some(profile) = &files.profile {
                println!("next: filet --profile {} whoami", profile.display());
            }
        }
        Command::Revoke {
            dir,
            cert,
            serial,
            node,
            reason,
        } => {
            let r = match (cert, serial, node) {
                (Some(cert), _, _) => filet_certs::revoke(&dir, &cert, reason.into())?,
                (None, Some(serial), _) => {
                    filet_certs::revoke_serial(&dir, &serial, reason.into())?
                }
                (None, None, Some(node)) => filet_certs::revoke_node(&dir, &node, reason.into())?,
                (None, None, None) => {
                    anyhow::bail!("give the certificate file, --serial or --node")
                }
            };
            let subject = if r.subject.is_empty() {
                "no certificate of this serial in the PKI directory: subject unknown".to_owned()
            } else {
                r.subject.clone()
            };
            println!(
                "revoked serial {} ({subject}), reason {}",
                r.serial, r.reason
            );
            let layout = filet_certs::Layout::new(&dir);
            print_group("updated", &[layout.revoked(), layout.crl()]);
            println!(
                "the relay applies it when it reloads {}",
                layout.crl().display()
            );
        }
        Command::Crl {
            command: CrlCommand::Renew { dir },
        } => {
            let list = filet_certs::renew_crl(&dir)?;
            let layout = filet_certs::Layout::new(&dir);
            let info = filet_certs::load_crls(&layout.crl()).ok().and_then(|c| {
                c.first()
                    .and_then(|c| filet_certs::describe_crl(c.as_ref()).ok())
            });
            let next = info
                .and_then(|i| i.next_update)
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_else(|| "(none)".to_owned());
            println!(
                "renewed the revocation list: number {}, {} revoked certificate(s), next update {next}",
                list.crl_number,
                list.revoked.len()
            );
            print_group("updated", &[layout.revoked(), layout.crl()]);
            println!(
                "the relay applies it when it reloads {}",
                layout.crl().display()
            );
        }
        Command::Show { file } => {
            println!("{}", filet_certs::show(&file)?);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("filet-certs: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
