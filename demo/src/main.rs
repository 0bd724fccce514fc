//! `filet-demo`: the whole story in one process (see the library's doc). `filet-relay demo`
//! runs this binary, which sits beside it.
//!
//! Exit codes: 0 every step happened as described; 1 setup error (PKI, relay start,
//! connections); 2 bad command line; 3 the demo ran but a step did not happen as described.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "filet-demo",
    version,
    about = "Run the whole story in one process on a temporary directory and print a transcript"
)]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
    /// Keep the demo's files in this directory instead of a temporary one.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Logs warnings and errors to stderr (the transcript is on stdout); colour codes only on
/// a terminal, and never with `NO_COLOR` set (no-color.org).
fn init_tracing(json: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
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

async fn run(dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    if let Some(d) = &dir {
        std::fs::create_dir_all(d)?;
    }
    if filet_demo::run(dir).await? {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(3))
    }
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
    init_tracing(cli.log_json);
    // As the relay: one thread for the network; the commit thread is separate.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("filet-demo: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli.dir)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("filet-demo: {}", chain_text(&e));
            ExitCode::from(1)
        }
    }
}
