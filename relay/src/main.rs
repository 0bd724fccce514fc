//! `filet-relay`: run the relay (`serve`), the demonstration (`demo`, which runs the
//! program `filet-demo` beside this one), or print the audit verifier key (`audit-key`).
//!
//! Exit codes: 0 success; 1 error (configuration, agreement, PKI, storage); 2 bad command
//! line; 3 the demo ran but a step did not happen as described.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use filet_relay::clock::SystemClock;
use filet_relay::config::{Overrides, RelayConfig};
use filet_relay::{Keys, Relay};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "filet-relay",
    version,
    about = "The Filet relay: agreement-checked, audited alert exchange over mutual-TLS QUIC"
)]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay until SIGINT or SIGTERM.
    Serve {
        /// Configuration file (relay.toml); flags override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// UDP address to listen on (default 127.0.0.1:4433).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Data directory (alert store, audit log, keys).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// PKI directory as written by `filet-certs` (ca.crt.pem, relay.crt.pem, relay.key.pem, crl.pem).
        #[arg(long)]
        pki: Option<PathBuf>,
        /// The agreement file.
        #[arg(long)]
        agreement: Option<PathBuf>,
    },
    /// Run the whole story in one process on a temporary directory and print a transcript.
    Demo {
        /// Keep the demo's files in this directory instead of a temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Create a relay home: relay.toml (every setting, commented at its default), data and
    /// pki directories, the audit key; print the next steps.
    Init {
        /// The relay home to create.
        #[arg(long)]
        dir: PathBuf,
        /// An agreement to copy in as agreement.toml (its id names the log).
        #[arg(long)]
        agreement: Option<PathBuf>,
    },
    /// Ask the relay running on this configuration (or data directory) to reload its
    /// agreement and CRL; print what it did or why it refused.
    Reload {
        /// The relay's configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Or its data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Print the audit log's verifier key (C2SP signed-note format) of a data directory.
    /// It only reads: the relay creates the key at its first start (or `init --agreement`).
    AuditKey {
        /// Data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// Not used (the key and its name are read from the data directory); accepted so
        /// that older scripts keep working.
        #[arg(long, hide = true)]
        agreement: Option<PathBuf>,
    },
}

/// Logs to stderr; colour codes only on a terminal, and never with `NO_COLOR` set
/// (no-color.org): a log file or a pipe gets plain text.
fn init_tracing(json: bool, default: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && !no_color)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

/// SIGTERM or SIGINT, registered now: a signal that comes once the relay says it listens
/// (a service manager's stop, a test) shuts it down gracefully instead of killing it.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    })
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            config,
            listen,
            data_dir,
            pki,
            agreement,
        } => {
            let cfg = RelayConfig::load(
                config.as_deref(),
                Overrides {
                    listen,
                    data_dir,
                    agreement,
                    pki_dir: pki,
                },
            )?;
            let relay = Relay::start(cfg, Arc::new(SystemClock)).await?;
            let stop = shutdown_signal()?;
            tracing::info!(
                "listening on {} — audit verifier key {}",
                relay.local_addr()?,
                relay.verifier_key()
            );
            relay.run(stop).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { dir } => run_demo(dir, cli.log_json),
        Command::Init { dir, agreement } => {
            if dir.join("relay.toml").exists() {
                anyhow::bail!(
                    "{} already holds a relay.toml; nothing was changed",
                    dir.display()
                );
            }
            for d in [dir.clone(), dir.join("pki")] {
                std::fs::create_dir_all(&d)?;
            }
            filet_relay::datadir::create_private_dir(&dir.join("data"))?;
            std::fs::write(dir.join("relay.toml"), filet_relay::config::TEMPLATE)?;
            println!("wrote {}", dir.join("relay.toml").display());
            if let Some(a) = &agreement {
                let parsed = filet_relay::load_agreement(a)?;
                // The operator edits this copy (docs/operations.md, "Change the agreement"):
                // created 0644 (less the umask) whatever the source's mode, which `fs::copy` keeps.
                let text = std::fs::read(a).with_context(|| a.display().to_string())?;
                let to = dir.join("agreement.toml");
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o644)
                    .open(&to)
                    .and_then(|mut f| f.write_all(&text))
                    .with_context(|| to.display().to_string())?;
                println!(
                    "wrote {} (agreement {} v{})",
                    dir.join("agreement.toml").display(),
                    parsed.id,
                    parsed.version
                );
                let keys = Keys::load_or_create(&dir.join("data"), None, &parsed.id)?;
                println!(
                    "wrote {} (the audit signing key, mode 0600: back it up)",
                    dir.join("data/keys/audit-ed25519.pk8").display()
                );
                println!(
                    "audit verifier key (give it to the auditors): {}",
                    keys.signer.verifier_key()
                );
            } else {
                println!(
                    "put the agreement in {}",
                    dir.join("agreement.toml").display()
                );
            }
            println!("next:");
            println!(
                "  filet-certs init --agreement {0}/agreement.toml --dir {0}/pki, then filet-certs relay and filet-certs node",
                dir.display()
            );
            println!("  filet-relay serve --config {}/relay.toml", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Reload { config, data_dir } => {
            let data_dir = match (config, data_dir) {
                (_, Some(d)) => d,
                (Some(c), None) => {
                    let o = Overrides {
                        pki_dir: Some(PathBuf::from(".")),
                        ..Overrides::default()
                    };
                    RelayConfig::load(Some(&c), o)?.data_dir
                }
                (None, None) => anyhow::bail!("give --config relay.toml or --data-dir DIR"),
            };
            match filet_relay::control::request_reload(&data_dir).await {
                Ok(s) => {
                    println!("{s}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("filet-relay: reload refused: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::AuditKey {
            data_dir,
            agreement: _,
        } => {
            let keys = Keys::load(&data_dir)?;
            println!("{}", keys.signer.verifier_key());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `filet-relay demo` runs `filet-demo`, the binary beside this one (as `git foo` runs
/// `git-foo`), with the same arguments; its exit code is the demo's. The demo is its own
/// crate (`demo/`) so that the relay does not depend on the node library.
fn run_demo(dir: Option<PathBuf>, log_json: bool) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("cannot find the path of filet-relay")?;
    let demo = exe.with_file_name("filet-demo");
    if !demo.is_file() {
        anyhow::bail!(
            "the demo is the program filet-demo, beside filet-relay, and {} does not exist: build it with `cargo build --release` (which builds every program of the workspace) or `cargo build --release -p filet-demo`",
            demo.display()
        );
    }
    let mut cmd = std::process::Command::new(&demo);
    if log_json {
        cmd.arg("--log-json");
    }
    if let Some(d) = dir {
        cmd.arg("--dir").arg(d);
    }
    // Replaces this process: the demo's output, signals and exit code are its own.
    let e = cmd.exec();
    Err(anyhow::Error::new(e).context(format!("cannot run {}", demo.display())))
}

/// An error and its causes, each once (a message that already holds its cause's text is
/// not followed by it again).
fn chain_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if !text.contains(&c) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&c);
        }
    }
    text
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
    let default_level = match cli.command {
        Command::Demo { .. } => "warn",
        _ => "info",
    };
    init_tracing(cli.log_json, default_level);
    // One thread for the network (measured faster than work stealing on 2 cores); the
    // commit thread is separate.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("filet-relay: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("filet-relay: {}", chain_text(&e));
            ExitCode::from(1)
        }
    }
}
